"""The one place where statuses change: chainlets by event, deployments by aggregation.

Callers hold a write transaction; the rows they pass were read in it (and, on PostgreSQL, locked by
the caller when a concurrent change could race).
"""

from __future__ import annotations

from chainyard.domain.statuses import (
    DeploymentStatus,
    Event,
    aggregate_status,
    can_transition,
    transition,
)
from chainyard.store.base import utcnow
from chainyard.store.chains import ChainDeployment, Chainlet


def apply_event(chainlet: Chainlet, event: Event, message: str | None = None) -> DeploymentStatus:
    """Moves a chainlet by `event`; raises `InvalidTransition` for a pair the table lacks."""
    new = transition(DeploymentStatus(chainlet.status), event)
    chainlet.status = new.value
    chainlet.status_message = message
    chainlet.updated_at = utcnow()
    return new


def apply_event_if_possible(chainlet: Chainlet, event: Event, message: str | None = None) -> bool:
    """For bulk operations (deactivate a whole deployment) where some chainlets may be past it."""
    if not can_transition(DeploymentStatus(chainlet.status), event):
        return False
    apply_event(chainlet, event, message)
    return True


def refresh_status(deployment: ChainDeployment) -> tuple[DeploymentStatus, DeploymentStatus]:
    """Re-derives the deployment's status from its chainlets; returns (before, after)."""
    before = DeploymentStatus(deployment.status)
    after = aggregate_status(DeploymentStatus(c.status) for c in deployment.chainlets)
    if after != before:
        deployment.status = after.value
        failed = [c for c in deployment.chainlets if c.status == after.value and c.status_message]
        deployment.status_message = (
            f"{failed[0].name}: {failed[0].status_message}" if failed else None
        )
    return before, after
