"""A deployment scaled to zero keeps what the runtime holds for it between replicas (the local
runtime's host process), even when a full scan runs while its last replica is still stopping;
deactivating it releases that. Seen as a flake of tests/e2e/test_release.py: a full scan no longer
sees a chainlet at zero, and took its stopping replica for one of a deployment that is gone."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from chainyard.reconciler.loop import Reconciler
from chainyard.runtime.base import ReplicaPhase, ReplicaState
from chainyard.runtime.simulated import SimulatedRuntime
from chainyard.services.context import Core
from chainyard.store.chains import ChainDeployment, Chainlet
from tests.support.server import hello_manifest


class SlowStops(SimulatedRuntime):
    """A stopped replica stays listed as STOPPING until `finish_stops`; releases are recorded."""

    def __init__(self) -> None:
        super().__init__(build_delay=0.0, ready_delay=0.0)
        self.stopping: dict[str, ReplicaState] = {}
        self.released: list[str] = []

    async def stop_replica(self, replica_id: str) -> None:
        for replica in super().replicas():
            if replica.replica_id == replica_id:
                self.stopping[replica_id] = dataclasses.replace(
                    replica, phase=ReplicaPhase.STOPPING
                )
        await super().stop_replica(replica_id)

    def _replica_states(self) -> list[ReplicaState]:
        return [*super()._replica_states(), *self.stopping.values()]

    def finish_stops(self) -> None:
        self.stopping.clear()
        self.replica_table.touch()

    async def release_deployment(self, deployment_id: str) -> None:
        self.released.append(deployment_id)


def _status(core: Core, deployment_id: str) -> str:
    with core.db.read() as session:
        status = session.scalar(
            select(ChainDeployment.status).where(ChainDeployment.id == deployment_id)
        )
    return str(status)


def _tick_until(reconciler: Reconciler, done: Callable[[], bool], what: str) -> None:
    async def run() -> None:
        for _ in range(100):
            await reconciler.tick()
            if done():
                return
            await asyncio.sleep(0.01)  # builds run as tasks
        raise AssertionError(f"never reached: {what}")

    asyncio.run(run())


def test_a_full_scan_while_the_last_replica_stops_keeps_the_host(make_api: Any) -> None:
    api = make_api(run_reconciler=False, run_autoscaler=False)
    # No environment: a deployment in none may be deactivated, which the end checks.
    deployed = api.deploy(hello_manifest(environment=None))
    chain_id, deployment_id = deployed["chain_id"], deployed["chain_deployment"]["id"]
    runtime = SlowStops()
    reconciler = Reconciler(api.core, runtime, interval=3600.0)
    _tick_until(reconciler, lambda: _status(api.core, deployment_id) == "ACTIVE", "ACTIVE")

    # What a promotion's SCALE_TO_ZERO clean-up does to the deployment it replaces.
    with api.core.db.write() as session:
        session.execute(
            update(Chainlet)
            .where(Chainlet.chain_deployment_id == deployment_id)
            .values(desired_replicas=0)
        )
    _tick_until(reconciler, lambda: _status(api.core, deployment_id) == "SCALED_TO_ZERO", "zero")
    assert runtime.stopping, "the replicas should still be stopping"
    reconciler._next_full_scan = 0.0  # the next tick is a full scan
    _tick_until(reconciler, lambda: True, "a full scan")
    runtime.finish_stops()
    _tick_until(reconciler, lambda: not runtime.replicas(), "no replica")
    _tick_until(reconciler, lambda: True, "one more tick")
    assert deployment_id not in runtime.released

    # Deactivated, the deployment runs nothing more: now its host goes.
    answer = api.post(f"/v1/chains/{chain_id}/deployments/{deployment_id}/deactivate")
    assert answer.status_code == 200, answer.text
    _tick_until(reconciler, lambda: deployment_id in runtime.released, "the release")
