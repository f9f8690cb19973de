"""A development deployment's replicas restart on new code from a spare host (docs/development.md):
the local runtime keeps one host per development deployment that imported everything but the
chain, and a replica of a newer revision starts from it. The old revision's replica keeps serving
meanwhile; a broken revision fails alone.

The runtime runs in this process, on real replica hosts and replicas."""

from __future__ import annotations

import asyncio
import hashlib
import io
import pathlib
import tarfile
import time
from collections.abc import Callable

import httpx
import pytest

from chainyard import replica_auth
from chainyard.runtime import host_processes
from chainyard.runtime.base import BuildRequest, ReplicaPhase, ReplicaSpec, ReplicaState
from chainyard.runtime.local import LocalRuntime

pytestmark = pytest.mark.slow

CHAIN = """
import truss_chains as chains


@chains.mark_entrypoint
class Hello(chains.ChainletBase):
    async def run_remote(self, name: str) -> str:
        return "{greeting} " + name
"""
START_TIMEOUT = 180.0
DEPLOYMENT = "deployment-dev"


def _archive(folder: pathlib.Path, text: str) -> pathlib.Path:
    data = text.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("chain.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    path = folder / f"{digest}.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path


def _spec(replica_id: str, artifact: pathlib.Path, revision: int) -> ReplicaSpec:
    return ReplicaSpec(
        replica_id=replica_id,
        chainlet_id="chainlet-dev",
        chainlet_name="Hello",
        deployment_id=DEPLOYMENT,
        chain_id="chain-dev",
        instance_type={"id": "1x2", "millicpu_limit": 1000, "memory_limit_mib": 2048},
        compute={},
        artifact_path=artifact,
        entrypoint=True,
        dependencies=(),
        source_file="chain.py",
        entrypoint_name="Hello",
        revision=revision,
        development=True,
    )


async def _until(runtime: LocalRuntime, done: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(START_TIMEOUT):
        while not done():
            await runtime.changed(runtime.generation)
    assert done(), what


def _state(runtime: LocalRuntime, replica_id: str) -> ReplicaState | None:
    return next((r for r in runtime.replicas() if r.replica_id == replica_id), None)


def _phase(runtime: LocalRuntime, replica_id: str) -> ReplicaPhase | None:
    state = _state(runtime, replica_id)
    return state.phase if state else None


async def _call(runtime: LocalRuntime, replica_id: str) -> str:
    state = _state(runtime, replica_id)
    assert state is not None and state.address, state
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{state.address}/v1/models/model:predict",
            json={"name": "dev"},
            headers=replica_auth.headers(state.credential),
        )
    assert answer.status_code == 200, answer.text
    result: str = answer.json()
    return result


async def _start(runtime: LocalRuntime, spec: ReplicaSpec) -> float:
    assert spec.artifact_path is not None
    built = await runtime.build(
        BuildRequest(
            spec.chainlet_id,
            spec.chainlet_name,
            DEPLOYMENT,
            spec.artifact_path,
            (),
            revision=spec.revision,
            development=True,
        )
    )
    assert built.ok, built
    started = time.perf_counter()
    await runtime.start_replica(spec)
    await _until(
        runtime,
        lambda: _phase(runtime, spec.replica_id) in (ReplicaPhase.READY, ReplicaPhase.FAILED),
        f"{spec.replica_id} to start",
    )
    return time.perf_counter() - started


async def _spare_warm(runtime: LocalRuntime) -> int:
    """The pid of the deployment's spare host, once its imports are done."""
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            spares = [h for k, h in runtime._spares.items() if k[0] == DEPLOYMENT]
            if spares and spares[0].warm:
                return spares[0].process.pid
            await asyncio.sleep(0.05)


async def _scenario(data: pathlib.Path, artifacts: pathlib.Path) -> None:
    runtime = LocalRuntime(data, health_interval=0.1)
    await runtime.start()
    try:
        first = _spec("r0", _archive(artifacts, CHAIN.format(greeting="hello")), 0)
        await _start(runtime, first)
        assert _phase(runtime, "r0") == ReplicaPhase.READY
        assert await _call(runtime, "r0") == "hello dev"
        spare_pid = await _spare_warm(runtime)

        # A new revision starts from the spare, beside the old replica, which keeps serving.
        second = _spec("r1", _archive(artifacts, CHAIN.format(greeting="bye")), 1)
        seconds = await _start(runtime, second)
        assert _phase(runtime, "r1") == ReplicaPhase.READY, _state(runtime, "r1")
        print(f"a replica on new code was ready in {seconds:.3f} s from the spare")
        assert await _call(runtime, "r1") == "bye dev"
        assert await _call(runtime, "r0") == "hello dev"
        hosts = {k: h.process.pid for k, h in runtime._hosts.items() if k[0] == DEPLOYMENT}
        assert spare_pid in hosts.values(), "the new revision's host is the spare"
        old_host = next(pid for pid in hosts.values() if pid != spare_pid)
        # The next spare, for the next patch.
        assert await _spare_warm(runtime) not in (spare_pid, old_host)

        # The old replica goes, and its host with it: nothing runs the old source any more.
        await runtime.stop_replica("r0")
        await _until(runtime, lambda: _state(runtime, "r0") is None, "r0 to be gone")
        async with asyncio.timeout(30):
            while host_processes.running(old_host):
                await asyncio.sleep(0.05)

        # A broken revision fails alone: the replica on the last good code keeps serving.
        broken = _spec("r2", _archive(artifacts, CHAIN.format(greeting="x") + "\ndef (:\n"), 2)
        await _start(runtime, broken)
        failed = _state(runtime, "r2")
        assert failed is not None and failed.phase == ReplicaPhase.FAILED
        assert "SyntaxError" in (failed.message or ""), failed.message
        assert await _call(runtime, "r1") == "bye dev"
    finally:
        await runtime.close()


def test_a_new_revision_starts_from_the_spare_host(tmp_path: pathlib.Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    asyncio.run(_scenario(tmp_path / "data", artifacts))
