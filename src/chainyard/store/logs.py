"""Chainlet log lines: build output and replica output."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chainyard.store.base import Base


class ChainletLog(Base):
    __tablename__ = "chainlet_logs"
    __table_args__ = (Index("ix_chainlet_logs_chainlet_ts", "chainlet_id", "timestamp_ns"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    chainlet_id: Mapped[str] = mapped_column(String(16))
    timestamp_ns: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(String(10))
    replica: Mapped[str | None] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    component: Mapped[str | None] = mapped_column(String(32))
