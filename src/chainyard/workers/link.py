"""A worker's side of the channel, as the parts of the server that act through the controller
see it: wake-ups of the control loops, the shared limits (the management API's rate limit and the
failed-authentication throttle hold for the whole server, not per worker), and cache drops."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from chainyard.services.auth_throttle import FailureThrottle
from chainyard.workers.channel import Message, Peer

# How long a worker waits for the controller's answer to a limit before deciding alone.
ASK_SECONDS = 5.0


class ControllerLink:
    def __init__(self) -> None:
        self.peer: Peer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def connect(self, peer: Peer) -> None:
        self.peer = peer
        self.loop = asyncio.get_running_loop()

    def send(self, message: Message) -> None:
        """From any thread; dropped while the channel is down (the worker is then stopping)."""
        peer, loop = self.peer, self.loop
        if peer is None or loop is None or peer.closed:
            return
        if _on(loop):
            peer.send(message)
        else:
            peer.send_threadsafe(message)

    async def ask(self, message: Message) -> Any:
        if self.peer is None or self.peer.closed:
            raise ConnectionError("no channel to the controller")
        return await self.peer.ask(message, ASK_SECONDS)

    def ask_blocking(self, message: Message) -> Any:
        """`ask` from a thread other than the event loop's (authentication runs in threads)."""
        loop = self.loop
        if loop is None or _on(loop):
            raise RuntimeError("ask_blocking called on the event loop's thread")
        return asyncio.run_coroutine_threadsafe(self.ask(message), loop).result(ASK_SECONDS + 1)


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop() is loop
    return False


class SharedRateLimiter:
    """The management API's rate limit, kept by the controller for every worker at once."""

    def __init__(self, link: ControllerLink, rate: float) -> None:
        self.link = link
        self.rate = rate

    async def take(self, who: str, method: str, route: str) -> float:
        wait = await self.link.ask({"t": "rate", "who": who, "method": method, "route": route})
        return float(wait)


class SharedThrottle(FailureThrottle):
    """The failed-authentication throttle, kept by the controller. Should the controller not
    answer, this worker's own buckets decide, so that a guesser is never unthrottled."""

    def __init__(self, link: ControllerLink, burst: int, per_second: float) -> None:
        super().__init__(burst, per_second)
        self.link = link

    def wait(self, host: str) -> float:
        try:
            return float(self.link.ask_blocking({"t": "throttle_wait", "host": host}))
        except Exception:
            return super().wait(host)

    def failed(self, host: str) -> None:
        super().failed(host)
        self.link.send({"t": "throttle_failed", "host": host})
