"""Inference request bodies on their way through the gateway: counted against the body cap and
streamed to the replica, never read whole into the gateway's memory first.

A small body with a declared length is read once and sent as bytes: a replica that refuses the
connection can then be swapped for another without asking the client again. Everything else (a
large body, or one sent without Content-Length) is streamed to the replica as it arrives, counted
as it goes; past the cap the upload stops and the caller gets 413. A streamed body can go to
another replica only while none of it has been read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import Scope, Send

from chainyard.domain.body_limits import too_large_message

# Bodies up to this size (with Content-Length) are read whole, once; larger ones are streamed.
BUFFER_BYTES = 2**20


# Bodies the replica reads as msgpack (chains/binary.py, which replicas import instead of this):
# passed on as bytes with their content type. Any other body is sent on as JSON.
BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/msgpack",
        "application/x-msgpack",
        "application/vnd.msgpack",
    }
)


def forwarded_content_type(content_type: str | None) -> str:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media if media in BINARY_TYPES else "application/json"


class BodyTooLarge(Exception):
    pass


def streams_body(path: str) -> bool:
    """Inference paths: their bodies go to a replica as they arrive, counted here, not read by
    the app's body-size middleware."""
    return path.endswith("/run_remote") or (
        path.startswith("/internal/chainlets/") and path.endswith("/predict")
    )


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


class StreamedBody:
    """The request body as an async iterable for aiohttp, counted against `limit`."""

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self.limit = limit
        self.started = False
        self.sent = 0
        self.too_large = False
        self.caller_gone = False

    async def chunks(self) -> AsyncIterator[bytes]:
        # aiohttp reports an exception from here as a connection error of the upload; these
        # flags say what really happened.
        self.started = True
        try:
            async for chunk in self._request.stream():
                if not chunk:
                    continue
                self.sent += len(chunk)
                if self.sent > self.limit:
                    self.too_large = True
                    raise BodyTooLarge(too_large_message(self.limit))
                yield chunk
        except ClientDisconnect:
            self.caller_gone = True
            raise


async def prepare(request: Request, limit: int) -> bytes | StreamedBody:
    """The body to send on, as bytes (small, declared length) or as a `StreamedBody`. Raises
    BodyTooLarge for a declared length over `limit`, before anything is read."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise BodyTooLarge(too_large_message(limit))
    if length is not None and length <= BUFFER_BYTES:
        return await request.body()
    return StreamedBody(request, limit)


async def refuse_too_large(scope: Scope, send: Send, limit: int) -> bool:
    """Answers 413 at once, before the body is read, when the declared length is over `limit`
    (True: answered)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return False
            if declared <= limit:
                return False
            body = {"error": too_large_message(limit), "error_code": "payload_too_large"}
            await JSONResponse(body, status_code=413)(scope, _no_body, send)
            return True
    return False


async def _no_body() -> dict[str, str]:
    return {"type": "http.disconnect"}
