"""Chains, their deployments, and the chainlets of each deployment."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    false,
    or_,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from chainyard.store.base import Base, UTCDateTime, utcnow


class Chain(Base):
    __tablename__ = "chains"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_chains_workspace_name"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ChainDeployment(Base):
    __tablename__ = "chain_deployments"
    __table_args__ = (
        Index("ix_chain_deployments_chain_created", "chain_id", "created_at"),
        Index("ix_chain_deployments_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    chain_id: Mapped[str] = mapped_column(ForeignKey("chains.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Aggregate of the chainlets' statuses, kept here so that lists need not join.
    status: Mapped[str] = mapped_column(String(20))
    status_message: Mapped[str | None] = mapped_column(Text)
    # What the operator asked for: ACTIVE (serve) or INACTIVE (deactivated).
    desired_state: Mapped[str] = mapped_column(String(10), default="ACTIVE")
    # Name of the environment this deployment is the current deployment of, if any.
    environment: Mapped[str | None] = mapped_column(String(100))
    entrypoint: Mapped[str] = mapped_column(String(100))
    # Content address of the chain's source archive; null for manifest-only (simulated) deploys.
    artifact_digest: Mapped[str | None] = mapped_column(String(64))
    # The chain file inside the archive (e.g. "chain.py" or "pipelines/chain.py").
    source_file: Mapped[str | None] = mapped_column(String(500))
    # The deployment this one was copied from (instance-type update, promotion redeploy).
    source_deployment_id: Mapped[str | None] = mapped_column(String(16))
    # Replaced in its environment by a promotion: the autoscaler lets it go to zero when idle,
    # whatever its min_replica says.
    retired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The chain's development deployment (docs/development.md): outside every environment,
    # patched in place, at most one replica.
    is_development: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    chainlets: Mapped[list[Chainlet]] = relationship(
        back_populates="deployment",
        cascade="all, delete-orphan",
        order_by="Chainlet.position",
        lazy="selectin",
    )


class Chainlet(Base):
    __tablename__ = "chainlets"
    __table_args__ = (
        UniqueConstraint("chain_deployment_id", "name", name="uq_chainlets_deployment_name"),
        Index("ix_chainlets_desired_replicas", "desired_replicas"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    chain_deployment_id: Mapped[str] = mapped_column(
        ForeignKey("chain_deployments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # Order of the manifest, so that answers list chainlets the way the user wrote them.
    position: Mapped[int] = mapped_column(Integer)
    is_entrypoint: Mapped[bool] = mapped_column(Boolean, default=False)
    dependencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    compute: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pip_requirements: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Image settings, assets and options the build and replicas honour
    # (services/chainlet_image.py); NULL for chainlets deployed before they were kept.
    image: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    instance_type_id: Mapped[str] = mapped_column(String(64))
    autoscaling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    status_message: Mapped[str | None] = mapped_column(Text)
    desired_replicas: Mapped[int] = mapped_column(Integer, default=0)
    ready_replicas: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The autoscaling policy's memory (domain.autoscaling_policy.PolicyState), kept across restarts.
    autoscaler_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The source archive this chainlet runs when a patch made it differ from the deployment's
    # (NULL: the deployment's), and the patch revision whose code it runs (0: as pushed).
    artifact_digest: Mapped[str | None] = mapped_column(String(64))
    code_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    deployment: Mapped[ChainDeployment] = relationship(back_populates="chainlets")


# Statuses in which the reconciler has work even when no replica is wanted. Sorted, and written
# into SQL as literals: the unsettled index below holds this very expression, and a database
# uses it only for a query that spells the expression the same way.
MOVING_STATUSES = (
    "BUILDING",
    "DEACTIVATING",
    "DEPLOYING",
    "LOADING_MODEL",
    "UNHEALTHY",
    "UPDATING",
    "WAKING_UP",
)


def unsettled() -> ColumnElement[bool]:
    """Chainlets whose stored state is not at rest: what the reconciler reads between full scans,
    every tick, through `ix_chainlets_unsettled` (a steady fleet is then a few index pages, not a
    scan of every chainlet ever deployed)."""
    return or_(
        Chainlet.status.in_(
            bindparam("moving_statuses", MOVING_STATUSES, expanding=True, literal_execute=True)
        ),
        Chainlet.desired_replicas != Chainlet.ready_replicas,
    )


# PostgreSQL: an index on the expression, whose statistics tell the planner how few rows match
# (a partial index alone leaves it guessing that most do). SQLite: a partial index, which its
# planner uses for a query whose WHERE holds the index's condition.
Index("ix_chainlets_unsettled", unsettled()).ddl_if(dialect="postgresql")
Index("ix_chainlets_unsettled", Chainlet.id, sqlite_where=unsettled()).ddl_if(dialect="sqlite")
