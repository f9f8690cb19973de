"""Finding rows on behalf of an actor: another workspace's rows are reported as not found."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from chainyard.domain.errors import NotFound
from chainyard.services.context import Actor
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.environments import Environment


def chain(session: Session, actor: Actor, chain_id: str) -> Chain:
    row = session.get(Chain, chain_id)
    if row is None or row.workspace_id != actor.workspace_id:
        raise NotFound(f"chain '{chain_id}' not found", code="CHAIN_NOT_FOUND")
    return row


def deployment(session: Session, chain_row: Chain, deployment_id: str) -> ChainDeployment:
    row = session.get(ChainDeployment, deployment_id)
    if row is None or row.chain_id != chain_row.id:
        raise NotFound(
            f"chain deployment '{deployment_id}' not found in chain '{chain_row.id}'",
            code="DEPLOYMENT_NOT_FOUND",
        )
    return row


def environment(
    session: Session, chain_row: Chain, name: str, *, for_update: bool = False
) -> Environment:
    query = select(Environment).where(
        Environment.chain_id == chain_row.id, Environment.name == name
    )
    if for_update:
        # Serializes promotions and settings changes of one environment (PostgreSQL; on SQLite the
        # write transaction already holds the database's write lock).
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(
            f"environment '{name}' not found in chain '{chain_row.id}'",
            code="ENVIRONMENT_NOT_FOUND",
        )
    return row


# Built once: building a select with its options costs a fifth of this lookup, and the update
# makes it on every call.
_CHAIN_AND_ENVIRONMENT = (
    select(Chain, Environment)
    .join(Environment, Environment.chain_id == Chain.id)
    .where(
        Chain.id == bindparam("chain_id"),
        Chain.workspace_id == bindparam("workspace_id"),
        Environment.name == bindparam("environment_name"),
    )
    .options(joinedload(Environment.chainlet_settings))
    .with_for_update(of=Environment)
)


def chain_and_environment(
    session: Session, actor: Actor, chain_id: str, name: str
) -> tuple[Chain, Environment]:
    """The chain and its environment, the environment locked, with its chainlet settings: one
    round trip where `chain` then `environment(for_update=True)` take three (the instance-type
    update's hot path). Falls back to those for the error they name."""
    row = (
        session.execute(
            _CHAIN_AND_ENVIRONMENT,
            {"chain_id": chain_id, "workspace_id": actor.workspace_id, "environment_name": name},
        )
        .unique()
        .first()
    )
    if row is None:
        found = chain(session, actor, chain_id)
        return found, environment(session, found, name, for_update=True)
    return row[0], row[1]
