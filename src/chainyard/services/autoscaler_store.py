"""The autoscaler's side of the store: which chainlets it manages, and writing its decisions."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from sqlalchemy import bindparam, or_, select, update

from chainyard.domain.statuses import DeploymentStatus
from chainyard.services import rollouts
from chainyard.services.context import Core
from chainyard.services.pacing import Pacer, unpaced
from chainyard.store.chains import ChainDeployment, Chainlet

# Chainlets whose replica count belongs to the autoscaler; deploying or failed ones do not.
_MANAGED = [
    s.value
    for s in (
        DeploymentStatus.ACTIVE,
        DeploymentStatus.SCALED_TO_ZERO,
        DeploymentStatus.WAKING_UP,
        DeploymentStatus.UNHEALTHY,
        DeploymentStatus.UPDATING,
    )
]


_BATCH = 200


@dataclasses.dataclass(frozen=True)
class Managed:
    chainlet_id: str
    desired_replicas: int
    autoscaling: dict[str, Any]
    state: dict[str, Any] | None
    retired: bool


@dataclasses.dataclass(frozen=True)
class ScaleDecision:
    chainlet_id: str
    expected_replicas: int
    replicas: int
    state: dict[str, Any]


class Glance(NamedTuple):
    """A named tuple: the idle pass makes one per running chainlet."""

    chainlet_id: str
    desired_replicas: int
    retired: bool


_GLANCE = (
    select(Chainlet.id, Chainlet.desired_replicas, ChainDeployment.retired)
    .join(ChainDeployment, ChainDeployment.id == Chainlet.chain_deployment_id)
    .where(
        ChainDeployment.desired_state == "ACTIVE",
        ChainDeployment.id.not_in(rollouts.in_rollout()),
        Chainlet.status.in_(_MANAGED),
        or_(
            Chainlet.desired_replicas > 0,
            Chainlet.id.in_(bindparam("with_traffic", expanding=True)),
        ),
    )
)


def glance(core: Core, with_traffic: set[str], *, pacer: Pacer | None = None) -> list[Glance]:
    """Every managed chainlet that runs replicas or has requests, as plain columns (no JSON):
    the idle pass loads full rows only for those whose decision may be due."""
    pacer = pacer or unpaced()
    found: list[Glance] = []
    with core.db.read() as session:
        # Through the connection: plain rows, without the ORM's result processing.
        result = session.connection().execute(_GLANCE, {"with_traffic": sorted(with_traffic)})
        for rows in pacer.rows(result):
            found.extend(Glance(r[0], r[1], bool(r[2])) for r in rows)
    return found


def managed_by_id(core: Core, ids: list[str], *, pacer: Pacer | None = None) -> list[Managed]:
    """Full rows of these chainlets, if still managed."""
    found: list[Managed] = []
    for chunk in (pacer or unpaced()).over(ids, _BATCH * 2):
        with core.db.read() as session:
            rows = session.execute(
                select(
                    Chainlet.id,
                    Chainlet.desired_replicas,
                    Chainlet.autoscaling,
                    Chainlet.autoscaler_state,
                    ChainDeployment.retired,
                )
                .join(ChainDeployment, ChainDeployment.id == Chainlet.chain_deployment_id)
                .where(
                    Chainlet.id.in_(list(chunk)),
                    ChainDeployment.desired_state == "ACTIVE",
                    ChainDeployment.id.not_in(rollouts.in_rollout()),
                    Chainlet.status.in_(_MANAGED),
                )
            ).all()
        found.extend(Managed(r[0], r[1], dict(r[2] or {}), r[3], bool(r[4])) for r in rows)
    return found


def apply(
    core: Core, decisions: list[ScaleDecision], *, pacer: Pacer | None = None
) -> list[ScaleDecision]:
    """Writes decisions whose chainlet still wants what the autoscaler saw (the API or the
    reconciler may have changed it meanwhile); returns those written."""
    written: list[ScaleDecision] = []
    # Small transactions: a first pass over a large fleet records many states, and the API must
    # not wait behind one long write.
    for batch in (pacer or unpaced()).over(decisions, _BATCH):
        with core.db.write() as session:
            # Locked rows (PostgreSQL; SQLite's write transaction already excludes writers), so
            # the comparison below still holds when the UPDATE runs. In id order, the order the
            # ORM's flushes lock rows in: in scan order, this deadlocked with the reconciler
            # finishing a promotion (seen in bench/control_plane.py on PostgreSQL).
            current = dict(
                session.execute(
                    select(Chainlet.id, Chainlet.desired_replicas)
                    .where(Chainlet.id.in_([d.chainlet_id for d in batch]))
                    .order_by(Chainlet.id)
                    .with_for_update()
                ).all()
            )
            fresh = [d for d in batch if current.get(d.chainlet_id) == d.expected_replicas]
            if fresh:
                session.execute(
                    update(Chainlet),
                    [
                        {
                            "id": d.chainlet_id,
                            "desired_replicas": d.replicas,
                            "autoscaler_state": d.state,
                        }
                        for d in fresh
                    ],
                )
            written.extend(fresh)
    return written
