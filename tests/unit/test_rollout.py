"""The rollout step: surge and unavailability limits, capacity-backed traffic share, the ramp."""

from __future__ import annotations

import pytest

from chainyard.domain.rollout import BLUE_GREEN, Limits, limits_of, ramp_share, step


def _simulate(targets: dict[str, int], previous: dict[str, int], limits: Limits) -> list[int]:
    """Runs the rollout to the end with replicas that start and stop at once; returns the total
    number of replicas (both sides) after each step, and checks capacity on the way."""
    cand = {name: 0 for name in targets}
    prev = dict(previous)
    totals = []
    for _ in range(100):
        s = step(targets, cand, prev, limits, ramp=1.0)
        for name, n in targets.items():
            # Neither side may carry more than its ready replicas allow.
            assert cand[name] >= s.candidate_share * n - 1e-9
            if name in prev:
                serving_previous = (1 - s.candidate_share) * n
                assert prev[name] >= serving_previous - limits.unavailable(n) - 1e-9
        if s.complete:
            return totals
        prev = {name: min(prev[name], s.previous_replicas[name]) for name in prev}
        cand = dict(s.candidate_replicas)
        totals.append(sum(cand.values()) + sum(prev.values()))
    raise AssertionError("rollout did not finish")


def test_rolling_stays_within_surge_and_finishes() -> None:
    limits = Limits(max_surge_percent=25, max_unavailable_percent=0)
    totals = _simulate({"A": 4, "B": 8}, {"A": 4, "B": 8}, limits)
    assert max(totals) <= 4 + 1 + 8 + 2
    assert len(totals) > 2  # it took several steps, not one switch


def test_unavailable_lets_previous_shrink_first() -> None:
    s = step({"A": 4}, {"A": 0}, {"A": 4}, Limits(0, 50), ramp=1.0)
    assert s.previous_replicas == {"A": 2}
    assert s.candidate_replicas == {"A": 0}  # the previous replicas still run
    s = step({"A": 4}, {"A": 0}, {"A": 2}, Limits(0, 50), ramp=1.0)
    assert s.candidate_replicas == {"A": 2}


def test_zero_limits_still_move_one_at_a_time() -> None:
    s = step({"A": 3}, {"A": 0}, {"A": 3}, Limits(0, 0), ramp=1.0)
    assert s.candidate_replicas == {"A": 1}
    assert s.previous_replicas == {"A": 3}


def test_share_follows_the_weakest_chainlet() -> None:
    s = step({"A": 4, "B": 2}, {"A": 4, "B": 1}, {"A": 4, "B": 2}, BLUE_GREEN, ramp=1.0)
    assert s.candidate_share == pytest.approx(0.5)
    assert not s.complete


def test_blue_green_brings_the_candidate_up_in_full() -> None:
    s = step({"A": 3}, {"A": 0}, {"A": 3}, BLUE_GREEN, ramp=1.0)
    assert s.candidate_replicas == {"A": 3}
    assert s.previous_replicas == {"A": 3}
    assert step({"A": 3}, {"A": 3}, {"A": 3}, BLUE_GREEN, ramp=1.0).complete


def test_ramp_caps_the_share_in_ten_steps() -> None:
    shares = [ramp_share(100.0, 50.0, 100.0 + t) for t in (0, 4.9, 5, 25, 49.9, 50, 500)]
    assert shares == [0.1, 0.1, 0.2, 0.6, 1.0, 1.0, 1.0]
    assert ramp_share(None, 50.0, 1000.0) == 0.0
    s = step({"A": 2}, {"A": 2}, {"A": 2}, BLUE_GREEN, ramp=0.3)
    assert s.candidate_share == pytest.approx(0.3)
    assert s.previous_replicas == {"A": 2}  # ceil(0.7 * 2)
    assert not s.complete


def test_previous_never_grows_and_new_chainlets_come_up_in_full() -> None:
    s = step({"A": 2, "New": 1}, {"A": 0, "New": 0}, {"A": 1}, Limits(25, 0), ramp=1.0)
    assert s.previous_replicas == {"A": 1}
    assert s.candidate_replicas["New"] == 1


def test_limits_come_from_the_promotion_settings() -> None:
    assert limits_of({"rolling_deploy": False}) == BLUE_GREEN
    assert limits_of({"rolling_deploy": True}) == Limits(25, 0)
    assert limits_of(
        {"rolling_deploy": True, "rolling_deploy_config": {"max_surge_percent": 50}}
    ) == Limits(50, 0)
