"""async inference: the async_requests queue

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chainyard.store.base import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_async_requests_claim": ["status", "priority", "created_at"],
    "ix_async_requests_expiry": ["status", "expires_at"],
    "ix_async_requests_deployment": ["deployment_id", "status"],
    "ix_async_requests_workspace": ["workspace_id", "status"],
    "ix_async_requests_webhook": ["webhook_status", "webhook_next_at"],
    "ix_async_requests_chain_id": ["chain_id"],
}


def upgrade() -> None:
    op.create_table(
        "async_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=16), nullable=False),
        sa.Column("chain_id", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=True),
        sa.Column("deployment_id", sa.String(length=16), nullable=False),
        sa.Column("model_input", sa.JSON(), nullable=False),
        sa.Column("webhook_endpoint", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("retry", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("webhook_status", sa.String(length=20), nullable=False),
        sa.Column("status_at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lost_leases", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_holder", sa.String(length=64), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.Column("webhook_next_at", UTCDateTime(), nullable=True),
        sa.Column("webhook_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_async_requests_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chain_id"],
            ["chains.id"],
            name=op.f("fk_async_requests_chain_id_chains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_async_requests")),
    )
    with op.batch_alter_table("async_requests") as batch:
        for name, columns in _INDEXES.items():
            batch.create_index(name, columns, unique=False)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="async_requests")
    op.drop_table("async_requests")
