"""Writing and reading the audit log. A row is written in the same transaction as its change:
`record` queues it on the session, and the commit writes a transaction's rows in one statement
(an ORM insert per row costs a round trip each, as its sequence number comes back with it)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, cast, event, func, insert, or_, select
from sqlalchemy.orm import Session

from chainyard.domain.errors import Invalid
from chainyard.domain.ids import new_id
from chainyard.schemas import AuditLogActorV1, AuditLogEntryV1
from chainyard.services import lookups
from chainyard.services.context import Actor, Core
from chainyard.store.audit_logs import AuditLog
from chainyard.store.base import utcnow

EVENT_TYPE_GROUPS: dict[str, frozenset[str]] = {
    "DEPLOYED": frozenset({"CHAIN_DEPLOYED"}),
    "PROMOTED": frozenset({"CHAIN_DEPLOYMENT_PROMOTED"}),
    "ACTIVATED_DEACTIVATED": frozenset(
        {"CHAIN_DEPLOYMENT_ACTIVATED", "CHAIN_DEPLOYMENT_DEACTIVATED"}
    ),
    "AUTOSCALING_SETTINGS": frozenset({"CHAINLET_AUTOSCALING_SETTINGS_CHANGED"}),
    "INSTANCE_TYPE_CHANGED": frozenset({"CHAINLET_INSTANCE_TYPE_CHANGED"}),
    "ENVIRONMENT_SETTINGS": frozenset({"CHAIN_ENVIRONMENT_CREATED", "CHAIN_ENVIRONMENT_UPDATED"}),
    "DELETED": frozenset({"CHAIN_DEPLOYMENT_DELETED", "CHAIN_DELETED"}),
    "SECRETS": frozenset({"SECRET_UPDATED", "SECRET_DELETED"}),
    "API_KEYS": frozenset({"API_KEY_CREATED", "API_KEY_DELETED"}),
    "WEBHOOK_SIGNING_SECRETS": frozenset(
        {"WEBHOOK_SIGNING_SECRET_CREATED", "WEBHOOK_SIGNING_SECRET_ROTATED"}
    ),
}

# Where a session keeps the rows `record` queued until its commit.
_PENDING = "chainyard.audit_pending"


def record(
    session: Session,
    actor: Actor,
    event_type: str,
    data: dict[str, Any],
    *,
    chain_id: str | None = None,
    environment_name: str | None = None,
    chain_deployment_id: str | None = None,
) -> None:
    """Queues a row for this transaction's commit; a rolled back transaction writes none."""
    session.info.setdefault(_PENDING, []).append(
        {
            "id": new_id(12),
            "workspace_id": actor.workspace_id,
            "chain_id": chain_id,
            "created_at": utcnow(),
            "event_type": event_type,
            "event_data": {"event_type": event_type, **data},
            "source": actor.source,
            "actor_type": actor.actor_type,
            "actor_key_prefix": actor.key_prefix,
            "actor_key_name": actor.key_name,
            "environment_name": environment_name,
            "chain_deployment_id": chain_deployment_id,
        }
    )


def take_pending(session: Session) -> list[dict[str, Any]]:
    """The rows queued so far, for a caller that writes them itself (`store.batch`); the commit
    then writes only those queued later."""
    rows: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    return rows


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    rows = take_pending(session)
    if rows:
        # In the order recorded, so that sequence numbers follow the events.
        session.execute(insert(AuditLog), rows)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


_MAX_SEQ = 2**63 - 1


