"""Baseten's deployment statuses, the strict table of how they change, and how a chain deployment's
status follows from its chainlets'.

Every status change in chainyard goes through `transition`, which raises on a pair that is not in
the table: a surprising event is a bug to surface, not something to ignore.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class DeploymentStatus(enum.StrEnum):
    BUILDING = "BUILDING"
    """The chainlet's environment is being built (pip requirements, source unpacked)."""
    DEPLOYING = "DEPLOYING"
    """Built; replicas are starting and have not all passed their health checks."""
    DEPLOY_FAILED = "DEPLOY_FAILED"
    """Replicas could not be started or never became healthy. Terminal."""
    LOADING_MODEL = "LOADING_MODEL"
    """Replicas run but the chainlet's own start-up has not finished (reported by some runtimes)."""
    ACTIVE = "ACTIVE"
    """Every chainlet has its desired replicas ready (or is scaled to zero by policy)."""
    UNHEALTHY = "UNHEALTHY"
    """Was active; a replica crashed or fails its health check and is being replaced."""
    BUILD_FAILED = "BUILD_FAILED"
    """The build failed (e.g. a pip requirement could not be installed). Terminal."""
    BUILD_STOPPED = "BUILD_STOPPED"
    """The build was stopped before it finished. Terminal."""
    DEACTIVATING = "DEACTIVATING"
    """Replicas are being stopped on request."""
    INACTIVE = "INACTIVE"
    """No replicas and none wanted; can be activated again."""
    FAILED = "FAILED"
    """Was active and could not be kept running. Terminal."""
    UPDATING = "UPDATING"
    """Active, and its replicas are being changed in place."""
    SCALED_TO_ZERO = "SCALED_TO_ZERO"
    """Active by intent, with zero replicas because it was idle."""
    WAKING_UP = "WAKING_UP"
    """Scaled to zero, and a replica is starting because a request (or a wake call) arrived."""


class Event(enum.StrEnum):
    BUILD_SUCCEEDED = "build_succeeded"
    BUILD_FAILED = "build_failed"
    BUILD_STOPPED = "build_stopped"
    REPLICAS_READY = "replicas_ready"
    DEPLOY_FAILED = "deploy_failed"
    REPLICA_LOST = "replica_lost"
    FAILED = "failed"
    UPDATE = "update"
    SCALE_TO_ZERO = "scale_to_zero"
    WAKE = "wake"
    DEACTIVATE = "deactivate"
    STOPPED = "stopped"
    ACTIVATE = "activate"


S = DeploymentStatus
E = Event

TERMINAL_FAILURES = frozenset({S.BUILD_FAILED, S.DEPLOY_FAILED, S.FAILED, S.BUILD_STOPPED})
"""Statuses from which a deployment never serves again without a new deployment."""

SERVING = frozenset({S.ACTIVE, S.UNHEALTHY, S.UPDATING, S.SCALED_TO_ZERO, S.WAKING_UP})
"""Statuses in which a deployment answers (or will answer, after waking) requests."""

AT_REST = frozenset({S.INACTIVE}) | TERMINAL_FAILURES
"""Statuses in which the reconciler has nothing to do for a deployment."""

# Statuses a deactivation may start from: everything that may still hold replicas.
_DEACTIVATABLE = frozenset(S) - {S.DEACTIVATING, S.INACTIVE}

_TABLE: dict[tuple[DeploymentStatus, Event], DeploymentStatus] = {
    (S.BUILDING, E.BUILD_SUCCEEDED): S.DEPLOYING,
    (S.BUILDING, E.BUILD_FAILED): S.BUILD_FAILED,
    (S.BUILDING, E.BUILD_STOPPED): S.BUILD_STOPPED,
    (S.DEPLOYING, E.REPLICAS_READY): S.ACTIVE,
    (S.DEPLOYING, E.DEPLOY_FAILED): S.DEPLOY_FAILED,
    (S.LOADING_MODEL, E.REPLICAS_READY): S.ACTIVE,
    (S.LOADING_MODEL, E.DEPLOY_FAILED): S.DEPLOY_FAILED,
    (S.ACTIVE, E.REPLICA_LOST): S.UNHEALTHY,
    (S.ACTIVE, E.FAILED): S.FAILED,
    (S.ACTIVE, E.UPDATE): S.UPDATING,
    (S.ACTIVE, E.SCALE_TO_ZERO): S.SCALED_TO_ZERO,
    (S.UNHEALTHY, E.REPLICAS_READY): S.ACTIVE,
    (S.UNHEALTHY, E.FAILED): S.FAILED,
    (S.UNHEALTHY, E.SCALE_TO_ZERO): S.SCALED_TO_ZERO,
    (S.UPDATING, E.REPLICAS_READY): S.ACTIVE,
    (S.UPDATING, E.FAILED): S.FAILED,
    (S.UPDATING, E.REPLICA_LOST): S.UNHEALTHY,
    (S.SCALED_TO_ZERO, E.WAKE): S.WAKING_UP,
    (S.SCALED_TO_ZERO, E.UPDATE): S.UPDATING,
    (S.WAKING_UP, E.REPLICAS_READY): S.ACTIVE,
    (S.WAKING_UP, E.FAILED): S.FAILED,
    (S.WAKING_UP, E.SCALE_TO_ZERO): S.SCALED_TO_ZERO,
    (S.DEACTIVATING, E.STOPPED): S.INACTIVE,
    (S.INACTIVE, E.ACTIVATE): S.DEPLOYING,
    **{(status, E.DEACTIVATE): S.DEACTIVATING for status in _DEACTIVATABLE},
}


class InvalidTransition(ValueError):
    def __init__(self, status: DeploymentStatus, event: Event) -> None:
        super().__init__(f"no transition from {status.value} on {event.value}")
        self.status = status
        self.event = event


def transition(status: DeploymentStatus, event: Event) -> DeploymentStatus:
    """The status after `event`; raises `InvalidTransition` for a pair the table does not have."""
    try:
        return _TABLE[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None


def can_transition(status: DeploymentStatus, event: Event) -> bool:
    return (status, event) in _TABLE


# The order in which one chainlet's status dominates the chain deployment's: a failure anywhere
# fails the deployment; otherwise the least advanced chainlet decides.
_DOMINANCE: tuple[DeploymentStatus, ...] = (
    S.DEACTIVATING,
    S.BUILD_FAILED,
    S.BUILD_STOPPED,
    S.DEPLOY_FAILED,
    S.FAILED,
    S.BUILDING,
    S.DEPLOYING,
    S.LOADING_MODEL,
    S.WAKING_UP,
    S.UPDATING,
    S.UNHEALTHY,
    S.ACTIVE,
    S.SCALED_TO_ZERO,
    S.INACTIVE,
)


def aggregate_status(chainlet_statuses: Iterable[DeploymentStatus]) -> DeploymentStatus:
    """A chain deployment's status from its chainlets' statuses."""
    present = set(chainlet_statuses)
    if not present:
        raise ValueError("a chain deployment has at least one chainlet")
    if present <= {S.INACTIVE}:
        return S.INACTIVE
    # Scaled to zero only when every chainlet is; one serving chainlet makes it ACTIVE.
    if present <= {S.ACTIVE, S.SCALED_TO_ZERO, S.INACTIVE}:
        return S.SCALED_TO_ZERO if present <= {S.SCALED_TO_ZERO, S.INACTIVE} else S.ACTIVE
    for status in _DOMINANCE:
        if status in present:
            return status
    raise AssertionError("unreachable: _DOMINANCE lists every status")
