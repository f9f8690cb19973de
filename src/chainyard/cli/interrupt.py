"""Ctrl-C for commands that poll until interrupted (`logs -f`, `watch`).

Python raises KeyboardInterrupt wherever the main thread happens to be. In the middle of an HTTP
request that can be between a lock's acquire and the block that releases it, inside the client's
connection pool; closing the client at exit would then wait for that lock forever. So the signal
only sets a flag here, and the loop ends at its next wait, between requests.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Interrupt:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        """Whether Ctrl-C came (also what watchfiles asks of a `stop_event`)."""
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; whether Ctrl-C came (now or before)."""
        return self._event.wait(seconds)


@contextlib.contextmanager
def deferred_interrupt(enabled: bool = True) -> Iterator[Interrupt]:
    """SIGINT sets the returned flag instead of raising, until the block ends (with
    `enabled=False`, Ctrl-C keeps raising and the flag is never set; a SIGINT the process was
    started ignoring stays ignored)."""
    interrupt = Interrupt()
    if not enabled or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Ignored by whoever started us (nohup, a background job): it stays ignored.
        yield interrupt
        return

    def _handler(_signum: int, _frame: FrameType | None) -> None:
        interrupt.set()

    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)
