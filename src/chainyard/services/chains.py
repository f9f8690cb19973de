"""Chains: list, get, delete."""

from __future__ import annotations

from sqlalchemy import func, select

from chainyard.schemas import ChainV1
from chainyard.services import audit, lookups, views
from chainyard.services.context import Actor, Core
from chainyard.store.chains import Chain, ChainDeployment


def list_(
    core: Core, actor: Actor, *, limit: int | None = None, after: str | None = None
) -> list[ChainV1]:
    """Oldest first, in a stable order. `limit`/`after` page through (an extension of ours)."""
    counts = (
        select(ChainDeployment.chain_id, func.count().label("n"))
        .group_by(ChainDeployment.chain_id)
        .subquery()
    )
    with core.db.read() as session:
        query = (
            select(Chain, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.chain_id == Chain.id)
            .where(Chain.workspace_id == actor.workspace_id)
        )
        if after is not None:
            anchor = lookups.chain(session, actor, after)
            query = query.where(
                (Chain.created_at > anchor.created_at)
                | ((Chain.created_at == anchor.created_at) & (Chain.id > anchor.id))
            )
        query = query.order_by(Chain.created_at, Chain.id)
        if limit is not None:
            query = query.limit(limit)
        return [
            views.chain_v1(chain, int(n), actor.workspace_name)
            for chain, n in session.execute(query)
        ]


def get(core: Core, actor: Actor, chain_id: str) -> ChainV1:
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        n = session.scalar(
            select(func.count())
            .select_from(ChainDeployment)
            .where(ChainDeployment.chain_id == chain.id)
        )
        return views.chain_v1(chain, int(n or 0), actor.workspace_name)


def delete(core: Core, actor: Actor, chain_id: str) -> None:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        audit.record(
            session,
            actor,
            "CHAIN_DELETED",
            {"chain_id": chain.id, "chain_name": chain.name, "chain_deployment_name": None},
            chain_id=chain.id,
        )
        # Deployments, chainlets and environments go with it (ON DELETE CASCADE); the reconciler
        # stops the replicas the store no longer knows.
        session.delete(chain)
    core.wake_reconciler()
