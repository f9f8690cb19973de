"""development deployments and live patches: chain_deployments.is_development,
chainlets.artifact_digest and code_revision, deployment_patches

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chainyard.store.base import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_deployments") as batch:
        batch.add_column(
            sa.Column("is_development", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("chainlets") as batch:
        batch.add_column(sa.Column("artifact_digest", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("code_revision", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "deployment_patches",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("chain_deployment_id", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("chainlets", sa.JSON(), nullable=False),
        sa.Column("changed_paths", sa.JSON(), nullable=False),
        sa.Column("deleted_paths", sa.JSON(), nullable=False),
        sa.Column("artifact_digest", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain_deployment_id"],
            ["chain_deployments.id"],
            name=op.f("fk_deployment_patches_chain_deployment_id_chain_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_patches")),
        sa.UniqueConstraint(
            "chain_deployment_id", "revision", name="uq_deployment_patches_deployment_revision"
        ),
    )
    with op.batch_alter_table("deployment_patches") as batch:
        batch.create_index(
            batch.f("ix_deployment_patches_chain_deployment_id"),
            ["chain_deployment_id"],
            unique=False,
        )
        batch.create_index("ix_deployment_patches_status", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deployment_patches_status", table_name="deployment_patches")
    op.drop_index(
        op.f("ix_deployment_patches_chain_deployment_id"), table_name="deployment_patches"
    )
    op.drop_table("deployment_patches")
    with op.batch_alter_table("chainlets") as batch:
        batch.drop_column("code_revision")
        batch.drop_column("artifact_digest")
    with op.batch_alter_table("chain_deployments") as batch:
        batch.drop_column("is_development")
