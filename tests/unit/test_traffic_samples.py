"""Demand history as a step function: time-weighted averages, and idle chainlets cost nothing."""

from __future__ import annotations

import pytest

from chainyard.autoscaler.traffic import MAX_WINDOW, TrafficSamples


def test_average_is_time_weighted_over_the_window() -> None:
    samples = TrafficSamples()
    samples.record(0.0, {}, ["a"])
    samples.record(10.0, {"a": 4}, [])
    samples.record(15.0, {}, [])
    # 4 in flight for 5 s of the last 20 s.
    assert samples.average("a", 20.0, 20.0) == pytest.approx(1.0)
    assert samples.average("a", 20.0, 5.0) == 0.0
    assert samples.average("a", 12.0, 4.0) == pytest.approx(2.0)
    # Before the chainlet was first seen, its demand counts as zero.
    assert samples.average("a", 20.0, 1000.0) == pytest.approx(20.0 / 1000.0)
    fresh = TrafficSamples()
    fresh.record(100.0, {"b": 8}, [])
    assert fresh.average("b", 100.0, 60.0) == 0.0
    assert fresh.average("b", 103.0, 6.0) == pytest.approx(4.0)
    assert samples.average("unknown", 20.0, 60.0) == 0.0


def test_a_steady_chainlet_keeps_one_point() -> None:
    samples = TrafficSamples()
    for t in range(1000):
        samples.record(float(t), {"busy": 2}, ["idle", "busy"])
    assert len(samples._series["idle"]) == 1
    assert len(samples._series["busy"]) == 1
    assert samples.average("busy", 999.0, 60.0) == pytest.approx(2.0)
    assert samples.is_idle("idle") and not samples.is_idle("busy")


def test_old_points_go_but_the_value_at_the_window_start_stays() -> None:
    samples = TrafficSamples()
    samples.record(0.0, {"a": 1}, [])
    samples.record(1.0, {}, [])
    samples.record(2.0, {"a": 3}, [])
    later = 2.0 + MAX_WINDOW + 10
    samples.record(later, {"a": 5}, [])
    assert len(samples._series["a"]) == 2
    assert samples.average("a", later, 10.0) == pytest.approx(3.0)
    assert samples.idle_since("a") is None
    samples.record(later + 1, {}, [])
    assert samples.idle_since("a") == later + 1
    samples.forget(set())
    assert samples.average("a", later + 2, 10.0) == 0.0
