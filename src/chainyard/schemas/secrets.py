"""Workspace secrets (values are write-only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["SecretTombstoneV1", "SecretV1", "SecretsV1", "UpsertSecretRequestV1"]


class SecretV1(BaseModel):
    """A secret's metadata; its value is never returned."""

    id: str = Field(description="Secret id")
    created_at: datetime = Field(description="Creation time (ISO 8601)")
    name: str = Field(description="Secret name")
    team_name: str = Field(description="Team that owns the secret")


class SecretsV1(BaseModel):
    """All secrets."""

    secrets: list[SecretV1]


class SecretTombstoneV1(BaseModel):
    """Answer to deleting a secret."""

    name: str = Field(description="Name of the deleted secret")


class UpsertSecretRequestV1(BaseModel):
    """Create a secret, or replace the value of an existing one with the same name."""

    name: str = Field(description="Secret name")
    value: str = Field(description="Secret value")
