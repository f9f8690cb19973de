"""`stream_remote`: a chain's answer read chunk by chunk as the entrypoint produces it.

A streaming entrypoint answers `application/octet-stream` in chunks; a chainlet that fails after
its first chunk breaks the answer off (docs/local-runtime.md, "Streaming"), which reads here as
`StreamBrokenOff` — never as a shorter, complete-looking answer.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx

from chainyard.sdk import _http, _ops
from chainyard.sdk.errors import StreamBrokenOff, error_from_response

# The reads that mean "the server broke the answer off" rather than "the server is unreachable".
_BROKEN = (httpx.RemoteProtocolError, httpx.ReadError)


class _Info:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type: str = response.headers.get("content-type", "")
        self.request_id: str | None = response.headers.get("x-baseten-request-id")

    @property
    def is_stream(self) -> bool:
        """True for a streaming entrypoint; False for a plain (JSON or msgpack) answer."""
        return self.content_type.startswith("application/octet-stream")


def _broken(exc: Exception, received: int, request_id: str | None) -> StreamBrokenOff:
    return StreamBrokenOff(
        f"the answer broke off after {received} bytes: the chain failed mid-stream (its "
        f"chainlet's log has the traceback; request id {request_id or 'unknown'}): {exc}",
        received=received,
        request_id=request_id,
    )


class RemoteStream(_Info):
    """An answer being received. Iterate it for `bytes` chunks, or `text()` for `str`."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response)
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        try:
            for chunk in self._response.iter_raw():
                received += len(chunk)
                yield chunk
        except _BROKEN as exc:
            raise _broken(exc, received, self.request_id) from exc

    def text(self) -> Iterator[str]:
        """The chunks as text (UTF-8, decoded across chunk boundaries)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in self:
            if piece := decoder.decode(chunk):
                yield piece
        if tail := decoder.decode(b"", final=True):
            yield tail


class AsyncRemoteStream(_Info):
    """The asyncio twin of `RemoteStream`."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response)
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        try:
            async for chunk in self._response.aiter_raw():
                received += len(chunk)
                yield chunk
        except _BROKEN as exc:
            raise _broken(exc, received, self.request_id) from exc

    async def text(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self:
            if piece := decoder.decode(chunk):
                yield piece
        if tail := decoder.decode(b"", final=True):
            yield tail


@contextlib.contextmanager
def open_stream(http: httpx.Client, base_url: str, op: _ops.Op[object]) -> Iterator[RemoteStream]:
    try:
        with http.stream(op.method, op.path, **_http.request_kwargs(op)) as response:
            if not response.is_success:
                response.read()
                raise error_from_response(response)
            yield RemoteStream(response)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
        raise _http.connection_failed(exc, base_url) from exc


@contextlib.asynccontextmanager
async def open_async_stream(
    http: httpx.AsyncClient, base_url: str, op: _ops.Op[object]
) -> AsyncIterator[AsyncRemoteStream]:
    try:
        async with http.stream(op.method, op.path, **_http.request_kwargs(op)) as response:
            if not response.is_success:
                await response.aread()
                raise error_from_response(response)
            yield AsyncRemoteStream(response)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
        raise _http.connection_failed(exc, base_url) from exc
