"""Chain environments and the per-chainlet settings each one holds."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from chainyard.store.base import Base, UTCDateTime, utcnow


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (
        UniqueConstraint("chain_id", "name", name="uq_environments_chain_name"),
        # "Which environments serve this deployment" (every promotion the reconciler settles,
        # deployment delete and deactivate), and the ON DELETE SET NULL of these foreign keys.
        Index("ix_environments_current_deployment_id", "current_deployment_id"),
        Index("ix_environments_candidate_deployment_id", "candidate_deployment_id"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    chain_id: Mapped[str] = mapped_column(ForeignKey("chains.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    promotion_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    current_deployment_id: Mapped[str | None] = mapped_column(
        ForeignKey("chain_deployments.id", ondelete="SET NULL")
    )
    candidate_deployment_id: Mapped[str | None] = mapped_column(
        ForeignKey("chain_deployments.id", ondelete="SET NULL")
    )
    # How the running promotion cleans up: False when promote asked to keep the previous deployment.
    promotion_scale_down_previous: Mapped[bool] = mapped_column(Boolean, default=True)
    last_promotion_error: Mapped[str | None] = mapped_column(Text)
    # A gradual promotion in progress (rolling deploy or traffic ramp): its targets, limits and
    # the candidate's traffic share (services/rollouts.py). NULL for blue-green switches.
    rollout: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    chainlet_settings: Mapped[list[ChainletEnvironmentSettings]] = relationship(
        back_populates="environment",
        cascade="all, delete-orphan",
        order_by="ChainletEnvironmentSettings.chainlet_name",
        lazy="selectin",
    )


class ChainletEnvironmentSettings(Base):
    __tablename__ = "chainlet_environment_settings"
    __table_args__ = (
        UniqueConstraint("environment_id", "chainlet_name", name="uq_chainlet_env_settings_name"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    chainlet_name: Mapped[str] = mapped_column(String(100))
    instance_type_id: Mapped[str] = mapped_column(String(64))
    autoscaling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    environment: Mapped[Environment] = relationship(back_populates="chainlet_settings")