def encode_cursor(seq: int, direction: str) -> str:
    return base64.urlsafe_b64encode(f"{seq}:{direction}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        seq_text, direction = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        seq = int(seq_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("cursor is not one this server returned", code="INVALID_CURSOR") from exc
    # seq is a signed 64-bit column: a larger number would fail in the database, not here.
    if direction not in ("ASC", "DESC") or not 0 <= seq <= _MAX_SEQ:
        raise Invalid("cursor is not one this server returned", code="INVALID_CURSOR")
    return seq, direction


def _query_page(
    session: Session,
    *,
    chain_id: str,
    limit: int,
    direction: str,
    cursor: str | None,
    search: str | None,
    event_type_groups: Sequence[str],
    chain_deployment_ids: Sequence[str],
    environment_names: Sequence[str],
    sources: Sequence[str],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> tuple[list[AuditLog], str | None]:
    """One page of a chain's audit log and the cursor of the next page (None on the last)."""
    if not 1 <= limit <= 200:
        raise Invalid("limit must be between 1 and 200", code="INVALID_LIMIT")
    query = select(AuditLog).where(AuditLog.chain_id == chain_id)
    if cursor:
        after, direction = decode_cursor(cursor)
        query = query.where(AuditLog.seq > after if direction == "ASC" else AuditLog.seq < after)
    if search:
        # A plain substring: LIKE's own wildcards in the search text match only themselves.
        literal = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            func.lower(cast(AuditLog.event_data, String)).like(f"%{literal}%", escape="\\")
        )
    if event_type_groups:
        types: set[str] = set()
        for group in event_type_groups:
            types |= EVENT_TYPE_GROUPS.get(group, frozenset())
        query = query.where(AuditLog.event_type.in_(sorted(types)))
    if chain_deployment_ids:
        query = query.where(AuditLog.chain_deployment_id.in_(list(chain_deployment_ids)))
    if environment_names:
        query = query.where(AuditLog.environment_name.in_(list(environment_names)))
    if sources:
        query = query.where(or_(*(AuditLog.source == s for s in sources)))
    if start is not None:
        query = query.where(AuditLog.created_at >= start)
    if end is not None:
        query = query.where(AuditLog.created_at <= end)
    order = AuditLog.seq.asc() if direction == "ASC" else AuditLog.seq.desc()
    rows = list(session.scalars(query.order_by(order).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].seq, direction) if len(rows) > limit else None
    return rows[:limit], next_cursor


def entry_v1(row: AuditLog) -> AuditLogEntryV1:
    return AuditLogEntryV1.model_validate(
        {
            "id": row.id,
            "created": row.created_at,
            "event_type": row.event_type,
            "event_data": row.event_data,
            "source": row.source,
            "actor": AuditLogActorV1.model_validate(
                {
                    "type": row.actor_type,
                    "api_key_prefix": row.actor_key_prefix,
                    "api_key_name": row.actor_key_name,
                }
            ),
        }
    )


def list_for_chain(
    core: Core,
    actor: Actor,
    chain_id: str,
    *,
    limit: int,
    direction: str,
    cursor: str | None,
    search: str | None,
    event_type_groups: Sequence[str],
    chain_deployment_ids: Sequence[str],
    environment_names: Sequence[str],
    sources: Sequence[str],
    start_epoch_millis: int | None,
    end_epoch_millis: int | None,
) -> tuple[list[AuditLogEntryV1], str | None]:
    def millis(name: str, value: int | None) -> dt.datetime | None:
        if value is None:
            return None
        try:
            return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        except (OverflowError, ValueError, OSError) as exc:
            # Beyond what a datetime holds (years 1 to 9999): nothing was logged then.
            raise Invalid(f"{name} is out of range", code="INVALID_ARGUMENT") from exc

    with core.db.read() as session:
        lookups.chain(session, actor, chain_id)
        rows, next_cursor = _query_page(
            session,
            chain_id=chain_id,
            limit=limit,
            direction=direction,
            cursor=cursor,
            search=search,
            event_type_groups=event_type_groups,
            chain_deployment_ids=chain_deployment_ids,
            environment_names=environment_names,
            sources=sources,
            start=millis("start_epoch_millis", start_epoch_millis),
            end=millis("end_epoch_millis", end_epoch_millis),
        )
        return [entry_v1(r) for r in rows], next_cursor
