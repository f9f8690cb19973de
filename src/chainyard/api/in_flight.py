"""How many HTTP requests the server is handling right now.

The control loops' long passes rest between slices only while a request is being handled
(services/pacing.py): with nobody waiting for the interpreter, a pass after a restart runs at full
speed, and a request that arrives meets at most one slice of it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send


class RequestCounter:
    def __init__(self) -> None:
        self.value = 0

    def any(self) -> bool:
        """Read from the loops' worker threads: reading an int needs no lock."""
        return self.value > 0


class CountRequests:
    """ASGI middleware: counts an HTTP request from its start to the end of its response."""

    def __init__(
        self,
        app: ASGIApp,
        counter: RequestCounter,
        long_polls: Callable[[str, str], bool] = lambda _method, _path: False,
    ) -> None:
        self.app = app
        self.counter = counter
        # (method, path) of requests that are held open on purpose (a replica's long-poll):
        # they wait for the interpreter no more than an idle connection does.
        self.long_polls = long_polls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.long_polls(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        # On the event loop only: += on one thread is not interleaved with itself.
        self.counter.value += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter.value -= 1
