"""an index for the chainlets whose stored state is not at rest (the reconciler's every tick)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# As store/chains.py's unsettled() spells it: a database uses the index only for that spelling.
_UNSETTLED = (
    "status IN ('BUILDING', 'DEACTIVATING', 'DEPLOYING', 'LOADING_MODEL', 'UNHEALTHY', "
    "'UPDATING', 'WAKING_UP') OR desired_replicas != ready_replicas"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_chainlets_unsettled", "chainlets", [sa.text(f"({_UNSETTLED})")])
    else:
        op.create_index(
            "ix_chainlets_unsettled", "chainlets", ["id"], sqlite_where=sa.text(_UNSETTLED)
        )


def downgrade() -> None:
    op.drop_index("ix_chainlets_unsettled", table_name="chainlets")
