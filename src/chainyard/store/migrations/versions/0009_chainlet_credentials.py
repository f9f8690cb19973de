"""chainlet_credentials: random replica-to-gateway tokens, stored hashed; replica_endpoints
.credential: the gateway-to-replica credential the leader publishes, encrypted

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chainyard.store.base import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chainlet_credentials",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("deployment_id", sa.String(length=16), nullable=False),
        sa.Column("chainlet_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["chain_deployments.id"],
            name=op.f("fk_chainlet_credentials_deployment_id_chain_deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chainlet_id"],
            ["chainlets.id"],
            name=op.f("fk_chainlet_credentials_chainlet_id_chainlets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_chainlet_credentials")),
    )
    with op.batch_alter_table("chainlet_credentials") as batch:
        batch.create_index(
            batch.f("ix_chainlet_credentials_deployment_id"), ["deployment_id"], unique=False
        )
        batch.create_index(
            batch.f("ix_chainlet_credentials_chainlet_id"), ["chainlet_id"], unique=False
        )
    with op.batch_alter_table("replica_endpoints") as batch:
        batch.add_column(sa.Column("credential", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replica_endpoints") as batch:
        batch.drop_column("credential")
    op.drop_index(op.f("ix_chainlet_credentials_chainlet_id"), table_name="chainlet_credentials")
    op.drop_index(op.f("ix_chainlet_credentials_deployment_id"), table_name="chainlet_credentials")
    op.drop_table("chainlet_credentials")
