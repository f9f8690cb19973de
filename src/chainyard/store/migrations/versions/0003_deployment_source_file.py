"""chain deployments remember the chain file inside their source archive

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_file", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chain_deployments", schema=None) as batch_op:
        batch_op.drop_column("source_file")
