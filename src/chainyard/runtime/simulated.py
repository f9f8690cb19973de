"""A runtime without processes: builds take a delay, replicas become ready after a delay, and
chainlets whose names match a pattern fail. For control-plane tests and scale benchmarks."""

from __future__ import annotations

import asyncio
import re
import time

from chainyard.runtime.base import (
    BuildRequest,
    BuildResult,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
    RuntimeBackend,
)


class SimulatedRuntime(RuntimeBackend):
    name = "simulated"

    def __init__(
        self,
        *,
        build_delay: float = 0.2,
        ready_delay: float = 0.2,
        fail_build: str | None = None,
        fail_deploy: str | None = None,
    ) -> None:
        self.build_delay = build_delay
        self.ready_delay = ready_delay
        self.fail_build = re.compile(fail_build) if fail_build else None
        self.fail_deploy = re.compile(fail_deploy) if fail_deploy else None
        self._starting: dict[str, tuple[ReplicaSpec, float]] = {}
        # Replicas past their start (READY or FAILED); they do not change any more.
        self._settled: dict[str, ReplicaState] = {}
        self._snapshot: list[ReplicaState] | None = None
        self.started_total = 0

    async def build(self, request: BuildRequest) -> BuildResult:
        await asyncio.sleep(self.build_delay)
        if self.fail_build and self.fail_build.search(request.chainlet_name):
            return BuildResult(
                ok=False,
                message="simulated build failure",
                log_lines=(f"building {request.chainlet_name}", "ERROR: simulated build failure"),
            )
        return BuildResult(ok=True, log_lines=(f"built {request.chainlet_name} (simulated)",))

    async def start_replica(self, spec: ReplicaSpec) -> None:
        self._starting[spec.replica_id] = (spec, time.monotonic())
        self._snapshot = None
        self.started_total += 1

    async def stop_replica(self, replica_id: str) -> None:
        if self._starting.pop(replica_id, None) or self._settled.pop(replica_id, None):
            self._snapshot = None

    def replicas(self) -> list[ReplicaState]:
        now = time.monotonic()
        for replica_id, (spec, started) in list(self._starting.items()):
            if now - started < self.ready_delay:
                continue
            del self._starting[replica_id]
            failed = bool(self.fail_deploy and self.fail_deploy.search(spec.chainlet_name))
            self._settled[replica_id] = _state(
                spec,
                ReplicaPhase.FAILED if failed else ReplicaPhase.READY,
                "simulated replica failure" if failed else None,
            )
            self._snapshot = None
        if self._snapshot is None:
            self._snapshot = [
                *self._settled.values(),
                *(_state(spec, ReplicaPhase.STARTING, None) for spec, _ in self._starting.values()),
            ]
        return self._snapshot

    async def close(self) -> None:
        self._starting.clear()
        self._settled.clear()
        self._snapshot = None


def _state(spec: ReplicaSpec, phase: ReplicaPhase, message: str | None) -> ReplicaState:
    return ReplicaState(
        replica_id=spec.replica_id,
        chainlet_id=spec.chainlet_id,
        deployment_id=spec.deployment_id,
        phase=phase,
        address=f"simulated://{spec.replica_id}",
        message=message,
    )
