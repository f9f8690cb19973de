"""How an environment's promotion moves: the one place that decides, as `domain/statuses.py` is for
a deployment's status and `domain/rollout.py` for a gradual hand-over's replica counts.

An environment serves its `current` deployment. A promotion makes another deployment its
`candidate`; the candidate becomes current once it is ACTIVE (at once for a blue-green switch,
when the rollout completes for a gradual one), or is dropped when it fails, and the environment
stays on what it served. One promotion at a time: a second one while a candidate exists is a
conflict, so that two concurrent updates never both win silently.

```
           begin                 candidate ACTIVE: blue-green at once,
  SERVING ───────► PROMOTING ─── gradual once its rollout is complete ───► SERVING (the candidate)
     ▲                 │
     └─────────────────┘ candidate BUILD_FAILED, DEPLOY_FAILED, FAILED or BUILD_STOPPED
```

The functions here are pure: they take the environment's promotion state and what was observed,
and say what to do. `services/promotions.py` carries the decisions out on the rows.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from chainyard.domain.errors import Conflict
from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus

DEFAULT_CLEANUP = "SCALE_TO_ZERO"


class Step(enum.StrEnum):
    FINISH = "finish"
    """The candidate becomes current; the previous deployment is cleaned up."""
    FAIL = "fail"
    """The candidate is dropped; the environment stays on its current deployment."""
    WAIT = "wait"
    """Nothing to do yet."""
    WAKE = "wake"
    """The candidate is scaled to zero: ask for replicas, finish when it is ACTIVE."""
    ACTIVATE = "activate"
    """The candidate is INACTIVE: activate it, finish when it is ACTIVE."""


@dataclasses.dataclass(frozen=True)
class Promotion:
    """An environment's promotion state (the columns of its row that this machine reads)."""

    current: str | None
    candidate: str | None
    gradual: bool = False

    @property
    def in_progress(self) -> bool:
        return self.candidate is not None


def require_idle(state: Promotion, environment: str) -> None:
    if state.in_progress:
        raise Conflict(
            f"a promotion into environment '{environment}' is in progress (candidate deployment "
            f"'{state.candidate}'); retry when it has finished",
            code="PROMOTION_IN_PROGRESS",
        )


def gradual(settings: Mapping[str, Any], current: str | None, candidate: str) -> bool:
    """Whether a promotion of `candidate` hands traffic over gradually: asked for by the
    environment's settings, and there is another deployment to hand it over from."""
    if not (settings.get("rolling_deploy") or settings.get("ramp_up_while_promoting")):
        return False
    return current is not None and current != candidate


def begin(state: Promotion, environment: str, candidate_status: DeploymentStatus) -> Step:
    """What starting a promotion of a candidate in `candidate_status` does first (the state is
    the one the promotion starts: its candidate set, `gradual` decided). Raises Conflict when
    another promotion is in progress."""
    if candidate_status == DeploymentStatus.ACTIVE:
        return Step.WAIT if state.gradual else Step.FINISH
    if candidate_status == DeploymentStatus.SCALED_TO_ZERO:
        return Step.WAKE
    if candidate_status == DeploymentStatus.INACTIVE:
        return Step.ACTIVATE
    return Step.WAIT


def settled(state: Promotion, candidate_status: DeploymentStatus) -> Step:
    """The candidate's status settled (the reconciler saw it): a blue-green promotion finishes on
    ACTIVE; a gradual one waits for its rollout (`rollout_stepped`); any terminal failure fails
    either."""
    if not state.in_progress:
        return Step.WAIT
    if candidate_status in TERMINAL_FAILURES:
        return Step.FAIL
    if candidate_status == DeploymentStatus.ACTIVE and not state.gradual:
        return Step.FINISH
    return Step.WAIT


def rollout_stepped(
    state: Promotion, candidate_status: DeploymentStatus, *, complete: bool
) -> Step:
    """A gradual promotion's rollout took a step: done when every replica is handed over and the
    candidate is ACTIVE."""
    if not state.in_progress:
        return Step.WAIT
    if complete and candidate_status == DeploymentStatus.ACTIVE:
        return Step.FINISH
    return Step.WAIT


def cleanup_strategy(settings: Mapping[str, Any], *, scale_down_previous: bool) -> str:
    """What happens to the deployment an environment served before: the environment's
    `promotion_cleanup_strategy`, unless the promote call said to keep it running."""
    if not scale_down_previous:
        return "KEEP"
    strategy = settings.get("promotion_cleanup_strategy") or DEFAULT_CLEANUP
    return str(strategy)
