"""A webhook receiver on loopback for tests: a real HTTP(S) server that records what it gets and
answers from a script (a status per request, or a hang), then 200.

    async with Receiver(script=[500, 500]) as receiver:
        ... deliver to receiver.url() ...
    receiver.received[0].headers["x-baseten-signature"]

`running_in_thread()` serves it from a thread of its own, for tests that block (a live server
delivering to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import threading
from collections.abc import Iterator, Sequence

from aiohttp import web

# A script entry: a status to answer, or HANG (answer nothing for `hang_seconds`).
HANG = "hang"


@dataclasses.dataclass(frozen=True)
class Received:
    path: str
    # Lowercase names.
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(
        self,
        script: Sequence[int | str] = (),
        *,
        then: int = 200,
        ssl_context: ssl.SSLContext | None = None,
        hang_seconds: float = 30.0,
        redirect_to: str = "/elsewhere",
    ) -> None:
        self._script = list(script)
        self._then = then
        self._ssl = ssl_context
        self._hang = hang_seconds
        self._redirect_to = redirect_to
        self.received: list[Received] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._ssl else "http"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(
                path=request.path_qs,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        answer = self._script.pop(0) if self._script else self._then
        if answer == HANG:
            # Until the hang is over or the receiver closes, whichever comes first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._hang)
            return web.Response(status=200)
        status = int(answer)
        headers = {"Location": self._redirect_to} if 300 <= status < 400 else {}
        return web.Response(status=status, headers=headers, text="answer")

    async def __aenter__(self) -> Receiver:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[Receiver]:
        """Serves from a thread with its own event loop until the block ends."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(timeout=10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.__aexit__(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()


def free_port() -> int:
    """A loopback port nothing listens on (a connection to it is refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
