"""Rolling promotion and traffic ramp: a pure step function over replica counts.

A promotion with `rolling_deploy` or `ramp_up_while_promoting` hands traffic over gradually. Each
reconciler tick computes, from what is ready now, how many replicas each side may run and which
share of requests the candidate gets. The candidate's share never exceeds the share of its target
capacity that is ready (its weakest chainlet decides), so neither side is asked to carry more than
its ready replicas; the previous deployment keeps enough replicas for the share it still serves,
less what `max_unavailable_percent` lets go.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

RAMP_STEPS = 10


@dataclasses.dataclass(frozen=True)
class Limits:
    """Extra replicas (surge) and missing replicas (unavailable) allowed, in percent."""

    max_surge_percent: int = 25
    max_unavailable_percent: int = 0

    def surge(self, target: int) -> int:
        return math.ceil(target * self.max_surge_percent / 100)

    def unavailable(self, target: int) -> int:
        return math.floor(target * self.max_unavailable_percent / 100)


# Blue-green, what a promotion without `rolling_deploy` does: the candidate comes up in full
# beside the previous deployment, which keeps all of its replicas until the switch.
BLUE_GREEN = Limits(max_surge_percent=100, max_unavailable_percent=0)


@dataclasses.dataclass(frozen=True)
class Step:
    candidate_replicas: dict[str, int]
    previous_replicas: dict[str, int]
    # Share of requests (0..1) the gateway sends to the candidate.
    candidate_share: float
    # The candidate serves everything with all of its target replicas: switch the route.
    complete: bool


def ramp_share(started_at: float | None, duration: float, now: float) -> float:
    """Traffic allowed to the candidate by a ramp of ten equal steps over `duration` seconds,
    the first at `started_at`."""
    if started_at is None:
        return 0.0
    if duration <= 0:
        return 1.0
    steps = 1 + math.floor((now - started_at) / (duration / RAMP_STEPS))
    return min(RAMP_STEPS, max(1, steps)) / RAMP_STEPS


def step(
    targets: Mapping[str, int],
    candidate_ready: Mapping[str, int],
    previous_running: Mapping[str, int],
    limits: Limits,
    ramp: float,
) -> Step:
    """One move of a rollout.

    `targets`: replicas per chainlet the environment serves with (the candidate's goal);
    `candidate_ready`: ready replicas per chainlet of the candidate; `previous_running`: replicas
    per chainlet the previous deployment runs or is starting (a chainlet it lacks is absent);
    `ramp`: the share a traffic ramp allows now (1.0
    without a ramp).
    """
    capacity = min(
        (min(candidate_ready.get(name, 0), n) / n for name, n in targets.items() if n > 0),
        default=1.0,
    )
    share = max(0.0, min(capacity, ramp, 1.0))
    previous: dict[str, int] = {}
    candidate: dict[str, int] = {}
    for name, n in targets.items():
        surge = limits.surge(n)
        unavailable = limits.unavailable(n)
        if surge == 0 and unavailable == 0:
            surge = 1  # otherwise nothing could ever move
        if name in previous_running:
            keep = min(
                previous_running[name], max(0, math.ceil((1 - share) * n - 1e-9) - unavailable)
            )
            previous[name] = keep
            # Replicas of the previous deployment still running count against the surge until
            # they are gone.
            running = max(keep, previous_running[name])
            candidate[name] = max(0, min(n, n + surge - running))
        else:
            candidate[name] = n
    complete = share >= 1.0 and all(
        candidate_ready.get(name, 0) >= n for name, n in targets.items()
    )
    return Step(candidate, previous, share, complete)


def limits_of(promotion_settings: Mapping[str, Any]) -> Limits:
    """The limits a promotion runs under: the rolling deploy config with `rolling_deploy`, else
    blue-green."""
    if not promotion_settings.get("rolling_deploy"):
        return BLUE_GREEN
    config = promotion_settings.get("rolling_deploy_config") or {}
    defaults = Limits()
    return Limits(
        max_surge_percent=int(config.get("max_surge_percent", defaults.max_surge_percent)),
        max_unavailable_percent=int(
            config.get("max_unavailable_percent", defaults.max_unavailable_percent)
        ),
    )
