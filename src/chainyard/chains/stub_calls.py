"""A dependency's async call (`predict_async` of truss's stub), without the layers around its post.

truss's `predict_async` builds a tenacity retry policy per call (whose loop inspects its callbacks
on every attempt), takes its concurrency semaphore through a wrapper that updates five Prometheus
series, and posts through two nested context managers. For a no-op dependency that was more CPU
than the HTTP exchange itself. This module keeps what the caller can observe of truss's call and
drops the rest:

- `retries` attempts in all (`chains.depends(..., retries=N)`), retried on any exception at once,
  each retry logged; the last exception raised; a timeout raised as `TimeoutError` naming the
  dependency and its `timeout_sec`, as truss words it;
- at most `concurrency_limit` calls in flight per stub, the others waiting, with a warning (at
  most every five minutes) when calls had to wait;
- an error answer raised through truss's own `async_response_raise_errors`, so a remote error
  surfaces as the same exception, with the remote traceback;
- the request's headers and body from truss's `_make_request_params` (request id, trace parent,
  JSON or msgpack), the answer parsed by the stub.

A dependency whose ready replicas are known (chains/direct_calls.py) is posted to directly, on
the replica's own keep-alive connections (chainyard/http_client.py); without one, or when the
peer refuses the connection, the call goes through the stub's client (the gateway's route), as
before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from chainyard import http_client
from chainyard.chains import direct_calls

log = logging.getLogger("chainyard.replica")

QUEUE_NOTICE_SECONDS = 300.0


class CallLimit:
    """A stub's `concurrency_limit`: calls beyond it wait; waiting is reported, not hidden."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = max(1, limit)
        self._slots = asyncio.Semaphore(self.limit)
        self._waited = 0
        self._noticed_at = 0.0

    async def __aenter__(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        started = time.monotonic()
        await self._slots.acquire()
        self._waited += 1
        if started - self._noticed_at >= QUEUE_NOTICE_SECONDS:
            self._noticed_at = started
            log.warning(
                "calls to `%s` wait for a free slot: its concurrency_limit of %d calls is in "
                "use (%d calls waited so far; this one %.3f s). Raise `concurrency_limit` in "
                "chains.depends(...) if the dependency can take more at once.",
                self.name,
                self.limit,
                self._waited,
                time.monotonic() - started,
            )

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()


def _limit(stub: Any) -> CallLimit:
    found: CallLimit | None = stub.__dict__.get("_chainyard_limit")
    if found is None:
        options = stub._service_descriptor.options
        found = stub.__dict__["_chainyard_limit"] = CallLimit(
            stub.name, int(options.concurrency_limit)
        )
    return found


async def post(stub: Any, params: dict[str, Any]) -> bytes:
    """The dependency's answer to one call, retried as truss retries it."""
    options = stub._service_descriptor.options
    attempts = max(1, int(options.retries))
    attempt = 1
    while True:
        try:
            return await _post_once(stub, params, float(options.timeout_sec))
        except Exception as exc:
            if attempt < attempts:
                log.info("Retrying `%s`, attempt %d", stub.name, attempt)
                attempt += 1
                continue
            if isinstance(exc, TimeoutError):
                message = (
                    f"Timeout calling remote Chainlet `{stub.name}` "
                    f"({options.timeout_sec} seconds limit)."
                )
                log.warning(message)
                raise TimeoutError(message) from None
            raise


class _Answer:
    """What truss's `async_response_raise_errors` reads of an error answer."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self._body = body

    async def json(self) -> Any:
        return json.loads(self._body)


def _body_of(params: dict[str, Any]) -> bytes:
    if "json" in params:
        return json.dumps(params["json"]).encode()
    data = params.get("data", b"")
    return data.encode() if isinstance(data, str) else bytes(data)


async def _post_once(stub: Any, params: dict[str, Any], timeout: float) -> bytes:
    from truss_chains.remote_chainlet import utils

    async with _limit(stub):
        table = direct_calls.table_for(stub._target_url)
        lease = table.pick() if table is not None else None
        if lease is not None:
            assert table is not None
            pool = direct_calls.peer_pool(table, timeout)
            try:
                if pool is not None:
                    headers = {**params["headers"], direct_calls.REPLICA_KEY_HEADER: lease.peer.key}
                    answer = await pool.post(lease.peer.predict_url, _body_of(params), headers)
                    if answer.status >= 400:
                        await utils.async_response_raise_errors(
                            _Answer(answer.status, answer.body), stub.name
                        )
                    data: bytes = answer.body
                    return data
            except http_client.ConnectFailed:
                lease.refused()  # nothing was sent: the gateway takes it, below
                lease = None
            finally:
                if lease is not None:
                    lease.release()
        async with (
            stub._client_async() as client,
            client.post(stub._target_url, **params) as response,
        ):
            await utils.async_response_raise_errors(response, stub.name)
            data = await response.read()
            return data
