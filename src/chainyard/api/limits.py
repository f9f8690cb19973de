"""Request limits at the edge: request body size, and a rate limit per API key and endpoint.

Both answer before any use case runs, so a refused request changes nothing.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from fastapi import Request
from starlette.responses import JSONResponse

from chainyard.domain.body_limits import too_large_message
from chainyard.domain.errors import RateLimited

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The rate limit is Baseten's management API limit: it applies to `/v1/*` alone. Inference
# (run_remote, wake, and replicas calling their dependencies) is governed by the gateway's
# bounded queue instead, which answers 429 only when a chainlet really is overloaded.
_RATE_LIMITED_PREFIX = "/v1/"


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413: by Content-Length at once, and by
    counting for bodies sent without one. `limits_by_path` gives larger limits to some paths
    (the deploy upload carries a source archive)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        limits_by_path: dict[str, int],
        limits_by_pattern: Sequence[tuple[re.Pattern[str], int]] = (),
        streamed: Callable[[str], bool] = lambda _path: False,
        streamed_limit: int = 0,
    ) -> None:
        self.app = app
        self.limit = limit
        self.limits_by_path = limits_by_path
        # Paths with an id in them (fullmatch).
        self.limits_by_pattern = limits_by_pattern
        # Paths whose handler streams the body on and counts it itself (inference): checked here
        # by Content-Length only, never read here.
        self.streamed = streamed
        self.streamed_limit = streamed_limit

    def _limit_of(self, path: str) -> int:
        limit = self.limits_by_path.get(path)
        if limit is not None:
            return limit
        for pattern, larger in self.limits_by_pattern:
            if pattern.fullmatch(path):
                return larger
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = self.streamed(scope["path"])
        limit = self.streamed_limit if streamed else self._limit_of(scope["path"])
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None or streamed:
            if declared is not None and declared > limit:
                await _too_large(send, limit, inference=streamed)
                return
            await self.app(scope, receive, send)
            return
        # No length announced (chunked): read the body up to the limit first, then hand it on.
        # Refusing from inside the app's own body reading would surface as its parse error.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int, *, inference: bool = False) -> None:
    if inference:
        # The inference spec's error shape (as the gateway's own 413).
        body = {"error": too_large_message(limit), "error_code": "payload_too_large"}
    else:
        body = {
            "error": f"the request body is larger than {_size(limit)}",
            "code": "PAYLOAD_TOO_LARGE",
        }
    response = JSONResponse(body, status_code=413)
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n >= 2**20 and n % 2**20 == 0 else f"{n} bytes"


class Limiter(Protocol):
    rate: float

    def take(self, who: str, method: str, route: str) -> float | Awaitable[float]: ...


class RateLimiter:
    """A token bucket per (API key, method, route): `rate` requests per second, bursts of up to
    one second's worth. Requests without a key share a bucket per client address."""

    _MAX_BUCKETS = 100_000

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def take(self, who: str, method: str, route: str) -> float:
        """Spends one token; returns 0.0, or the seconds to wait when there is none."""
        now = self.clock()
        key = (who, method, route)
        tokens, last = self._buckets.get(key, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= self._MAX_BUCKETS:
            self._buckets.clear()  # idle buckets are full anyway; forgetting them loses nothing
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0


def _caller(request: Request) -> str:
    header = request.headers.get("authorization", "")
    _, _, value = header.partition(" ")
    if value.strip():
        # A digest, not the key: buckets must not hold secrets.
        return "key:" + hashlib.sha256(value.strip().encode()).hexdigest()[:32]
    client = request.client.host if request.client else "unknown"
    return "addr:" + client


async def rate_limit(request: Request) -> None:
    """App-wide dependency: one token per request from the caller's bucket for this route."""
    limiter: Limiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None or not request.url.path.startswith(_RATE_LIMITED_PREFIX):
        return
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    taken = limiter.take(_caller(request), request.method, template)
    # A worker process asks the controller, which keeps the buckets of the whole server.
    wait = taken if isinstance(taken, float) else await taken
    if wait > 0:
        raise RateLimited(
            f"too many requests to {request.method} {template} with this API key "
            f"(limit {limiter.rate:g} per second); retry after {math.ceil(wait * 10) / 10:g} s",
            retry_after=math.ceil(wait * 10) / 10,
        )
