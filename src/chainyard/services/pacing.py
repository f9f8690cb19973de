"""Passes over the whole fleet, paced so that the API keeps its interpreter.

The control loops run in the API server's process. A pass over 20,000 running chainlets (the
reconciler's full scan, the autoscaler's idle pass, a restart's first tick) is hundreds of
milliseconds of Python, and while it runs every request shares the GIL with it. On SQLite that
is worse than sharing: the driver gives the GIL up for every row it steps, and a request reading
100 rows waited for it 100 times (bench/control_plane.py: a 6 ms paged list took 40-45 ms during
an autoscaler pass).

So a pass works in slices: after `slice_seconds` of its thread's CPU time it sleeps `rest` times
as long, if the server is handling a request (`Core.requests_waiting`). A request that meets a
pass shares the interpreter with it for one slice at most before it has it alone; with no request
in flight (a restart at night) a pass runs at full speed.

Work is counted in CPU time, not wall time. While the API is busy a slice takes longer in wall
time (the pass waits for the GIL), and counting that wait as work made a pass rest for it too: an
idle pass of 0.12 s of CPU took 4.3 s while the benchmark's client sent requests back to back,
and the autoscaler's busy chainlets waited for it. A pass over a small fleet is one slice and
never sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Work (CPU seconds of the pass's thread) between two rests. Long enough that the sleeps' own
# cost is nothing; short enough that a request meeting a slice hardly notices it.
SLICE_SECONDS = 0.01
# Rest after a slice, as a multiple of the slice's length: the pass gets at most half the
# interpreter while it runs.
REST_PER_SLICE = 1.0
# Rows fetched, or items handled, between two looks at the clock.
STEP = 500


class Pacer:
    """Decides when a pass in a worker thread rests. Not for the event loop: it sleeps."""

    def __init__(
        self,
        *,
        slice_seconds: float = SLICE_SECONDS,
        rest: float = REST_PER_SLICE,
        waiting: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.thread_time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.slice_seconds = slice_seconds
        self.rest = rest
        self.waiting = waiting
        self.clock = clock
        self.sleep = sleep
        self._since = clock()
        self.rested = 0.0

    def checkpoint(self) -> None:
        """Rests if the work since the last rest has filled a slice and someone waits for the
        interpreter (`waiting`); with nobody waiting, the next slice starts at once."""
        worked = self.clock() - self._since
        if worked >= self.slice_seconds:
            if self.waiting():
                pause = worked * self.rest
                self.sleep(pause)
                self.rested += pause
            self._since = self.clock()

    def over(self, items: Sequence[T], step: int = STEP) -> Iterator[Sequence[T]]:
        """`items` in steps, with a checkpoint after each."""
        for start in range(0, len(items), step):
            yield items[start : start + step]
            self.checkpoint()

    def rows(self, result: Any, step: int = STEP) -> Iterator[Sequence[Any]]:
        """The rows of a SQLAlchemy result, fetched a step at a time with a checkpoint after
        each: SQLite produces rows as they are fetched, so the query's own work is sliced too."""
        for part in result.partitions(step):
            yield part
            self.checkpoint()


def unpaced() -> Pacer:
    """A pacer that never rests (callers outside the loops, tests)."""
    return Pacer(slice_seconds=float("inf"))
