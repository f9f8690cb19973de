"""The status transition table and how a chain deployment's status follows from its chainlets'."""

from __future__ import annotations

import itertools

import pytest

from chainyard.domain.statuses import (
    AT_REST,
    SERVING,
    TERMINAL_FAILURES,
    DeploymentStatus,
    Event,
    InvalidTransition,
    aggregate_status,
    can_transition,
    transition,
)

S = DeploymentStatus
E = Event

# The documented lifecycle (docs/architecture.md), pair by pair.
VALID = [
    (S.BUILDING, E.BUILD_SUCCEEDED, S.DEPLOYING),
    (S.BUILDING, E.BUILD_FAILED, S.BUILD_FAILED),
    (S.BUILDING, E.BUILD_STOPPED, S.BUILD_STOPPED),
    (S.DEPLOYING, E.REPLICAS_READY, S.ACTIVE),
    (S.DEPLOYING, E.DEPLOY_FAILED, S.DEPLOY_FAILED),
    (S.LOADING_MODEL, E.REPLICAS_READY, S.ACTIVE),
    (S.LOADING_MODEL, E.DEPLOY_FAILED, S.DEPLOY_FAILED),
    (S.ACTIVE, E.REPLICA_LOST, S.UNHEALTHY),
    (S.ACTIVE, E.FAILED, S.FAILED),
    (S.ACTIVE, E.UPDATE, S.UPDATING),
    (S.ACTIVE, E.SCALE_TO_ZERO, S.SCALED_TO_ZERO),
    (S.UNHEALTHY, E.REPLICAS_READY, S.ACTIVE),
    (S.UNHEALTHY, E.FAILED, S.FAILED),
    (S.UPDATING, E.REPLICAS_READY, S.ACTIVE),
    (S.UPDATING, E.REPLICA_LOST, S.UNHEALTHY),
    (S.SCALED_TO_ZERO, E.WAKE, S.WAKING_UP),
    (S.WAKING_UP, E.REPLICAS_READY, S.ACTIVE),
    (S.WAKING_UP, E.FAILED, S.FAILED),
    (S.DEACTIVATING, E.STOPPED, S.INACTIVE),
    (S.INACTIVE, E.ACTIVATE, S.DEPLOYING),
]

INVALID = [
    (S.BUILDING, E.REPLICAS_READY),
    (S.BUILDING, E.ACTIVATE),
    (S.DEPLOYING, E.BUILD_SUCCEEDED),
    (S.ACTIVE, E.BUILD_FAILED),
    (S.ACTIVE, E.ACTIVATE),
    (S.ACTIVE, E.STOPPED),
    (S.INACTIVE, E.DEACTIVATE),
    (S.INACTIVE, E.REPLICAS_READY),
    (S.DEACTIVATING, E.DEACTIVATE),
    (S.DEACTIVATING, E.ACTIVATE),
    (S.DEACTIVATING, E.REPLICAS_READY),
    (S.BUILD_FAILED, E.REPLICAS_READY),
    (S.BUILD_FAILED, E.ACTIVATE),
    (S.DEPLOY_FAILED, E.REPLICAS_READY),
    (S.FAILED, E.REPLICAS_READY),
    (S.SCALED_TO_ZERO, E.REPLICAS_READY),
]


@pytest.mark.parametrize(("status", "event", "expected"), VALID)
def test_valid_transitions(status: S, event: E, expected: S) -> None:
    assert transition(status, event) == expected
    assert can_transition(status, event)


@pytest.mark.parametrize(("status", "event"), INVALID)
def test_invalid_transitions_raise(status: S, event: E) -> None:
    assert not can_transition(status, event)
    with pytest.raises(InvalidTransition) as info:
        transition(status, event)
    assert info.value.status == status
    assert info.value.event == event
    assert status.value in str(info.value) and event.value in str(info.value)


@pytest.mark.parametrize("status", [s for s in S if s not in (S.INACTIVE, S.DEACTIVATING)])
def test_deactivate_from_every_status_that_may_hold_replicas(status: S) -> None:
    assert transition(status, E.DEACTIVATE) == S.DEACTIVATING


def test_terminal_failures_only_leave_by_deactivation() -> None:
    for status, event in itertools.product(TERMINAL_FAILURES, E):
        if event == E.DEACTIVATE:
            assert transition(status, event) == S.DEACTIVATING
        else:
            assert not can_transition(status, event), (status, event)


def test_status_sets_are_consistent() -> None:
    assert not (SERVING & TERMINAL_FAILURES)
    assert S.INACTIVE in AT_REST and TERMINAL_FAILURES <= AT_REST
    assert S.ACTIVE not in AT_REST


@pytest.mark.parametrize(
    ("chainlets", "expected"),
    [
        ([S.ACTIVE], S.ACTIVE),
        ([S.ACTIVE, S.ACTIVE], S.ACTIVE),
        ([S.BUILDING, S.ACTIVE], S.BUILDING),
        ([S.BUILDING, S.DEPLOYING], S.BUILDING),
        ([S.DEPLOYING, S.ACTIVE], S.DEPLOYING),
        ([S.BUILD_FAILED, S.BUILDING], S.BUILD_FAILED),
        ([S.DEPLOY_FAILED, S.ACTIVE], S.DEPLOY_FAILED),
        ([S.FAILED, S.DEPLOYING], S.FAILED),
        ([S.BUILD_FAILED, S.DEPLOY_FAILED], S.BUILD_FAILED),
        ([S.UNHEALTHY, S.ACTIVE], S.UNHEALTHY),
        ([S.WAKING_UP, S.SCALED_TO_ZERO], S.WAKING_UP),
        ([S.SCALED_TO_ZERO, S.SCALED_TO_ZERO], S.SCALED_TO_ZERO),
        ([S.SCALED_TO_ZERO, S.ACTIVE], S.ACTIVE),
        ([S.SCALED_TO_ZERO, S.INACTIVE], S.SCALED_TO_ZERO),
        ([S.INACTIVE, S.INACTIVE], S.INACTIVE),
        ([S.DEACTIVATING, S.INACTIVE], S.DEACTIVATING),
        ([S.DEACTIVATING, S.BUILD_FAILED], S.DEACTIVATING),
        ([S.UPDATING, S.ACTIVE], S.UPDATING),
    ],
)
def test_aggregate_status(chainlets: list[S], expected: S) -> None:
    assert aggregate_status(chainlets) == expected
    assert aggregate_status(reversed(chainlets)) == expected


def test_aggregate_status_needs_a_chainlet() -> None:
    with pytest.raises(ValueError, match="at least one chainlet"):
        aggregate_status([])


def test_aggregate_status_of_one_chainlet_is_its_status() -> None:
    for status in S:
        assert aggregate_status([status]) == status
