"""A runtime without processes: builds take a delay, replicas become ready after a delay, and
chainlets whose names match a pattern fail. For control-plane tests and scale benchmarks.

Its replica table (runtime/replica_table.py) is marked dirty only on a real change (a start, a
stop, a replica settling), so it takes each rebuild as a new generation without comparing, and
settled replicas keep their state objects. A replica settles once its delay has passed: at the
first read after that, or at the latest when the timer set for the oldest starting replica
fires, so that waiters on `changed()` wake without anyone reading.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Iterable, Sequence

from chainyard.runtime.base import (
    BuildRequest,
    BuildResult,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
    RuntimeBackend,
)
from chainyard.runtime.replica_table import ReplicaTable


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
        # In order of start: the replicas due to settle come first.
        self._starting: dict[str, tuple[ReplicaSpec, float]] = {}
        # Replicas past their start (READY or FAILED); they do not change any more.
        self._settled: dict[str, ReplicaState] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self.started_total = 0

    @functools.cached_property
    def replica_table(self) -> ReplicaTable:
        return ReplicaTable(self._replica_states, compare=False)

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
        self.replica_table.touch()
        self.started_total += 1
        self._arm_timer()

    async def stop_replica(self, replica_id: str) -> None:
        if self._starting.pop(replica_id, None) or self._settled.pop(replica_id, None):
            self.replica_table.touch()

    def replicas(self) -> Sequence[ReplicaState]:
        self._settle()
        return super().replicas()

    @property
    def generation(self) -> int:
        self._settle()
        return super().generation

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._starting.clear()
        self._settled.clear()
        self.replica_table.touch()

    def _settle(self) -> None:
        now = time.monotonic()
        while self._starting:
            replica_id, (spec, started) = next(iter(self._starting.items()))
            if now - started < self.ready_delay:
                break  # the rest started later
            del self._starting[replica_id]
            failed = bool(self.fail_deploy and self.fail_deploy.search(spec.chainlet_name))
            self._settled[replica_id] = self._state(
                spec,
                ReplicaPhase.FAILED if failed else ReplicaPhase.READY,
                "simulated replica failure" if failed else None,
            )
            self.replica_table.touch()

    def _arm_timer(self) -> None:
        """A timer for the oldest starting replica, so that it settles without being read."""
        loop = asyncio.get_running_loop()
        # One set on a loop that has ended since (tests run several) never fires: set another.
        if (self._timer is not None and self._timer_loop is loop) or not self._starting:
            return
        _, started = next(iter(self._starting.values()))
        delay = max(0.0, started + self.ready_delay - time.monotonic())
        self._timer = loop.call_later(delay, self._on_timer)
        self._timer_loop = loop

    def _on_timer(self) -> None:
        self._timer = None
        self._settle()
        self.replica_table.refresh()
        # The next one (or this one, when the loop's clock fired a hair early).
        self._arm_timer()

    def _replica_states(self) -> Iterable[ReplicaState]:
        starting = (self._state(s, ReplicaPhase.STARTING, None) for s, _ in self._starting.values())
        return [*self._settled.values(), *starting]

    def _state(self, spec: ReplicaSpec, phase: ReplicaPhase, message: str | None) -> ReplicaState:
        return ReplicaState(
            replica_id=spec.replica_id,
            chainlet_id=spec.chainlet_id,
            deployment_id=spec.deployment_id,
            phase=phase,
            address=f"simulated://{spec.replica_id}",
            message=message,
            revision=spec.revision,
        )
