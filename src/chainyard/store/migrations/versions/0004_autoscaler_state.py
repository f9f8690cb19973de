"""the autoscaler's stored state per chainlet, and retired deployments

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chainlets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("autoscaler_state", sa.JSON(), nullable=True))
    with op.batch_alter_table("chain_deployments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("retired", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("chain_deployments", schema=None) as batch_op:
        batch_op.drop_column("retired")
    with op.batch_alter_table("chainlets", schema=None) as batch_op:
        batch_op.drop_column("autoscaler_state")
