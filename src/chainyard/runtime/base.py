"""The runtime backend interface: the reconciler's only view of where replicas run.

Backends start and stop replicas and report what runs; they never read the store. The reconciler
and promotion logic are the same for every backend.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import functools
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

from chainyard.runtime.replica_table import ReplicaTable


class ReplicaPhase(enum.StrEnum):
    STARTING = "STARTING"
    READY = "READY"
    FAILED = "FAILED"
    STOPPING = "STOPPING"


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    chainlet_id: str
    chainlet_name: str
    deployment_id: str
    artifact_path: pathlib.Path | None
    pip_requirements: tuple[str, ...]
    # Image settings, assets and options (services/chainlet_image.py): requirements_file, apt,
    # python_version, data_dir, external_data, package_dirs, env.
    image: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The patch revision the build is for (docs/development.md); 0: the deployment as pushed.
    revision: int = 0
    # A development deployment's: its sources live apart, where its spare host can see them.
    development: bool = False


@dataclasses.dataclass(frozen=True)
class BuildResult:
    ok: bool
    message: str | None = None
    log_lines: tuple[str, ...] = ()
    # Lines the build log shows at WARNING: what runs differently from Baseten, or is missing.
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ReplicaSpec:
    replica_id: str
    chainlet_id: str
    chainlet_name: str
    deployment_id: str
    chain_id: str
    instance_type: dict[str, Any]
    compute: dict[str, Any]
    artifact_path: pathlib.Path | None
    entrypoint: bool
    dependencies: tuple[str, ...]
    # Path of the chain file inside the source archive.
    source_file: str | None = None
    # The deployment's entrypoint class, by which the host imports the chain file.
    entrypoint_name: str | None = None
    pip_requirements: tuple[str, ...] = ()
    # Only the secrets the chainlet declared (assets.secret_keys), in plain text.
    secrets: dict[str, str] = dataclasses.field(default_factory=dict)
    # The names it declared, set in the workspace or not (a missing one's error names it).
    secret_keys: tuple[str, ...] = ()
    environment: str | None = None
    # Dependency chainlet name -> URL its stub posts to (the gateway's internal route).
    service_urls: dict[str, str] = dataclasses.field(default_factory=dict)
    # Token the replica's stubs present to the gateway's internal route.
    chain_api_key: str = ""
    predict_concurrency: int = 1
    # As BuildRequest.image.
    image: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The patch revision whose code the replica runs (docs/development.md); 0: as pushed.
    revision: int = 0
    # Of a development deployment: patched in place, so the local runtime keeps a spare host.
    development: bool = False


@dataclasses.dataclass(frozen=True)
class ReplicaState:
    replica_id: str
    chainlet_id: str
    deployment_id: str
    phase: ReplicaPhase
    address: str | None = None
    message: str | None = None
    # What the replica wants to see from its callers (replica_auth.py): random per
    # replica, known to the runtime and the gateway only. Never shown (not in repr).
    credential: str | None = dataclasses.field(default=None, repr=False)
    # As ReplicaSpec.revision: replicas of an older revision are replaced once the new are ready.
    revision: int = 0


class RuntimeUnavailable(Exception):
    """The runtime cannot start (e.g. its cluster does not answer); the message says why, for
    the operator."""


class RuntimeBackend(abc.ABC):
    name: str

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called once when the server starts."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stops every replica this backend started."""

    @abc.abstractmethod
    async def build(self, request: BuildRequest) -> BuildResult: ...

    @abc.abstractmethod
    async def start_replica(self, spec: ReplicaSpec) -> None:
        """Begins starting a replica; it shows in `replicas()` as STARTING at once."""

    @abc.abstractmethod
    async def stop_replica(self, replica_id: str) -> None: ...

    async def release_deployment(self, deployment_id: str) -> None:  # noqa: B027 - optional
        """The deployment will run no more replicas (deactivated or deleted): free what the
        backend keeps for it between replicas (the local runtime's host process)."""

    def drain_logs(self) -> list[tuple[str, str, str]]:
        """Replica output since the last call: (chainlet id, replica id, line)."""
        return []

    # -- what runs: the replica table (runtime/replica_table.py) -----------------------------

    @functools.cached_property
    def replica_table(self) -> ReplicaTable:
        return ReplicaTable(self._replica_states)

    def _replica_states(self) -> Iterable[ReplicaState]:
        """The replicas as the backend's own records say now; the table calls it when marked
        dirty (`replica_table.touch()`, or records kept in `TrackedRecords`)."""
        return ()

    def replicas(self) -> Sequence[ReplicaState]:
        """What runs now, as observed; cheap to call every tick or request. The same object
        while `generation` stays the same (callers must not modify it)."""
        return self.replica_table.snapshot

    @property
    def generation(self) -> int:
        """Grows by one at each change of `replicas()`: compare it with the last one seen."""
        return self.replica_table.generation

    async def changed(self, since: int) -> int:
        """The generation once it differs from `since`: waits for a change without polling."""
        return await self.replica_table.changed(since)
