"""Live patches of a chain's development deployment (a chainyard extension: Baseten patches
development deployments from `truss chains push --watch` outside its REST API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Patch", "PatchKind", "PatchRequest", "PatchStatus", "Patches"]

PatchStatus = Literal["APPLYING", "SUCCEEDED", "FAILED", "SKIPPED"]
PatchKind = Literal["code", "requirements"]

# As many paths as an archive may hold entries (archives.MAX_ENTRIES).
MAX_DELETED_PATHS = 10_000


class PatchRequest(BaseModel):
    """The `patch` field of `POST /v1/chains/{chain_id}/development/patch` (or its JSON body
    when no files are sent)."""

    model_config = ConfigDict(extra="forbid")

    base_digest: str | None = Field(
        description="The source the client last synced (the push's archive digest, or the last "
        "patch's artifact_digest); null: `files` is the whole tree",
        pattern=r"^[0-9a-f]{64}$",
    )
    deleted: list[str] = Field(
        default_factory=list,
        max_length=MAX_DELETED_PATHS,
        description="Paths (files or folders) removed since base_digest",
    )
    manifest: dict[str, Any] | None = Field(
        default=None,
        description="The chain as `push` builds it (a DeployManifest; its chain reference may be "
        "left out); null keeps every chainlet's settings",
    )
    chainlets: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Names of the chainlets to patch; null: all of them",
    )


class Patch(BaseModel):
    """One live patch of a development deployment."""

    id: str = Field(description="Patch id")
    chain_deployment_id: str = Field(description="The development deployment it patches")
    revision: int = Field(description="1, 2, ... per deployment")
    status: PatchStatus = Field(
        description="APPLYING, then SUCCEEDED or FAILED; SKIPPED when nothing changed"
    )
    kind: PatchKind = Field(
        description="code: restart on the new code; requirements: rebuild, then restart"
    )
    chainlets: list[str] = Field(description="Names of the chainlets it changes")
    changed_paths: list[str] = Field(description="Files added or changed")
    deleted_paths: list[str] = Field(description="Files removed")
    artifact_digest: str | None = Field(
        description="Digest of the resulting source tree: the next patch's base_digest"
    )
    message: str | None = Field(description="Why it failed or was skipped")
    created_at: datetime = Field(description="When it was received (ISO 8601)")
    finished_at: datetime | None = Field(description="When it ended; null while APPLYING")
    duration_ms: int | None = Field(description="finished_at - created_at; null while APPLYING")


class Patches(BaseModel):
    """A development deployment's patches, newest first."""

    patches: list[Patch] = Field(description="The patches")
