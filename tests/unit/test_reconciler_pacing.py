"""How often the reconciler ticks and scans when wake-ups come back to back."""

from __future__ import annotations

import asyncio
import itertools
import time

from chainyard.reconciler import loop
from chainyard.reconciler.loop import Reconciler


def test_full_scans_are_spaced_in_time_not_ticks() -> None:
    reconciler = Reconciler(core=None, runtime=None, interval=1.0)  # type: ignore[arg-type]
    assert reconciler._full_scan_due(100.0)  # the first tick scans everything
    # Woken ticks in quick succession: a hundred of them within the spacing scan nothing more.
    spacing = loop.FULL_SCAN_EVERY * reconciler.interval
    assert not any(reconciler._full_scan_due(100.0 + i * spacing / 101) for i in range(1, 101))
    assert reconciler._full_scan_due(100.0 + spacing)
    assert not reconciler._full_scan_due(100.0 + spacing + 0.01)


def test_a_slow_tick_is_followed_by_a_longer_rest_even_when_woken() -> None:
    spans: list[tuple[float, float]] = []
    # An interval of an hour: had a woken tick waited for it, the deadline below would end the test.
    reconciler = Reconciler(core=None, runtime=None, interval=3600.0)  # type: ignore[arg-type]

    async def slow_tick() -> None:
        started = time.perf_counter()
        await asyncio.sleep(0.05)
        # Every tick asks for another at once, as a burst of API changes does.
        reconciler._wake.set()
        spans.append((started, time.perf_counter()))

    reconciler.tick = slow_tick  # type: ignore[method-assign]

    async def main() -> None:
        reconciler.start()
        while len(spans) < 5:
            await asyncio.sleep(0.01)
            reconciler.wake()
        await reconciler.stop()

    asyncio.run(asyncio.wait_for(main(), timeout=30))
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        # The rest lasts twice as long as the tick (run() measures a little more than slow_tick
        # does).
        assert next_start - end >= 0.9 * loop.REST_PER_TICK * (end - start)


def test_a_wake_up_during_a_tick_is_kept() -> None:
    # The tick's own wake-up is the only one: were it lost, the next tick would wait an hour and
    # the deadline below would end the test.
    reconciler = Reconciler(core=None, runtime=None, interval=3600.0)  # type: ignore[arg-type]
    starts: list[float] = []

    async def quick_tick() -> None:
        starts.append(time.perf_counter())
        reconciler._wake.set()

    reconciler.tick = quick_tick  # type: ignore[method-assign]

    async def main() -> None:
        reconciler.start()
        while len(starts) < 20:
            await asyncio.sleep(0.01)
        await reconciler.stop()

    asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert len(starts) >= 20
