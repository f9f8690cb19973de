"""A streamed HTTP answer that can be broken off, shared by the replica (a chainlet's stream that
fails mid-way) and the gateway (passing such a replica's stream on). A leaf module: replicas import
nothing of the server, so both sides take it from here.

Breaking off means ending without the chunked encoding's final chunk: the HTTP server then closes
the connection, so a reader sees an incomplete body (an error), never a complete shorter one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class StreamBrokenOff(Exception):
    """Raised by a streamed body's iterator: its source failed, end the answer incomplete."""


class AbortableStream(StreamingResponse):
    """A streamed response that a `StreamBrokenOff` from its body ends without the final chunk.
    Returning with the response incomplete makes the HTTP server close the connection (one log
    line), where letting the exception escape would log it again with the server's traceback."""

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
            # At once, whether the stream ended, broke off or the reader went away (an unfinished
            # body iterator would otherwise be closed only when collected).
            self._on_close()
