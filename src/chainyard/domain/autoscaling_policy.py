"""The autoscaling policy: a pure function from traffic to a replica count.

`decide(current, traffic, settings, state, now)` returns the replica count to run and the policy
state to store. The state holds wall-clock times (epoch seconds), so a restarted server keeps its
scale-down delays instead of starting them over.

Rules (Baseten's settings):
- capacity of one replica = concurrency_target * target_utilization_percentage / 100;
- wanted = ceil(average in-flight over `autoscaling_window` / capacity), within
  [min_replica, max_replica];
- burst: when in-flight over the last tenth of the window reaches twice concurrency_target per
  replica, scale up at once to what that burst needs, and do not scale down while the burst window
  lasts;
- scale-up happens at once; a scale-down is wanted continuously for `scale_down_delay` seconds
  before the first step, and each step removes at most `max_scale_down_rate` % of the replicas (at
  least one), one step per `autoscaling_window`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from chainyard.domain.autoscaling import AutoscalingSettings

DEFAULT_SCALE_DOWN_RATE = 50


@dataclasses.dataclass(frozen=True)
class Traffic:
    """In-flight requests (running plus queued at the gateway), averaged over two windows."""

    window_average: float
    burst_average: float


@dataclasses.dataclass(frozen=True)
class PolicyState:
    # Since when a smaller count has been wanted without interruption.
    scale_down_wanted_since: float | None = None
    last_scale_down_at: float | None = None
    burst_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PolicyState:
        if not data:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclasses.dataclass(frozen=True)
class Decision:
    replicas: int
    state: PolicyState
    reason: str


def _needed(in_flight: float, capacity: float) -> int:
    if in_flight <= 0:
        return 0
    # A hair of tolerance so that exactly-at-capacity traffic does not ask for an extra replica.
    return math.ceil(in_flight / capacity - 1e-9)


def decide(
    current: int,
    traffic: Traffic,
    settings: AutoscalingSettings,
    state: PolicyState,
    now: float,
    *,
    min_replica: int | None = None,
) -> Decision:
    """`min_replica` overrides the setting (a deployment no environment serves may go to zero)."""
    low = settings.min_replica if min_replica is None else min_replica
    high = max(settings.max_replica, low)
    capacity = settings.concurrency_target * settings.target_utilization_percentage / 100
    wanted = _needed(traffic.window_average, capacity)

    burst_window = settings.autoscaling_window / 10
    burst_until = state.burst_until if state.burst_until and state.burst_until > now else None
    per_replica = traffic.burst_average / max(current, 1)
    if traffic.burst_average > 0 and per_replica >= 2 * settings.concurrency_target:
        burst_until = now + burst_window
        wanted = max(wanted, _needed(traffic.burst_average, capacity))
    wanted = min(max(wanted, low), high)

    if wanted > current:
        return Decision(
            wanted,
            PolicyState(None, state.last_scale_down_at, burst_until),
            "burst" if burst_until and burst_until != state.burst_until else "scale up",
        )
    if wanted == current:
        return Decision(current, PolicyState(None, state.last_scale_down_at, burst_until), "steady")
    # Below here a smaller count is wanted.
    if burst_until is not None:
        return Decision(
            current,
            PolicyState(state.scale_down_wanted_since, state.last_scale_down_at, burst_until),
            "burst: holding",
        )
    since = state.scale_down_wanted_since if state.scale_down_wanted_since is not None else now
    held = PolicyState(since, state.last_scale_down_at, None)
    if now - since < settings.scale_down_delay:
        return Decision(current, held, "scale down: waiting for the delay")
    if (
        state.last_scale_down_at is not None
        and state.last_scale_down_at >= since
        and now - state.last_scale_down_at < settings.autoscaling_window
    ):
        return Decision(current, held, "scale down: waiting for the next step")
    rate = settings.max_scale_down_rate or DEFAULT_SCALE_DOWN_RATE
    step = max(1, math.floor(current * rate / 100))
    new = max(wanted, current - step)
    # When the step reaches what is wanted the wish is fulfilled; otherwise it continues.
    next_since = None if new == wanted else since
    return Decision(new, PolicyState(next_since, now, None), "scale down")


def idle_change_at(
    current: int,
    settings: AutoscalingSettings,
    state: PolicyState,
    *,
    min_replica: int | None = None,
) -> float | None:
    """With no traffic in either window, the earliest time at which `decide` could give another
    count; None when it never will (the count is at its floor). Lets the autoscaler leave idle
    chainlets alone until then."""
    low = settings.min_replica if min_replica is None else min_replica
    if current == low:
        return None
    since = state.scale_down_wanted_since
    if current < low or since is None:
        return 0.0  # due at once: a scale-up, or a delay that has not started yet
    due = since + settings.scale_down_delay
    if state.last_scale_down_at is not None and state.last_scale_down_at >= since:
        due = max(due, state.last_scale_down_at + settings.autoscaling_window)
    if state.burst_until is not None:
        due = max(due, state.burst_until)
    return due
