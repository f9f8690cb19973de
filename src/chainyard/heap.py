"""How the server's process uses Python's cyclic garbage collector.

A full collection walks every container object the process holds and stops every thread while it
does. In a server watching 20,000 running chainlets that was 340,000 objects and 0.2 to 0.45 s a
time, about once a second while the control loops ran (bench/control_plane.py, SQLite, measured
with gc.callbacks): the slowest API reads were the ones a collection landed in. Two things keep
those pauses short and rare:

- What start-up built (modules, the ORM's mappers, FastAPI's routes and models: about 137,000
  objects) lives as long as the process, so it is frozen: collections no longer walk it. Frozen
  objects are still freed when nothing refers to them; only reference cycles among them wait
  for `thaw`.
- The youngest generation is collected after 10,000 new objects instead of 700. A loop's pass
  builds tens of thousands of short-lived rows; with the small threshold they survived into the
  oldest generation while the pass ran, and a full collection follows once the oldest generation
  has grown by a quarter. In the same benchmark minute, with start-up frozen, full collections
  went from 89 to 8; a young collection takes a few milliseconds.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def settle() -> tuple[int, int, int]:
    """Freezes what start-up built and raises the young generation's threshold; returns the
    thresholds it replaced. Called once start-up is done; `thaw` undoes it (tests start many
    servers in one process)."""
    before = gc.get_threshold()
    # The younger generations only: start-up's short-lived cycles go, and a full collection of a
    # large process (a test run's) would cost every start a fraction of a second.
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, before[1], before[2])
    return before


def thaw(thresholds: tuple[int, int, int]) -> None:
    gc.unfreeze()
    gc.set_threshold(*thresholds)
