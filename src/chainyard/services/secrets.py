"""Workspace secrets: values are encrypted at rest and never returned by the API."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain.errors import Invalid, NotFound
from chainyard.domain.ids import new_id
from chainyard.domain.text import check_text
from chainyard.schemas import SecretV1
from chainyard.services import audit
from chainyard.services.context import Actor, Core
from chainyard.store.base import utcnow
from chainyard.store.secrets import Secret

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
MAX_VALUE_BYTES = 64 * 1024


def secret_v1(row: Secret, team_name: str) -> SecretV1:
    return SecretV1(id=row.id, created_at=row.created_at, name=row.name, team_name=team_name)


def upsert(core: Core, actor: Actor, name: str, value: str) -> SecretV1:
    if not _NAME.match(name):
        raise Invalid(
            "secret names are 1-200 letters, digits, '_', '-' or '.'", code="INVALID_SECRET_NAME"
        )
    # Before encoding it: the API refuses such text at the edge, other callers meet it here.
    check_text(value, "the secret's value")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise Invalid(f"secret values are at most {MAX_VALUE_BYTES} bytes", code="SECRET_TOO_LARGE")
    ciphertext = core.cipher.encrypt(value)
    with core.db.write() as session:
        row = session.scalar(
            select(Secret).where(Secret.workspace_id == actor.workspace_id, Secret.name == name)
        )
        if row is None:
            row = Secret(
                id=new_id(), workspace_id=actor.workspace_id, name=name, ciphertext=ciphertext
            )
            session.add(row)
        else:
            row.ciphertext = ciphertext
            row.updated_at = utcnow()
        session.flush()
        audit.record(session, actor, "SECRET_UPDATED", {"secret_id": row.id, "secret_name": name})
        return secret_v1(row, actor.workspace_name)


def list_(core: Core, actor: Actor) -> list[SecretV1]:
    with core.db.read() as session:
        query = select(Secret).where(Secret.workspace_id == actor.workspace_id)
        rows = session.scalars(query.order_by(Secret.name))
        return [secret_v1(r, actor.workspace_name) for r in rows]


def delete(core: Core, actor: Actor, name: str) -> None:
    with core.db.write() as session:
        row = session.scalar(
            select(Secret).where(Secret.workspace_id == actor.workspace_id, Secret.name == name)
        )
        if row is None:
            raise NotFound(f"secret '{name}' not found", code="SECRET_NOT_FOUND")
        audit.record(session, actor, "SECRET_DELETED", {"secret_id": row.id, "secret_name": name})
        session.delete(row)


def values_for(core: Core, workspace_id: str, names: list[str]) -> dict[str, str]:
    """Plain values for a chainlet's replicas: only the names it declared, never over the API."""
    if not names:
        return {}
    with core.db.read() as session:
        rows = session.scalars(
            select(Secret).where(Secret.workspace_id == workspace_id, Secret.name.in_(names))
        )
        return {row.name: core.cipher.decrypt(row.ciphertext) for row in rows}


def missing_in(session: Session, workspace_id: str, names: Iterable[str]) -> list[str]:
    """Which of `names` the workspace has no secret for, sorted."""
    wanted = set(names)
    if not wanted:
        return []
    found = set(
        session.scalars(
            select(Secret.name).where(Secret.workspace_id == workspace_id, Secret.name.in_(wanted))
        )
    )
    return sorted(wanted - found)


def missing_note(chainlet: str, names: list[str]) -> str:
    """The push output's and build log's line about a chainlet's missing secrets."""
    listed = ", ".join(repr(n) for n in names)
    return (
        f"chainlet '{chainlet}': secret{'s' if len(names) > 1 else ''} {listed} named in "
        "assets.secret_keys not set in this workspace; reading it raises KeyError until it is set "
        "(`chainyard secrets set NAME VALUE`) and the replicas restart"
    )
