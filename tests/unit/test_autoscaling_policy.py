"""The autoscaling policy as a pure function: scale-up at once, bursts, delays, step limits."""

from __future__ import annotations

import dataclasses

from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.domain.autoscaling_policy import Decision, PolicyState, Traffic, decide

SETTINGS = AutoscalingSettings(
    min_replica=0,
    max_replica=4,
    autoscaling_window=60,
    scale_down_delay=900,
    concurrency_target=1,
    target_utilization_percentage=100,
)


def run(current: int, window: float, burst: float | None = None, **kw: object) -> Decision:
    settings = dataclasses.replace(SETTINGS, **kw)  # type: ignore[arg-type]
    state = kw.pop("state", PolicyState()) if "state" in kw else PolicyState()
    return decide(
        current, Traffic(window, window if burst is None else burst), settings, state, 1000.0
    )


def test_replicas_follow_average_in_flight_over_capacity() -> None:
    assert run(1, 3.0).replicas == 3
    # 70 % utilization: 2 in flight need ceil(2 / 0.7) = 3 replicas.
    assert run(1, 2.0, target_utilization_percentage=70).replicas == 3
    # concurrency_target 4 at 100 %: 6 in flight need 2 replicas.
    assert run(1, 6.0, concurrency_target=4).replicas == 2


def test_bounds_are_respected() -> None:
    assert run(1, 50.0).replicas == 4
    assert run(0, 0.0, min_replica=2).replicas == 2


def test_burst_scales_up_at_once_and_blocks_scale_down() -> None:
    # The long window has not caught up, but the burst window sees 8 in flight on 1 replica.
    decision = run(1, 0.5, burst=8.0)
    assert decision.replicas == 4
    assert decision.state.burst_until == 1000.0 + 6.0
    # While the burst window lasts, no scale-down happens even with no traffic at all.
    held = decide(4, Traffic(0.0, 0.0), SETTINGS, decision.state, 1003.0)
    assert held.replicas == 4
    after = decide(4, Traffic(0.0, 0.0), SETTINGS, held.state, 1010.0)
    assert after.replicas == 4  # now the scale-down delay starts
    assert after.state.scale_down_wanted_since == 1010.0


def test_scale_down_waits_for_the_delay_then_steps_by_rate() -> None:
    settings = dataclasses.replace(SETTINGS, scale_down_delay=100, max_scale_down_rate=25)
    quiet = Traffic(0.0, 0.0)
    state = PolicyState()
    d = decide(4, quiet, settings, state, 0.0)
    assert d.replicas == 4 and d.state.scale_down_wanted_since == 0.0
    d = decide(4, quiet, settings, d.state, 99.0)
    assert d.replicas == 4
    d = decide(4, quiet, settings, d.state, 100.0)
    assert d.replicas == 3  # 25 % of 4 = 1 per step
    d = decide(3, quiet, settings, d.state, 120.0)
    assert d.replicas == 3  # the next step waits a whole window
    d = decide(3, quiet, settings, d.state, 160.0)
    assert d.replicas == 2


def test_traffic_in_between_restarts_the_delay() -> None:
    settings = dataclasses.replace(SETTINGS, scale_down_delay=100)
    d = decide(2, Traffic(0.0, 0.0), settings, PolicyState(), 0.0)
    d = decide(2, Traffic(2.0, 2.0), settings, d.state, 50.0)
    assert d.state.scale_down_wanted_since is None
    d = decide(2, Traffic(0.0, 0.0), settings, d.state, 60.0)
    d = decide(2, Traffic(0.0, 0.0), settings, d.state, 150.0)
    assert d.replicas == 2  # only 90 s since the wish began again
    assert decide(2, Traffic(0.0, 0.0), settings, d.state, 160.0).replicas == 1


def test_idle_chainlet_with_min_zero_goes_to_zero() -> None:
    settings = dataclasses.replace(SETTINGS, scale_down_delay=0)
    d = decide(1, Traffic(0.0, 0.0), settings, PolicyState(), 0.0)
    assert d.replicas == 0


def test_state_survives_a_round_trip() -> None:
    state = PolicyState(scale_down_wanted_since=1.5, last_scale_down_at=2.0, burst_until=None)
    assert PolicyState.from_dict(state.to_dict()) == state
    assert PolicyState.from_dict(None) == PolicyState()


def test_retired_deployments_may_go_to_zero_despite_min_replica() -> None:
    settings = dataclasses.replace(SETTINGS, min_replica=2, scale_down_delay=0)
    d = decide(2, Traffic(0.0, 0.0), settings, PolicyState(), 0.0, min_replica=0)
    assert d.replicas == 1  # one step of 50 %
    assert decide(1, Traffic(0.0, 0.0), settings, d.state, 61.0, min_replica=0).replicas == 0


def test_idle_change_at_says_when_an_idle_count_may_move() -> None:
    from chainyard.domain.autoscaling_policy import idle_change_at

    settings = AutoscalingSettings(
        min_replica=1, max_replica=4, autoscaling_window=60, scale_down_delay=100
    )
    assert idle_change_at(1, settings, PolicyState()) is None  # at its floor: never
    assert idle_change_at(3, settings, PolicyState()) == 0.0  # the delay has not started
    waiting = PolicyState(scale_down_wanted_since=1000.0)
    assert idle_change_at(3, settings, waiting) == 1100.0
    stepped = PolicyState(scale_down_wanted_since=1000.0, last_scale_down_at=1150.0)
    assert idle_change_at(3, settings, stepped) == 1210.0
    # The answer agrees with decide(): nothing moves before it, something at it.
    idle = Traffic(window_average=0.0, burst_average=0.0)
    assert decide(3, idle, settings, stepped, 1209.0).replicas == 3
    assert decide(3, idle, settings, stepped, 1210.0).replicas == 2
    assert idle_change_at(2, settings, PolicyState(), min_replica=2) is None
