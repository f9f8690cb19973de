"""Imports every table module, so that `Base.metadata` knows them all (migrations, tests)."""

from chainyard.store import (
    async_requests,
    audit_logs,
    chains,
    cluster,
    credentials,
    environments,
    logs,
    patches,
    secrets,
    webhook_secrets,
    workspaces,
)
from chainyard.store.base import Base

metadata = Base.metadata

__all__ = [
    "async_requests",
    "audit_logs",
    "chains",
    "cluster",
    "credentials",
    "environments",
    "logs",
    "metadata",
    "patches",
    "secrets",
    "webhook_secrets",
    "workspaces",
]
