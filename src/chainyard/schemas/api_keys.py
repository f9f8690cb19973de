"""API keys."""

from __future__ import annotations

from pydantic import BaseModel, Field

from chainyard.schemas.common import APIKeyCategory

__all__ = [
    "APIKeyInfoV1",
    "APIKeyOwnerV1",
    "APIKeyTombstoneV1",
    "APIKeyV1",
    "APIKeysV1",
    "CreateAPIKeyRequestV1",
]


class APIKeyOwnerV1(BaseModel):
    """User a personal key belongs to."""

    user_id: str = Field(description="User id")
    email: str | None = Field(default=None, description="User email")
    name: str | None = Field(default=None, description="User display name")


class APIKeyInfoV1(BaseModel):
    """An API key's metadata; the secret part is never returned."""

    prefix: str = Field(description="Public prefix identifying the key")
    name: str | None = Field(default=None, description="Key name")
    type: APIKeyCategory = Field(description="Key scope")
    model_ids: list[str] | None = Field(default=None, description="Models the key is limited to")
    team_name: str | None = Field(default=None, description="Team the key belongs to")
    owner: APIKeyOwnerV1 | None = Field(default=None, description="Owner of a personal key")


class APIKeysV1(BaseModel):
    """All API keys."""

    keys: list[APIKeyInfoV1] = Field(description="The keys")


class APIKeyV1(BaseModel):
    """A newly created key, shown only once."""

    api_key: str = Field(description="The full key")


class APIKeyTombstoneV1(BaseModel):
    """Answer to revoking a key."""

    prefix: str = Field(description="Prefix of the revoked key")


class CreateAPIKeyRequestV1(BaseModel):
    """Request to create an API key."""

    name: str | None = Field(default=None, description="Key name")
    type: APIKeyCategory = Field(description="Key scope")
    model_ids: list[str] | None = Field(default=None, description="Models to limit the key to")
