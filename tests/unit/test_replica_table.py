"""The replica table (runtime/replica_table.py): one snapshot per generation, a new generation only
on a real change, waiters woken by the change itself; and the gateway and the cluster view that
build on it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from chainyard.cluster.membership import Membership
from chainyard.gateway.router import QueueFull, ReplicaRouter
from chainyard.runtime.base import ReplicaPhase, ReplicaSpec, ReplicaState
from chainyard.runtime.replica_table import ReplicaTable, TrackedRecord, TrackedRecords
from chainyard.runtime.simulated import SimulatedRuntime

# Plenty: a waiter that needed a timer to wake would still pass, so the tests below also check
# that nothing wakes before the change.
WAIT = 30.0


def state(replica_id: str, phase: ReplicaPhase = ReplicaPhase.READY, **kw: Any) -> ReplicaState:
    return ReplicaState(replica_id, "chainlet", "deployment", phase, **kw)


def spec(replica_id: str, chainlet_id: str = "chainlet") -> ReplicaSpec:
    return ReplicaSpec(
        replica_id=replica_id,
        chainlet_id=chainlet_id,
        chainlet_name="Hello",
        deployment_id="deployment",
        chain_id="chain",
        instance_type={},
        compute={},
        artifact_path=None,
        entrypoint=True,
        dependencies=(),
    )


async def still_waiting(task: asyncio.Future[Any], turns: int = 20) -> bool:
    """True when `task` is not done after the loop ran this many times (nothing wakes it)."""
    for _ in range(turns):
        await asyncio.sleep(0)
    return not task.done()


def test_publishing_equal_states_keeps_the_generation_and_the_snapshot() -> None:
    table = ReplicaTable()
    assert table.publish([state("a"), state("b")])
    first, generation = table.snapshot, table.generation
    assert not table.publish([state("a"), state("b")])
    assert table.snapshot is first and table.generation == generation
    assert table.publish([state("a"), state("b", ReplicaPhase.FAILED, message="gone")])
    assert table.generation == generation + 1
    # The replica that did not change is the very same object (reconciler/observed.py).
    assert table.snapshot[0] is first[0] and table.snapshot[1] is not first[1]


def test_a_credential_change_is_a_change() -> None:
    table = ReplicaTable()
    table.publish([state("a", address="http://x", credential="one")])
    generation = table.generation
    assert table.publish([state("a", address="http://x", credential="two")])
    assert table.generation == generation + 1


@dataclasses.dataclass
class _Record(TrackedRecord):
    replica_id: str
    phase: ReplicaPhase = ReplicaPhase.STARTING
    port: int | None = None
    pid: int | None = None


def _records() -> tuple[ReplicaTable, TrackedRecords[_Record]]:
    records: TrackedRecords[_Record]

    def compute() -> list[ReplicaState]:
        return [
            state(r.replica_id, r.phase, address=f"http://127.0.0.1:{r.port}" if r.port else None)
            for r in records.values()
        ]

    table = ReplicaTable(compute)
    records = TrackedRecords(table)
    return table, records


def test_tracked_records_make_a_generation_per_visible_change_only() -> None:
    table, records = _records()
    records["a"] = _Record("a")
    assert [s.phase for s in table.snapshot] == [ReplicaPhase.STARTING]
    generation, snapshot = table.generation, table.snapshot
    records["a"].pid = 1234  # not shown: no new generation
    records["a"].phase = ReplicaPhase.STARTING  # the same value
    assert table.generation == generation and table.snapshot is snapshot
    records["a"].port = 8000
    records["a"].phase = ReplicaPhase.READY
    assert table.generation == generation + 1
    assert table.snapshot[0].address == "http://127.0.0.1:8000"
    records.pop("a")
    assert table.snapshot == () and table.generation == generation + 2
    assert records.pop("missing", None) is None


def test_a_waiter_wakes_on_a_change_and_not_before() -> None:
    asyncio.run(_a_waiter_wakes_on_a_change_and_not_before())


async def _a_waiter_wakes_on_a_change_and_not_before() -> None:
    table, records = _records()
    records["a"] = _Record("a")
    generation = table.generation
    waiter = asyncio.ensure_future(table.changed(generation))
    assert await still_waiting(waiter)
    records["a"].pid = 1  # invisible
    assert await still_waiting(waiter)
    records["a"].phase = ReplicaPhase.READY
    # Woken by the rebuild the change scheduled: nobody reads the table meanwhile.
    assert await asyncio.wait_for(waiter, WAIT) == generation + 1


def test_the_simulated_runtime_keeps_the_contract() -> None:
    asyncio.run(_the_simulated_runtime_keeps_the_contract())


async def _the_simulated_runtime_keeps_the_contract() -> None:
    runtime = SimulatedRuntime(ready_delay=0.05)
    first = runtime.replicas()
    assert runtime.replicas() is first
    generation = runtime.generation
    waiter = asyncio.ensure_future(runtime.changed(generation))
    assert await still_waiting(waiter)
    await runtime.start_replica(spec("r1"))
    generation = await asyncio.wait_for(waiter, WAIT)
    assert [r.phase for r in runtime.replicas()] == [ReplicaPhase.STARTING]
    # Ready after its delay, by the runtime's timer: the waiter is woken without reading.
    generation = await asyncio.wait_for(runtime.changed(generation), WAIT)
    assert [r.phase for r in runtime.replica_table.snapshot] == [ReplicaPhase.READY]
    snapshot = runtime.replicas()
    assert runtime.replicas() is snapshot and runtime.generation == generation
    await runtime.stop_replica("r1")
    assert await asyncio.wait_for(runtime.changed(generation), WAIT) > generation
    assert runtime.replicas() == ()
    await runtime.close()


def test_a_request_waiting_for_a_replica_is_released_when_one_is_ready() -> None:
    asyncio.run(_a_request_waiting_for_a_replica_is_released_when_one_is_ready())


async def _a_request_waiting_for_a_replica_is_released_when_one_is_ready() -> None:
    runtime = SimulatedRuntime(ready_delay=0.05)
    router = ReplicaRouter(runtime)
    waiting = asyncio.ensure_future(router.wait_for_replica("chainlet", WAIT))
    assert await still_waiting(waiting)
    assert router.waiting["chainlet"] == 1
    await runtime.start_replica(spec("r1"))
    assert await asyncio.wait_for(waiting, WAIT) == ["simulated://r1"]
    assert router.waiting["chainlet"] == 0
    await runtime.close()


def test_waiting_for_a_replica_ends_empty_at_its_timeout() -> None:
    asyncio.run(_waiting_for_a_replica_ends_empty_at_its_timeout())


async def _waiting_for_a_replica_ends_empty_at_its_timeout() -> None:
    router = ReplicaRouter(SimulatedRuntime())
    assert await router.wait_for_replica("chainlet", 0.01) == []
    assert router.waiting["chainlet"] == 0


def test_a_queued_request_takes_the_slot_released_for_it() -> None:
    asyncio.run(_a_queued_request_takes_the_slot_released_for_it())


async def _a_queued_request_takes_the_slot_released_for_it() -> None:
    runtime = SimulatedRuntime(ready_delay=0.0)
    await runtime.start_replica(spec("r1"))
    router = ReplicaRouter(runtime, queue_limit=1)
    addresses = await router.wait_for_replica("chainlet", WAIT)
    first = await router.acquire("chainlet", addresses, 1)
    queued = asyncio.ensure_future(router.acquire("chainlet", addresses, 1))
    assert await still_waiting(queued)
    with pytest.raises(QueueFull):
        await router.acquire("chainlet", addresses, 1)
    router.release_slot("chainlet", first)
    assert await asyncio.wait_for(queued, WAIT) == first
    assert router.load[first] == 1 and router.waiting["chainlet"] == 0
    await runtime.close()


def test_a_queued_request_takes_a_replica_that_became_ready() -> None:
    asyncio.run(_a_queued_request_takes_a_replica_that_became_ready())


async def _a_queued_request_takes_a_replica_that_became_ready() -> None:
    runtime = SimulatedRuntime(ready_delay=0.0)
    await runtime.start_replica(spec("r1"))
    router = ReplicaRouter(runtime)
    addresses = await router.wait_for_replica("chainlet", WAIT)
    await router.acquire("chainlet", addresses, 1)
    queued = asyncio.ensure_future(router.acquire("chainlet", addresses, 1))
    assert await still_waiting(queued)
    await runtime.start_replica(spec("r2"))
    assert await asyncio.wait_for(queued, WAIT) == "simulated://r2"
    await runtime.close()


def _membership(runtime: SimulatedRuntime) -> Membership:
    async def nothing() -> None:
        return None

    return Membership(
        None,  # type: ignore[arg-type]  # no store: the roles are switched by hand below
        runtime,
        server_id="s1",
        local_demand=dict,
        on_gain=nothing,
        on_loss=nothing,
    )


def test_the_cluster_view_keeps_the_contract_across_sources_and_roles() -> None:
    asyncio.run(_the_cluster_view_keeps_the_contract_across_sources_and_roles())


async def _the_cluster_view_keeps_the_contract_across_sources_and_roles() -> None:
    runtime = SimulatedRuntime(ready_delay=0.0)
    membership = _membership(runtime)
    # A follower: the endpoints the leader published.
    membership._endpoints.publish([state("published", address="http://leader-side")])
    generation, view = membership.generation, membership.replicas()
    assert [r.replica_id for r in view] == ["published"]
    assert membership.replicas() is view and membership.generation == generation
    # The same endpoints read again: no new generation.
    membership._endpoints.publish([state("published", address="http://leader-side")])
    assert membership.generation == generation
    # Becoming the leader is a change, even though neither source changed.
    waiter = asyncio.ensure_future(membership.changed(generation))
    assert await still_waiting(waiter)
    await membership._gain()
    generation = await asyncio.wait_for(waiter, WAIT)
    assert membership.replicas() == ()
    # The runtime's changes wake a waiter on the view.
    waiter = asyncio.ensure_future(membership.changed(generation))
    assert await still_waiting(waiter)
    await runtime.start_replica(spec("own"))
    await asyncio.wait_for(waiter, WAIT)
    assert [r.replica_id for r in membership.replicas()] == ["own"]
    assert membership.replicas() is runtime.replicas()
    await runtime.close()
