"""A streamed answer that can be broken off: how the gateway passes on a replica's stream that
broke off (its chainlet failed mid-stream). The replica side has its twin in chains/streaming.py
(replicas import nothing of the server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class StreamBrokenOff(Exception):
    """Ends a streamed response without its final chunk: the body's source failed."""


class AbortableStream(StreamingResponse):
    """A streamed response that a `StreamBrokenOff` from its body ends without the final chunk
    (the HTTP server then closes the connection, so the reader sees an incomplete body, not a
    complete shorter one). `on_close` runs as soon as the response ends, however it ends."""

    def __init__(
        self, *args: Any, on_close: Callable[[], None] = lambda: None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except StreamBrokenOff:
            return
        finally:
            self._on_close()
