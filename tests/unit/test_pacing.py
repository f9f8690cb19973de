"""Paced passes (services/pacing.py): when a pass rests, and for how long."""

from __future__ import annotations

import pytest

from chainyard.services.pacing import Pacer, unpaced


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_pass_rests_as_long_as_it_worked_once_a_slice_is_full() -> None:
    t = FakeTime()
    pacer = Pacer(slice_seconds=0.01, rest=1.0, clock=t.clock, sleep=t.sleep)
    t.now += 0.004
    pacer.checkpoint()
    assert t.sleeps == [], "less than a slice of work: no rest yet"
    t.now += 0.008
    pacer.checkpoint()
    assert t.sleeps == pytest.approx([0.012])
    # The next slice is counted from the end of the rest, not from the start of the pass.
    t.now += 0.006
    pacer.checkpoint()
    assert t.sleeps == pytest.approx([0.012])
    t.now += 0.02
    pacer.checkpoint()
    assert t.sleeps == pytest.approx([0.012, 0.026])
    assert pacer.rested == pytest.approx(0.038)


def test_the_rest_is_a_multiple_of_the_slice() -> None:
    t = FakeTime()
    pacer = Pacer(slice_seconds=0.01, rest=2.0, clock=t.clock, sleep=t.sleep)
    t.now += 0.01
    pacer.checkpoint()
    assert t.sleeps == pytest.approx([0.02])


def test_over_yields_every_item_once_in_order_with_a_checkpoint_after_each_step() -> None:
    t = FakeTime()
    pacer = Pacer(slice_seconds=0.005, clock=t.clock, sleep=t.sleep)
    items = list(range(1234))
    seen: list[int] = []
    for part in pacer.over(items, step=500):
        seen.extend(part)
        t.now += 0.01  # each step fills a slice
    assert seen == items
    assert len(t.sleeps) == 3


def test_a_small_pass_never_sleeps() -> None:
    t = FakeTime()
    pacer = Pacer(clock=t.clock, sleep=t.sleep)
    assert list(pacer.over([1, 2, 3])) == [[1, 2, 3]]
    assert t.sleeps == []


def test_unpaced_never_rests() -> None:
    pacer = unpaced()
    for _ in pacer.over(list(range(2000)), step=1):
        pass
    assert pacer.rested == 0


def test_with_no_request_waiting_a_pass_does_not_rest_and_starts_a_new_slice() -> None:
    t = FakeTime()
    waiting = [False]
    pacer = Pacer(slice_seconds=0.01, waiting=lambda: waiting[0], clock=t.clock, sleep=t.sleep)
    t.now += 0.05
    pacer.checkpoint()
    assert t.sleeps == []
    # A request arrives: the work before it is not rested for, only the slice since.
    waiting[0] = True
    t.now += 0.01
    pacer.checkpoint()
    assert t.sleeps == pytest.approx([0.01])
