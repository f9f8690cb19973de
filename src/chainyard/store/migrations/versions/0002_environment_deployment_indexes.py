"""index the environments' references to deployments

`promotions.environments_serving` looks environments up by `current_deployment_id` or
`candidate_deployment_id` (each promotion the reconciler settles, deployment delete and
deactivate), and deleting a deployment sets both foreign keys to NULL where they point at it.
Without these indexes each of those is a scan of every environment.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_environments_current_deployment_id", ["current_deployment_id"], unique=False
        )
        batch_op.create_index(
            "ix_environments_candidate_deployment_id", ["candidate_deployment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index("ix_environments_candidate_deployment_id")
        batch_op.drop_index("ix_environments_current_deployment_id")
