"""Chains."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["ChainTombstoneV1", "ChainV1", "ChainsV1"]


class ChainV1(BaseModel):
    """A chain: a named series of deployments."""

    id: str = Field(description="Chain id")
    created_at: datetime = Field(description="Creation time (ISO 8601)")
    name: str = Field(description="Chain name")
    deployments_count: int = Field(description="How many deployments the chain has")
    team_name: str = Field(description="Team that owns the chain")


class ChainsV1(BaseModel):
    """All chains."""

    chains: list[ChainV1]


class ChainTombstoneV1(BaseModel):
    """Answer to deleting a chain."""

    id: str = Field(description="Chain id")
    deleted: bool = Field(description="True when the chain is gone")
