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
        self._replicas: dict[str, tuple[ReplicaSpec, float]] = {}
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
        self._replicas[spec.replica_id] = (spec, time.monotonic())
        self.started_total += 1

    async def stop_replica(self, replica_id: str) -> None:
        self._replicas.pop(replica_id, None)

    def replicas(self) -> list[ReplicaState]:
        now = time.monotonic()
        out = []
        for spec, started in self._replicas.values():
            if now - started < self.ready_delay:
                phase = ReplicaPhase.STARTING
                message = None
            elif self.fail_deploy and self.fail_deploy.search(spec.chainlet_name):
                phase = ReplicaPhase.FAILED
                message = "simulated replica failure"
            else:
                phase = ReplicaPhase.READY
                message = None
            out.append(
                ReplicaState(
                    replica_id=spec.replica_id,
                    chainlet_id=spec.chainlet_id,
                    deployment_id=spec.deployment_id,
                    phase=phase,
                    address=f"simulated://{spec.replica_id}",
                    message=message,
                )
            )
        return out

    async def close(self) -> None:
        self._replicas.clear()
