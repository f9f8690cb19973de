"""The replica table's contract (runtime/replica_table.py), the same for every runtime: `replicas()`
is the same object while nothing changes, a replica starting, becoming ready and stopping each
make a new generation, and a waiter on `changed()` is woken by the change itself.

The runtimes run in this process, on real replicas: the local runtime forks a real chainlet, the
Ray runtime starts an actor on the test session's Ray cluster."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chainyard.runtime.base import (
    BuildRequest,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
    RuntimeBackend,
)
from chainyard.runtime.local import LocalRuntime
from chainyard.runtime.simulated import SimulatedRuntime
from tests.e2e.conftest import REPO

CHAIN = """
import truss_chains as chains


@chains.mark_entrypoint
class Hello(chains.ChainletBase):
    async def run_remote(self, name: str) -> str:
        return "hello " + name
"""
# Time for a real replica to start: the waits below end at the change, far sooner.
START_TIMEOUT = 180.0
# Rounds of the runtime's health checks a ready replica rides out without a new generation.
QUIET_SECONDS = 1.0


def _archive(folder: pathlib.Path) -> pathlib.Path:
    data = CHAIN.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("chain.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    path = folder / f"{digest}.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path


def _spec(artifact: pathlib.Path) -> ReplicaSpec:
    return ReplicaSpec(
        replica_id="replica-contract-1",
        chainlet_id="chainlet-contract",
        chainlet_name="Hello",
        deployment_id="deployment-contract",
        chain_id="chain-contract",
        instance_type={"id": "1x2", "millicpu_limit": 1000, "memory_limit_mib": 2048},
        compute={},
        artifact_path=artifact,
        entrypoint=True,
        dependencies=(),
        source_file="chain.py",
        entrypoint_name="Hello",
    )


Factory = Callable[[pathlib.Path], Any]


@pytest.fixture(
    params=[
        "simulated",
        pytest.param("local", marks=pytest.mark.slow),
        pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow]),
    ]
)
def make_runtime(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Factory]:
    if request.param == "simulated":
        yield lambda _data: SimulatedRuntime(build_delay=0.0, ready_delay=0.2)
    elif request.param == "local":
        yield lambda data: LocalRuntime(data, health_interval=0.1)
    else:
        # Ray reads its auth settings when it is imported: the Ray case runs in a process of its
        # own, with the cluster's environment (as the server would).
        cluster = request.getfixturevalue("ray_cluster")
        yield functools.partial(_RayInProcessOfItsOwn, cluster)


class _RayInProcessOfItsOwn:
    def __init__(self, cluster: Any, data: pathlib.Path) -> None:
        self.cluster = cluster
        self.data = data

    def run(self, artifact: pathlib.Path) -> None:
        code = (
            "import asyncio, pathlib, sys\n"
            "from chainyard.runtime.ray_backend import RayRuntime\n"
            "from tests.e2e.test_replica_table_contract import _contract\n"
            "runtime = RayRuntime(pathlib.Path(sys.argv[1]), address=sys.argv[2],"
            " health_interval=0.1)\n"
            "asyncio.run(_contract(runtime, pathlib.Path(sys.argv[3])))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(self.data), self.cluster.address, str(artifact)],
            env={**os.environ, **self.cluster.env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT * 2,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-4000:]


async def _until(
    runtime: RuntimeBackend, done: Callable[[tuple[ReplicaState, ...]], bool], what: str
) -> int:
    """Waits, generation by generation, until `done(replicas)`; the generation it held at."""
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            generation = runtime.generation
            if done(tuple(runtime.replicas())):
                return generation
            await runtime.changed(generation)
    raise AssertionError(what)  # pragma: no cover - the timeout raises first


def _phase(replicas: tuple[ReplicaState, ...]) -> ReplicaPhase | None:
    return replicas[0].phase if replicas else None


async def _contract(runtime: RuntimeBackend, artifact: pathlib.Path) -> None:
    spec = _spec(artifact)
    await runtime.start()
    try:
        build = await runtime.build(
            BuildRequest(spec.chainlet_id, spec.chainlet_name, spec.deployment_id, artifact, ())
        )
        assert build.ok, build
        empty = runtime.replicas()
        generation = runtime.generation
        assert runtime.replicas() is empty and runtime.generation == generation

        # Starting: a new generation, which wakes a waiter at once.
        waiter = asyncio.ensure_future(runtime.changed(generation))
        await runtime.start_replica(spec)
        generation = await asyncio.wait_for(waiter, START_TIMEOUT)
        assert [r.replica_id for r in runtime.replicas()] == [spec.replica_id]

        # Ready, by the runtime's own watching: waited for on changes only.
        generation = await _until(
            runtime, lambda rs: _phase(rs) == ReplicaPhase.READY, "the replica to be ready"
        )
        ready = runtime.replicas()
        assert ready[0].address, ready
        # Health checks that pass change nothing shown: the same snapshot, the same generation.
        await asyncio.sleep(QUIET_SECONDS)
        assert runtime.generation == generation and runtime.replicas() is ready

        # Stopping, then gone: each a new generation, each waking a waiter.
        waiter = asyncio.ensure_future(runtime.changed(generation))
        await runtime.stop_replica(spec.replica_id)
        assert await asyncio.wait_for(waiter, START_TIMEOUT) > generation
        await _until(runtime, lambda rs: not rs, "the replica to be gone")
    finally:
        await runtime.close()


def test_the_replica_table_contract_holds(make_runtime: Factory, tmp_path: pathlib.Path) -> None:
    runtime = make_runtime(tmp_path / "data")
    if isinstance(runtime, _RayInProcessOfItsOwn):
        runtime.run(_archive(tmp_path))
        return
    asyncio.run(_contract(runtime, _archive(tmp_path)))
