"""domain/promotion.py: every decision of an environment's promotion, in one table each."""

from __future__ import annotations

import pytest

from chainyard.domain import promotion
from chainyard.domain.errors import Conflict
from chainyard.domain.promotion import Promotion, Step
from chainyard.domain.statuses import DeploymentStatus as S

BLUE_GREEN = Promotion(current="old", candidate="new")
GRADUAL = Promotion(current="old", candidate="new", gradual=True)
IDLE = Promotion(current="old", candidate=None)


@pytest.mark.parametrize(
    ("state", "status", "step"),
    [
        (BLUE_GREEN, S.ACTIVE, Step.FINISH),
        (GRADUAL, S.ACTIVE, Step.WAIT),  # its rollout hands traffic over first
        (BLUE_GREEN, S.SCALED_TO_ZERO, Step.WAKE),
        (BLUE_GREEN, S.INACTIVE, Step.ACTIVATE),
        (BLUE_GREEN, S.BUILDING, Step.WAIT),
        (BLUE_GREEN, S.DEPLOYING, Step.WAIT),
    ],
)
def test_what_beginning_a_promotion_does_first(state: Promotion, status: S, step: Step) -> None:
    assert promotion.begin(state, "production", status) == step


def test_one_promotion_at_a_time() -> None:
    with pytest.raises(Conflict) as raised:
        promotion.require_idle(BLUE_GREEN, "production")
    assert raised.value.code == "PROMOTION_IN_PROGRESS"
    assert "'new'" in raised.value.message
    promotion.require_idle(IDLE, "production")


@pytest.mark.parametrize(
    ("state", "status", "step"),
    [
        (BLUE_GREEN, S.ACTIVE, Step.FINISH),
        (GRADUAL, S.ACTIVE, Step.WAIT),
        *[(BLUE_GREEN, failed, Step.FAIL) for failed in promotion.TERMINAL_FAILURES],
        *[(GRADUAL, failed, Step.FAIL) for failed in promotion.TERMINAL_FAILURES],
        (BLUE_GREEN, S.UNHEALTHY, Step.WAIT),
        (IDLE, S.ACTIVE, Step.WAIT),  # nothing to settle
    ],
)
def test_what_a_settled_candidate_means(state: Promotion, status: S, step: Step) -> None:
    assert promotion.settled(state, status) == step


@pytest.mark.parametrize(
    ("complete", "status", "step"),
    [
        (True, S.ACTIVE, Step.FINISH),
        (True, S.UNHEALTHY, Step.WAIT),  # handed over, but not healthy yet
        (False, S.ACTIVE, Step.WAIT),
    ],
)
def test_a_rollout_finishes_when_complete_and_active(complete: bool, status: S, step: Step) -> None:
    assert promotion.rollout_stepped(GRADUAL, status, complete=complete) == step


def test_which_promotions_are_gradual() -> None:
    rolling = {"rolling_deploy": True}
    assert promotion.gradual(rolling, "old", "new")
    assert promotion.gradual({"ramp_up_while_promoting": True}, "old", "new")
    assert not promotion.gradual({}, "old", "new")
    # Nothing to hand traffic over from: a first promotion, or the current deployment again.
    assert not promotion.gradual(rolling, None, "new")
    assert not promotion.gradual(rolling, "new", "new")


def test_the_cleanup_of_the_previous_deployment() -> None:
    assert promotion.cleanup_strategy({}, scale_down_previous=True) == "SCALE_TO_ZERO"
    deactivate = {"promotion_cleanup_strategy": "DEACTIVATE"}
    assert promotion.cleanup_strategy(deactivate, scale_down_previous=True) == "DEACTIVATE"
    # `scale_down_previous_deployment: false` on promote keeps it, whatever the environment says.
    assert promotion.cleanup_strategy(deactivate, scale_down_previous=False) == "KEEP"
