"""Chain deployments: list, get, delete, deactivate, activate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain.errors import Conflict
from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus
from chainyard.schemas import ChainDeploymentV1
from chainyard.services import audit, lookups, promotions, views
from chainyard.services.context import Actor, Core
from chainyard.store.chains import Chain, ChainDeployment


def _event(chain: Chain, deployment: ChainDeployment) -> dict[str, object]:
    return {
        "chain_id": chain.id,
        "chain_name": chain.name,
        "chain_deployment_id": deployment.id,
        "chain_deployment_name": deployment.name,
    }


def list_(
    core: Core, actor: Actor, chain_id: str, *, limit: int | None = None, before: str | None = None
) -> list[ChainDeploymentV1]:
    """Newest first. `limit`/`before` page through long histories (an extension of ours)."""
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        query = select(ChainDeployment).where(ChainDeployment.chain_id == chain.id)
        if before is not None:
            anchor = lookups.deployment(session, chain, before)
            query = query.where(
                (ChainDeployment.created_at < anchor.created_at)
                | (
                    (ChainDeployment.created_at == anchor.created_at)
                    & (ChainDeployment.id < anchor.id)
                )
            )
        query = query.order_by(ChainDeployment.created_at.desc(), ChainDeployment.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return [views.deployment_v1(d, core.catalogue) for d in session.scalars(query)]


def get(core: Core, actor: Actor, chain_id: str, deployment_id: str) -> ChainDeploymentV1:
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        return views.deployment_v1(
            lookups.deployment(session, chain, deployment_id), core.catalogue
        )


def _refuse_if_serving(session: Session, deployment: ChainDeployment, action: str) -> None:
    for env in promotions.environments_serving(session, deployment.id):
        role = "current" if env.current_deployment_id == deployment.id else "candidate"
        raise Conflict(
            f"cannot {action} deployment '{deployment.id}': it is the {role} deployment of "
            f"environment '{env.name}'; promote another deployment there first",
            code="DEPLOYMENT_IN_USE",
        )


def delete(core: Core, actor: Actor, chain_id: str, deployment_id: str) -> None:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        deployment = lookups.deployment(session, chain, deployment_id)
        _refuse_if_serving(session, deployment, "delete")
        remove(session, actor, chain, deployment)
    core.chainlets_deleted()


def remove(session: Session, actor: Actor, chain: Chain, deployment: ChainDeployment) -> None:
    """Deletes a deployment that serves no environment, in the caller's transaction (a DELETE,
    and a development push replacing the chain's development deployment). The caller calls
    `core.chainlets_deleted()` once it has committed."""
    audit.record(
        session,
        actor,
        "CHAIN_DEPLOYMENT_DELETED",
        {
            "chain_id": chain.id,
            "chain_name": chain.name,
            "chain_deployment_id": deployment.id,
            "deployment_name": deployment.name,
        },
        chain_id=chain.id,
        chain_deployment_id=deployment.id,
    )
    # Its replicas are stopped by the reconciler, which stops whatever the store no longer has;
    # its patch history goes with it (ON DELETE CASCADE).
    lock_for_delete(session, [deployment.id])
    session.delete(deployment)


def lock_for_delete(session: Session, deployment_ids: list[str]) -> None:
    """Takes the deployments' row locks, in id order, before any of their chainlets is deleted:
    the reconciler share-locks them in the same order before it issues chain keys, so the two
    wait for each other instead of deadlocking (services/chainlet_credentials.py). A no-op on
    SQLite, which has one writer at a time."""
    if deployment_ids:
        session.execute(
            select(ChainDeployment.id)
            .where(ChainDeployment.id.in_(deployment_ids))
            .order_by(ChainDeployment.id)
            .with_for_update()
        ).all()


def deactivate(core: Core, actor: Actor, chain_id: str, deployment_id: str) -> None:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        deployment = lookups.deployment(session, chain, deployment_id)
        if deployment.desired_state == "INACTIVE":
            return
        _refuse_if_serving(session, deployment, "deactivate")
        promotions.deactivate(session, actor, chain, deployment)
    core.wake_reconciler()


def activate(core: Core, actor: Actor, chain_id: str, deployment_id: str) -> None:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        deployment = lookups.deployment(session, chain, deployment_id)
        status = DeploymentStatus(deployment.status)
        if status in TERMINAL_FAILURES:
            raise Conflict(
                f"deployment '{deployment.id}' is {status.value} and cannot be activated",
                code="DEPLOYMENT_FAILED",
            )
        if deployment.desired_state == "ACTIVE":
            return
        if status == DeploymentStatus.DEACTIVATING:
            raise Conflict(
                f"deployment '{deployment.id}' is still deactivating; activate it once INACTIVE",
                code="DEPLOYMENT_DEACTIVATING",
            )
        promotions.activate(deployment)
        audit.record(
            session,
            actor,
            "CHAIN_DEPLOYMENT_ACTIVATED",
            _event(chain, deployment),
            chain_id=chain.id,
            chain_deployment_id=deployment.id,
        )
    core.wake_reconciler()
