"""Live patches of development deployments (docs/development.md): one row per patch, kept as
the deployment's patch history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chainyard.store.base import Base, UTCDateTime, utcnow


class DeploymentPatch(Base):
    __tablename__ = "deployment_patches"
    __table_args__ = (
        UniqueConstraint(
            "chain_deployment_id", "revision", name="uq_deployment_patches_deployment_revision"
        ),
        # The reconciler asks every tick which patches are being applied.
        Index("ix_deployment_patches_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    chain_deployment_id: Mapped[str] = mapped_column(
        ForeignKey("chain_deployments.id", ondelete="CASCADE"), index=True
    )
    # 1, 2, ... per deployment: what `chainlets.code_revision` becomes for the chainlets it patches.
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # APPLYING, SUCCEEDED, FAILED or SKIPPED.
    status: Mapped[str] = mapped_column(String(20))
    # "code" (restart on the new code) or "requirements" (rebuild, then restart).
    kind: Mapped[str] = mapped_column(String(20))
    # Names of the chainlets it patches.
    chainlets: Mapped[list[str]] = mapped_column(JSON, default=list)
    changed_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    deleted_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The new source archive.
    artifact_digest: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    # Chainlet id -> what it goes back to if the patch fails: artifact_digest, pip_requirements,
    # image, code_revision.
    previous: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
