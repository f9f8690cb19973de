"""A claimed request's predict call, through this server's own gateway, and what its answer
means for the request (docs/async-inference.md, "The runner").

The call goes to the gateway's internal async route (gateway/async_internal.py) on a keep-alive
pool (chainyard/http_client.py), so an async request meets the same replica limits, demand and
wake from zero as a sync call, at the cost of one loopback exchange. What comes back:

- 2xx with a JSON body: the output;
- the error answers of the gateway and the chain: a failure with the spec's code, and whether
  another attempt may help (`outcome_of`);
- no answer from the gateway at all (it is not listening, it closed the connection, it is not
  this server's): `Unreachable`. Not the request's fault: the runner gives it back without
  spending an attempt and waits for its gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from chainyard import http_client
from chainyard.domain.async_requests import ErrorCode
from chainyard.gateway.async_internal import PING_PATH, run_path
from chainyard.services.async_queue import Claimed

# How much of an error answer's text is kept in the request's errors.
MAX_MESSAGE = 1000


@dataclasses.dataclass(frozen=True)
class Output:
    value: Any


@dataclasses.dataclass(frozen=True)
class Failure:
    code: ErrorCode
    message: str
    retryable: bool


@dataclasses.dataclass(frozen=True)
class Unreachable:
    reason: str


CallResult = Output | Failure | Unreachable


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    """The `error` and `error_code` of an error answer (gateway/router.py's shape, or truss's)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body[:MAX_MESSAGE].decode("utf-8", "replace").strip()
        return (text or None), None
    if not isinstance(parsed, dict):
        return None, None
    error, code = parsed.get("error"), parsed.get("error_code")
    message = error if isinstance(error, str) else (None if error is None else json.dumps(error))
    return message, code if isinstance(code, str) else None


def outcome_of(status: int, body: bytes) -> Output | Failure:
    """What an answer of the gateway means for an async request."""
    if 200 <= status < 300:
        try:
            return Output(json.loads(body) if body else None)
        except ValueError:
            return Failure(
                ErrorCode.MODEL_PREDICT_ERROR, "the chain's answer is not JSON", retryable=False
            )
    message, code = _error_fields(body)
    text = (message or f"the chain answered {status}")[:MAX_MESSAGE]
    if status == 404:
        return Failure(ErrorCode.MODEL_DOES_NOT_EXIST, text, retryable=False)
    if status == 429:
        # The gateway's queue for the chainlet is full: the request itself is fine.
        return Failure(ErrorCode.MODEL_UNAVAILABLE, text, retryable=True)
    if 400 <= status < 500:
        return Failure(ErrorCode.MODEL_INVALID_INPUT, text, retryable=False)
    if code == "model_not_ready":
        return Failure(ErrorCode.MODEL_NOT_READY, text, retryable=True)
    if status == 504 or code == "timeout":
        # Re-running a call that ran out its time would likely run it out again.
        return Failure(ErrorCode.MODEL_PREDICT_TIMEOUT, text, retryable=False)
    if code == "model_unavailable":
        return Failure(ErrorCode.MODEL_UNAVAILABLE, text, retryable=True)
    if code == "internal_baseten_error":
        return Failure(ErrorCode.INTERNAL_SERVER_ERROR, text, retryable=True)
    return Failure(ErrorCode.MODEL_PREDICT_ERROR, text, retryable=True)


class Caller:
    """Calls chains through the gateway at `base_url` (one pool per runner, on its loop)."""

    def __init__(self, base_url: str, secret: str, *, run_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.run_seconds = run_seconds
        self._auth = f"Bearer {secret}"
        self.pool = http_client.Pool(connect_timeout=5.0, read_timeout=run_seconds)

    async def call(self, claimed: Claimed) -> CallResult:
        body = json.dumps(claimed.model_input, separators=(",", ":")).encode()
        headers = {
            "authorization": self._auth,
            "content-type": "application/json",
            "x-baseten-request-id": claimed.request_id,
        }
        url = self.base_url + run_path(claimed.deployment_id)
        try:
            async with asyncio.timeout(self.run_seconds):
                response = await self.pool.post(url, body, headers)
        except TimeoutError:
            return Failure(
                ErrorCode.MODEL_PREDICT_TIMEOUT,
                f"the chain did not answer within {self.run_seconds:g} s",
                retryable=False,
            )
        except (http_client.ConnectFailed, http_client.Disconnected) as exc:
            return Unreachable(str(exc) or type(exc).__name__)
        if response.status == 401:
            return Unreachable("the gateway refused this runner's secret")
        return outcome_of(response.status, response.body)

    async def ping(self) -> bool:
        """Whether this server's gateway serves the internal route and knows the secret."""
        try:
            async with asyncio.timeout(5.0):
                answer = await self.pool.open(
                    "GET", self.base_url + PING_PATH, b"", {"authorization": self._auth}
                )
                try:
                    await answer.read()
                finally:
                    answer.release()
        except (OSError, TimeoutError, ConnectionError):
            return False
        return answer.status == 204

    def close(self) -> None:
        self.pool.close()
