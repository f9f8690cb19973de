"""Waking the runner when a request is enqueued, from whichever thread committed it (the enqueue
route's after-commit callback runs in the committing thread), at most once per `interval`: a
burst of enqueues is one wake-up, and in a worker process one message to the controller."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

COALESCE_SECONDS = 0.01


class Coalesced:
    """`fire` on `loop`, at most once per `interval`, however often and from whatever thread the
    instance is called. Calls before `bind` are dropped (nothing is served yet)."""

    def __init__(self, fire: Callable[[], None], *, interval: float = COALESCE_SECONDS) -> None:
        self.fire = fire
        self.interval = interval
        self.loop: asyncio.AbstractEventLoop | None = None
        self._armed = False
        self._last = float("-inf")

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self) -> None:
        loop = self.loop
        # Read without a lock: a call that sees it armed just as it fires is covered by the
        # firing, which happens after the call's commit.
        if loop is None or self._armed or loop.is_closed():
            return
        self._armed = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._arm()
            return
        # RuntimeError: the loop closed meanwhile (the server is stopping).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        assert self.loop is not None
        delay = self._last + self.interval - self.loop.time()
        if delay > 0:
            self.loop.call_later(delay, self._fire)
        else:
            self._fire()

    def _fire(self) -> None:
        assert self.loop is not None
        self._armed = False
        self._last = self.loop.time()
        self.fire()
