"""The audit log: one row per change, written in the transaction of the change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chainyard.store.base import Base, UTCDateTime, utcnow


class AuditLog(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_chain_seq", "chain_id", "seq"),
        Index("ix_audit_logs_workspace_seq", "workspace_id", "seq"),
    )

    # A monotonic sequence gives a stable order and an opaque cursor without ties on timestamps.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )
    id: Mapped[str] = mapped_column(String(16), unique=True)
    workspace_id: Mapped[str] = mapped_column(String(16))
    # No foreign key: the record of a chain outlives the chain.
    chain_id: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    event_type: Mapped[str] = mapped_column(String(64))
    event_data: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(32))
    actor_key_prefix: Mapped[str | None] = mapped_column(String(32))
    actor_key_name: Mapped[str | None] = mapped_column(String(200))
    environment_name: Mapped[str | None] = mapped_column(String(100))
    chain_deployment_id: Mapped[str | None] = mapped_column(String(16))
