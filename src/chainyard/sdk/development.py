"""`client.development`: the chain's development deployment, its push and its live patches
(docs/development.md), for the blocking and the async client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from chainyard.schemas import DeployManifest, DeployResponse, Patch
from chainyard.sdk import _ops

if TYPE_CHECKING:
    from chainyard.sdk.async_client import AsyncClient
    from chainyard.sdk.client import Client

__all__ = ["AsyncDevelopment", "Development"]

T = TypeVar("T")


class Development:
    """The chain's development deployment: its push and its live patches
    (docs/development.md)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _call(self, op: _ops.Op[T]) -> T:
        return self._client._call(op)

    def push(
        self,
        manifest: DeployManifest | Mapping[str, Any],
        *,
        source: bytes | None = None,
        timeout: float | None = None,
    ) -> DeployResponse:
        """Creates the chain's development deployment (replacing the one it had): a deploy
        with `development` set in the manifest, which must name no environment."""
        return self._call(_ops.push_development(manifest, source=source, timeout=timeout))

    def patch(
        self,
        chain_id: str,
        *,
        base_digest: str | None,
        files: bytes | None = None,
        deleted: Sequence[str] = (),
        manifest: DeployManifest | Mapping[str, Any] | None = None,
        chainlets: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> Patch:
        """Patches the development deployment live. `files`: a .tar.gz (as
        `chainyard.chains.packaging` packs) of the files added or changed since `base_digest`
        (the push's archive digest, or the last patch's `artifact_digest`), and `deleted` the
        paths removed since; with `base_digest` None, `files` is the whole tree. `manifest`:
        the chain as push builds it (None keeps every chainlet's settings); `chainlets`: the
        names to patch (None: all). The answer is APPLYING (follow it with `get_patch`), or
        SKIPPED when nothing changed."""
        return self._call(
            _ops.patch_development(
                chain_id,
                base_digest=base_digest,
                files=files,
                deleted=deleted,
                manifest=manifest,
                chainlets=chainlets,
                timeout=timeout,
            )
        )

    def get_patch(self, chain_id: str, patch_id: str) -> Patch:
        return self._call(_ops.get_patch(chain_id, patch_id))

    def patches(self, chain_id: str, *, limit: int | None = None) -> list[Patch]:
        """The development deployment's patches, newest first."""
        return self._call(_ops.list_patches(chain_id, limit=limit))


class AsyncDevelopment:
    """The chain's development deployment: its push and its live patches
    (docs/development.md)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _call(self, op: _ops.Op[T]) -> T:
        return await self._client._call(op)

    async def push(
        self,
        manifest: DeployManifest | Mapping[str, Any],
        *,
        source: bytes | None = None,
        timeout: float | None = None,
    ) -> DeployResponse:
        """Creates the chain's development deployment (replacing the one it had): a deploy
        with `development` set in the manifest, which must name no environment."""
        return await self._call(_ops.push_development(manifest, source=source, timeout=timeout))

    async def patch(
        self,
        chain_id: str,
        *,
        base_digest: str | None,
        files: bytes | None = None,
        deleted: Sequence[str] = (),
        manifest: DeployManifest | Mapping[str, Any] | None = None,
        chainlets: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> Patch:
        """Patches the development deployment live. `files`: a .tar.gz (as
        `chainyard.chains.packaging` packs) of the files added or changed since `base_digest`
        (the push's archive digest, or the last patch's `artifact_digest`), and `deleted` the
        paths removed since; with `base_digest` None, `files` is the whole tree. `manifest`:
        the chain as push builds it (None keeps every chainlet's settings); `chainlets`: the
        names to patch (None: all). The answer is APPLYING (follow it with `get_patch`), or
        SKIPPED when nothing changed."""
        return await self._call(
            _ops.patch_development(
                chain_id,
                base_digest=base_digest,
                files=files,
                deleted=deleted,
                manifest=manifest,
                chainlets=chainlets,
                timeout=timeout,
            )
        )

    async def get_patch(self, chain_id: str, patch_id: str) -> Patch:
        return await self._call(_ops.get_patch(chain_id, patch_id))

    async def patches(self, chain_id: str, *, limit: int | None = None) -> list[Patch]:
        """The development deployment's patches, newest first."""
        return await self._call(_ops.list_patches(chain_id, limit=limit))
