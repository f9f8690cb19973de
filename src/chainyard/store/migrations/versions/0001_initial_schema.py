"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chainyard.store.base import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_logs",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=16), nullable=False),
        sa.Column("chain_id", sa.String(length=16), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("event_data", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("actor_type", sa.String(length=32), nullable=False),
        sa.Column("actor_key_prefix", sa.String(length=32), nullable=True),
        sa.Column("actor_key_name", sa.String(length=200), nullable=True),
        sa.Column("environment_name", sa.String(length=100), nullable=True),
        sa.Column("chain_deployment_id", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_logs")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_logs_id")),
    )
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.create_index("ix_audit_logs_chain_seq", ["chain_id", "seq"], unique=False)
        batch_op.create_index("ix_audit_logs_workspace_seq", ["workspace_id", "seq"], unique=False)

    op.create_table(
        "chainlet_logs",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chainlet_id", sa.String(length=16), nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=True),
        sa.Column("replica", sa.String(length=16), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("component", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_chainlet_logs")),
    )
    with op.batch_alter_table("chainlet_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chainlet_logs_chainlet_ts", ["chainlet_id", "timestamp_ns"], unique=False
        )

    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("name", name=op.f("uq_workspaces_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_api_keys_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_keys_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "chains",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_chains_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains")),
        sa.UniqueConstraint("workspace_id", "name", name="uq_chains_workspace_name"),
    )
    with op.batch_alter_table("chains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chains_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_chains_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "secrets",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_secrets_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("workspace_id", "name", name="uq_secrets_workspace_name"),
    )
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_secrets_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "chain_deployments",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("chain_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("desired_state", sa.String(length=10), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=True),
        sa.Column("entrypoint", sa.String(length=100), nullable=False),
        sa.Column("artifact_digest", sa.String(length=64), nullable=True),
        sa.Column("source_deployment_id", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["chain_id"],
            ["chains.id"],
            name=op.f("fk_chain_deployments_chain_id_chains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_deployments")),
    )
    with op.batch_alter_table("chain_deployments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chain_deployments_chain_created", ["chain_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_chain_deployments_status", ["status"], unique=False)

    op.create_table(
        "chainlets",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("chain_deployment_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_entrypoint", sa.Boolean(), nullable=False),
        sa.Column("dependencies", sa.JSON(), nullable=False),
        sa.Column("compute", sa.JSON(), nullable=False),
        sa.Column("pip_requirements", sa.JSON(), nullable=False),
        sa.Column("secret_keys", sa.JSON(), nullable=False),
        sa.Column("instance_type_id", sa.String(length=64), nullable=False),
        sa.Column("autoscaling", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("desired_replicas", sa.Integer(), nullable=False),
        sa.Column("ready_replicas", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain_deployment_id"],
            ["chain_deployments.id"],
            name=op.f("fk_chainlets_chain_deployment_id_chain_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chainlets")),
        sa.UniqueConstraint("chain_deployment_id", "name", name="uq_chainlets_deployment_name"),
    )
    with op.batch_alter_table("chainlets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chainlets_chain_deployment_id"), ["chain_deployment_id"], unique=False
        )
        batch_op.create_index("ix_chainlets_desired_replicas", ["desired_replicas"], unique=False)

    op.create_table(
        "environments",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("chain_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("promotion_settings", sa.JSON(), nullable=False),
        sa.Column("current_deployment_id", sa.String(length=16), nullable=True),
        sa.Column("candidate_deployment_id", sa.String(length=16), nullable=True),
        sa.Column("promotion_scale_down_previous", sa.Boolean(), nullable=False),
        sa.Column("last_promotion_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_deployment_id"],
            ["chain_deployments.id"],
            name=op.f("fk_environments_candidate_deployment_id_chain_deployments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["chain_id"],
            ["chains.id"],
            name=op.f("fk_environments_chain_id_chains"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["current_deployment_id"],
            ["chain_deployments.id"],
            name=op.f("fk_environments_current_deployment_id_chain_deployments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("chain_id", "name", name="uq_environments_chain_name"),
    )
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_environments_chain_id"), ["chain_id"], unique=False)

    op.create_table(
        "chainlet_environment_settings",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("environment_id", sa.String(length=16), nullable=False),
        sa.Column("chainlet_name", sa.String(length=100), nullable=False),
        sa.Column("instance_type_id", sa.String(length=64), nullable=False),
        sa.Column("autoscaling", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_chainlet_environment_settings_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chainlet_environment_settings")),
        sa.UniqueConstraint(
            "environment_id", "chainlet_name", name="uq_chainlet_env_settings_name"
        ),
    )
    with op.batch_alter_table("chainlet_environment_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chainlet_environment_settings_environment_id"),
            ["environment_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("chainlet_environment_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chainlet_environment_settings_environment_id"))

    op.drop_table("chainlet_environment_settings")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environments_chain_id"))

    op.drop_table("environments")
    with op.batch_alter_table("chainlets", schema=None) as batch_op:
        batch_op.drop_index("ix_chainlets_desired_replicas")
        batch_op.drop_index(batch_op.f("ix_chainlets_chain_deployment_id"))

    op.drop_table("chainlets")
    with op.batch_alter_table("chain_deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_chain_deployments_status")
        batch_op.drop_index("ix_chain_deployments_chain_created")

    op.drop_table("chain_deployments")
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secrets_workspace_id"))

    op.drop_table("secrets")
    with op.batch_alter_table("chains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chains_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_chains_created_at"))

    op.drop_table("chains")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_workspace_id"))

    op.drop_table("api_keys")
    op.drop_table("workspaces")
    with op.batch_alter_table("chainlet_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_chainlet_logs_chainlet_ts")

    op.drop_table("chainlet_logs")
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_logs_workspace_seq")
        batch_op.drop_index("ix_audit_logs_chain_seq")

    op.drop_table("audit_logs")
