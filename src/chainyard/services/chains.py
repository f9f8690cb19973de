"""Chains: list, get, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from chainyard.schemas import ChainV1
from chainyard.services import audit, deployments, lookups, views
from chainyard.services.context import Actor, Core
from chainyard.store.chains import Chain, ChainDeployment

# Pages up to this size count their deployments by id; longer lists by workspace.
_COUNT_BY_IDS_UP_TO = 1000


def list_(
    core: Core, actor: Actor, *, limit: int | None = None, after: str | None = None
) -> list[ChainV1]:
    """Oldest first, in a stable order. `limit`/`after` page through (an extension of ours)."""
    with core.db.read() as session:
        query = select(Chain).where(Chain.workspace_id == actor.workspace_id)
        if after is not None:
            anchor = lookups.chain(session, actor, after)
            query = query.where(
                (Chain.created_at > anchor.created_at)
                | ((Chain.created_at == anchor.created_at) & (Chain.id > anchor.id))
            )
        query = query.order_by(Chain.created_at, Chain.id)
        if limit is not None:
            query = query.limit(limit)
        chains = list(session.scalars(query))
        counts = _deployment_counts(session, [c.id for c in chains], actor.workspace_id)
        return [
            views.chain_v1(chain, counts.get(chain.id, 0), actor.workspace_name) for chain in chains
        ]


def _deployment_counts(session: Any, chain_ids: list[str], workspace_id: str) -> dict[str, int]:
    """Deployments per chain. A page counts only its own chains' deployments (not a group-by
    over every deployment in the store); a long list counts its workspace's in one pass."""
    if not chain_ids:
        return {}
    query = select(ChainDeployment.chain_id, func.count()).group_by(ChainDeployment.chain_id)
    if len(chain_ids) <= _COUNT_BY_IDS_UP_TO:
        query = query.where(ChainDeployment.chain_id.in_(chain_ids))
    else:
        query = query.join(Chain, Chain.id == ChainDeployment.chain_id).where(
            Chain.workspace_id == workspace_id
        )
    return {chain_id: int(n) for chain_id, n in session.execute(query)}


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
        deployments.lock_for_delete(
            session,
            list(
                session.scalars(
                    select(ChainDeployment.id).where(ChainDeployment.chain_id == chain.id)
                )
            ),
        )
        session.delete(chain)
    core.chainlets_deleted()
