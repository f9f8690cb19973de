"""Picks a ready replica for a chainlet and forwards a request to it."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from chainyard import replica_auth
from chainyard.abortable import AbortableStream, StreamBrokenOff
from chainyard.domain.addresses import without_addresses
from chainyard.domain.body_limits import DEFAULT_MAX_BODY_BYTES, too_large_message
from chainyard.gateway import bodies
from chainyard.gateway import upstream as upstream_clients
from chainyard.gateway.direct import DirectDemand
from chainyard.runtime.base import ReplicaPhase, ReplicaState

log = logging.getLogger("chainyard.gateway")

MAX_CONNECT_ATTEMPTS = 4
# Requests one chainlet may hold waiting for a free replica slot; past it the gateway answers 429.
DEFAULT_QUEUE_LIMIT = 256


class ReplicaSource(Protocol):
    """Where the router learns which replicas run: the runtime, or the replicas another server
    (the leader) publishes. A replica table (runtime/replica_table.py): `replicas()` stays the
    same while `generation` does, and `changed(since)` returns once it moved."""

    def replicas(self) -> Sequence[ReplicaState]: ...

    @property
    def generation(self) -> int: ...

    async def changed(self, since: int) -> int: ...


class QueueFull(Exception):
    pass


class ReplicasGone(Exception):
    """Every replica tried refused the connection and none is left: nothing was delivered, so the
    caller may send the request elsewhere (the environment may have moved on)."""


# Headers that truss's stubs and request context read and pass along.
_FORWARDED = ("x-baseten-request-id", "x-baseten-chain-request-id", "traceparent", "accept")


def inference_error(
    status: int,
    message: str,
    code: str,
    detail: str | None = None,
    *,
    retry_after: int | None = None,
) -> Response:
    body: dict[str, object] = {"error": message, "error_code": code}
    if detail:
        body["detail"] = detail
    headers = {}
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=headers)


def _with_error_code(body: bytes, status: int) -> bytes:
    """Adds the inference spec's `error_code` to a chainlet's error answer, keeping the rest (a
    chainlet exception's structured detail and chained traceback stay as truss sends them)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict) or "error" not in parsed or "error_code" in parsed:
        return body
    parsed["error_code"] = "client_error" if status < 500 else "application_error"
    return json.dumps(parsed).encode()


def _reason(exc: BaseException) -> str:
    """A connection error, for the caller: aiohttp names the replica's address, which is the
    gateway's alone."""
    return without_addresses(str(exc))


def _unreachable(exc: BaseException) -> Response:
    return inference_error(
        502, "the chainlet's replica is unreachable", "model_unavailable", _reason(exc)
    )


class ReplicaRouter:
    def __init__(
        self,
        runtime: ReplicaSource,
        *,
        request_timeout: float = 600.0,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        direct_calls: bool = True,
    ) -> None:
        self.runtime = runtime
        # Whether replicas may learn their dependencies' replicas and call them directly
        # (gateway/direct.py); off, every dependency call crosses this gateway.
        self.direct_calls = direct_calls
        self.direct_demand = DirectDemand()
        # Set when the server is asked to stop: long-polls answer at once rather than hold the
        # graceful shutdown, which waits for every request in flight, for up to their wait.
        self.stopping = asyncio.Event()
        self.request_timeout = request_timeout
        self.queue_limit = queue_limit
        self.max_body_bytes = max_body_bytes
        # Requests running on each replica address, to keep within predict_concurrency.
        self.load: collections.Counter[str] = collections.Counter()
        self.in_flight: collections.Counter[str] = collections.Counter()
        # Requests held while a chainlet has no ready replica (waking from zero, starting).
        self.waiting: collections.Counter[str] = collections.Counter()
        self.requests_total: collections.Counter[str] = collections.Counter()
        # (chainlet id, "4xx" / "5xx") -> count of error answers.
        self.errors_total: collections.Counter[tuple[str, str]] = collections.Counter()
        self.observe_latency: Callable[[str, float], None] = lambda _chainlet, _seconds: None
        self._rr = itertools.count()
        # The replica table's generation the index below was built from.
        self._indexed_generation: int | None = None
        self._ready_index: dict[str, list[str]] = {}
        # (chainlet id, address) -> the credential that replica wants (replica_auth.py).
        self._credentials: dict[tuple[str, str], str] = {}
        # Chainlet id -> requests queued in `acquire`, woken when a slot of it is released.
        self._slot_waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._clients: upstream_clients.Clients | None = None

    def stop_waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        """Answers the long-polls now. Called from a signal handler, which runs between two
        steps of `loop` (the router's): the event is set by the loop itself."""
        loop.call_soon_threadsafe(self.stopping.set)

    async def start(self) -> None:
        self._clients = upstream_clients.Clients(self.request_timeout)

    async def close(self) -> None:
        if self._clients is not None:
            await self._clients.close()

    def ready_addresses(self, chainlet_id: str) -> list[str]:
        generation = self.runtime.generation
        if generation != self._indexed_generation:
            # Indexed once per change of what runs, not scanned once per request.
            snapshot = self.runtime.replicas()
            index: dict[str, list[str]] = collections.defaultdict(list)
            credentials: dict[tuple[str, str], str] = {}
            for r in snapshot:
                if r.phase == ReplicaPhase.READY and r.address:
                    index[r.chainlet_id].append(r.address)
                # Of every replica with an address, ready or not: a request may go to one that
                # was ready when it was chosen and drains now (a promotion's old side). Keyed by
                # chainlet too, so a port taken over by another chainlet's replica refuses it.
                if r.address and r.credential:
                    credentials[(r.chainlet_id, r.address)] = r.credential
            self._ready_index = dict(index)
            self._credentials = credentials
            self._indexed_generation = generation
        return list(self._ready_index.get(chainlet_id, ()))

    def ready_replicas(self, chainlet_id: str) -> list[tuple[str, str]]:
        """(address, credential) of each ready replica of the chainlet, for a replica that calls
        it directly (gateway/direct.py)."""
        return sorted(
            (address, self._credentials.get((chainlet_id, address), ""))
            for address in self.ready_addresses(chainlet_id)
        )

    def credential_headers(self, chainlet_id: str, address: str) -> dict[str, str]:
        """What a request to the chainlet's replica at `address` must carry for it to answer."""
        return replica_auth.headers(self._credentials.get((chainlet_id, address)))

    def demand(self) -> dict[str, float]:
        """What the autoscaler scales on: requests running plus requests held, per chainlet,
        plus the calls replicas report making straight to the chainlet's replicas (which this
        gateway does not see; a call that came through it is counted here only)."""
        direct = self.direct_demand.totals()
        keys = set(self.in_flight) | set(self.waiting) | set(direct)
        return {k: float(self.in_flight[k] + self.waiting[k]) + direct.get(k, 0.0) for k in keys}

    async def wait_for_replica(self, chainlet_id: str, timeout: float) -> list[str]:
        """The chainlet's ready addresses, waiting up to `timeout` seconds for one: woken by each
        change of the replica table, never by a timer."""
        self.waiting[chainlet_id] += 1
        try:
            async with asyncio.timeout(timeout):
                while True:
                    generation = self.runtime.generation
                    addresses = self.ready_addresses(chainlet_id)
                    if addresses:
                        return addresses
                    await self.runtime.changed(generation)
        except TimeoutError:
            return self.ready_addresses(chainlet_id)
        finally:
            self.waiting[chainlet_id] -= 1

    async def acquire(self, chainlet_id: str, addresses: list[str], limit: int) -> str:
        """A replica with a free slot (fewer than `limit` requests running), least loaded first;
        waits in a bounded queue while every replica is busy, woken when one of the chainlet's
        slots is released or the replicas change. Raises QueueFull past the bound."""
        queued = False
        try:
            while True:
                generation = self.runtime.generation
                current = self.ready_addresses(chainlet_id) or addresses
                free = [a for a in current if self.load[a] < limit]
                if free:
                    start = next(self._rr)
                    address = min(
                        (free[(start + i) % len(free)] for i in range(len(free))),
                        key=lambda a: self.load[a],
                    )
                    self.load[address] += 1
                    return address
                if not queued:
                    if self.waiting[chainlet_id] >= self.queue_limit:
                        raise QueueFull(chainlet_id)
                    self.waiting[chainlet_id] += 1
                    queued = True
                await self._slot_or_change(chainlet_id, generation)
        finally:
            if queued:
                self.waiting[chainlet_id] -= 1

    def release_slot(self, chainlet_id: str, address: str) -> None:
        """A request to `address` (a replica of `chainlet_id`) ended: one queued for the
        chainlet may take its slot."""
        self.load[address] -= 1
        waiters = self._slot_waiters.pop(chainlet_id, None)
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def _slot_or_change(self, chainlet_id: str, generation: int) -> None:
        """Returns when a slot of the chainlet is released or the replica table moves past
        `generation`."""
        slot = asyncio.get_running_loop().create_future()
        self._slot_waiters.setdefault(chainlet_id, set()).add(slot)
        change = asyncio.ensure_future(self.runtime.changed(generation))
        try:
            await asyncio.wait((slot, change), return_when=asyncio.FIRST_COMPLETED)
        finally:
            change.cancel()
            waiters = self._slot_waiters.get(chainlet_id)
            if waiters is not None:
                waiters.discard(slot)
                if not waiters:
                    del self._slot_waiters[chainlet_id]

    async def forward(
        self,
        request: Request,
        chainlet_id: str,
        addresses: list[str],
        *,
        limit: int = 1,
        read_timeout: float | None = None,
    ) -> Response:
        """`read_timeout`: a longer bound than the router's on each wait for the replica (the
        async runner's calls may run for an hour)."""
        started = time.perf_counter()
        response = await self._forward(
            request, chainlet_id, addresses, limit=limit, read_timeout=read_timeout
        )
        if response.status_code >= 400:
            self.errors_total[(chainlet_id, f"{response.status_code // 100}xx")] += 1
        if not isinstance(response, StreamingResponse):
            self.observe_latency(chainlet_id, time.perf_counter() - started)
        return response

    async def _forward(
        self,
        request: Request,
        chainlet_id: str,
        addresses: list[str],
        *,
        limit: int = 1,
        read_timeout: float | None = None,
    ) -> Response:
        """Sends the request to one of `addresses`, at most `limit` at a time per replica. When a
        replica refuses the connection, tries another; with none left, raises ReplicasGone."""
        assert self._clients is not None
        try:
            body = await bodies.prepare(request, self.max_body_bytes)
        except bodies.BodyTooLarge as exc:
            return inference_error(413, str(exc), "payload_too_large")
        try:
            address = await self.acquire(chainlet_id, addresses, limit)
        except QueueFull:
            return inference_error(
                429,
                f"all replicas are busy and {self.queue_limit} requests already wait",
                "rate_limited",
                retry_after=1,
            )
        request_id = request.headers.get("x-baseten-request-id") or uuid.uuid4().hex
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
        headers["x-baseten-request-id"] = request_id
        headers["content-type"] = bodies.forwarded_content_type(request.headers.get("content-type"))
        self.in_flight[chainlet_id] += 1
        self.requests_total[chainlet_id] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight[chainlet_id] -= 1
                self.release_slot(chainlet_id, address)

        def too_large() -> Response | None:
            if isinstance(body, bodies.StreamedBody) and body.too_large:
                release()
                return inference_error(413, too_large_message(body.limit), "payload_too_large")
            return None

        tried: set[str] = set()
        while True:
            tried.add(address)
            try:
                upstream = await self._clients.post(
                    f"{address}/v1/models/model:predict",
                    body if isinstance(body, bytes) else body.chunks(),
                    {**headers, **self.credential_headers(chainlet_id, address)},
                    read_timeout=read_timeout,
                )
                break
            except bodies.BodyTooLarge:
                refused = too_large()
                assert refused is not None
                return refused
            except TimeoutError:
                release()
                return inference_error(504, "the chainlet did not answer in time", "timeout")
            except (*upstream_clients.BROKEN, upstream_clients.ConnectFailed) as exc:
                if (refused := too_large()) is not None:
                    return refused
                caller_gone = isinstance(body, bodies.StreamedBody) and body.caller_gone
                started = isinstance(body, bodies.StreamedBody) and body.started
                if caller_gone or not upstream_clients.not_delivered(exc) or started:
                    # Delivered (or part of a streamed body is gone): it cannot be sent again.
                    release()
                    if caller_gone:
                        return inference_error(
                            400, "the caller went away before the end of its body", "client_error"
                        )
                    return _unreachable(exc)
                # Refused, or the pooled connection was closed under us while sending (a replica
                # shutting down closes its idle connections): the request was not delivered, so
                # another replica can take it safely.
                others = [a for a in self.ready_addresses(chainlet_id) if a not in tried]
                if not others and len(tried) < MAX_CONNECT_ATTEMPTS:
                    release()
                    raise ReplicasGone(chainlet_id) from exc
                if not others:
                    release()
                    return _unreachable(exc)
                self.release_slot(chainlet_id, address)
                address = others[0]
                self.load[address] += 1
            except Exception:
                release()  # whatever went wrong, the replica's slot must not stay taken
                raise
        out_headers = {"X-BASETEN-REQUEST-ID": request_id}
        content_type = upstream.headers.get("content-type", "application/json")
        if content_type.startswith("application/octet-stream"):

            async def chunks() -> AsyncIterator[bytes]:
                try:
                    async for chunk in upstream.chunks():
                        yield chunk
                except (*upstream_clients.BROKEN, TimeoutError) as exc:
                    # The replica broke its answer off (its chainlet failed mid-stream, or it
                    # went away): break ours off too, so the caller sees an error, not a
                    # shorter body.
                    log.warning(
                        "the stream from chainlet %s (request %s) broke off: %s",
                        chainlet_id,
                        request_id,
                        exc or type(exc).__name__,
                    )
                    raise StreamBrokenOff(str(exc)) from exc
                finally:
                    upstream.release()
                    release()

            def close() -> None:
                upstream.release()
                release()

            return AbortableStream(
                chunks(),
                status_code=upstream.status,
                headers=out_headers,
                media_type=content_type,
                on_close=close,
            )
        try:
            data = await upstream.read()
        except (*upstream_clients.BROKEN, TimeoutError) as exc:
            return inference_error(
                502,
                "the chainlet's replica broke the connection",
                "model_unavailable",
                _reason(exc),
            )
        finally:
            upstream.release()
            release()
        if upstream.status >= 400:
            data = _with_error_code(data, upstream.status)
        return Response(
            data, status_code=upstream.status, headers=out_headers, media_type=content_type
        )
