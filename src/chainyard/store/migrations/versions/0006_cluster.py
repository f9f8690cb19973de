"""several servers on one database: the leader lease, replica endpoints, gateway demand

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "replica_endpoints",
        sa.Column("replica_id", sa.String(length=64), nullable=False),
        sa.Column("chainlet_id", sa.String(length=16), nullable=False),
        sa.Column("deployment_id", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("replica_id", name=op.f("pk_replica_endpoints")),
    )
    op.create_index(op.f("ix_replica_endpoints_chainlet_id"), "replica_endpoints", ["chainlet_id"])
    op.create_table(
        "server_demand",
        sa.Column("server", sa.String(length=200), nullable=False),
        sa.Column("demand", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("server", name=op.f("pk_server_demand")),
    )


def downgrade() -> None:
    op.drop_table("server_demand")
    op.drop_index(op.f("ix_replica_endpoints_chainlet_id"), table_name="replica_endpoints")
    op.drop_table("replica_endpoints")
    op.drop_table("leases")
