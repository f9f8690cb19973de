"""The local runtime: each replica is a process on this machine.

Per (chain deployment, Python environment) one host process imports truss_chains and the chain once
(`chainyard.chains.host`) and forks a child per replica. This module starts hosts, sends them fork
commands, watches the children (health over HTTP, exit events from the host), and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import pathlib
import secrets
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from chainyard import archives, server_lock
from chainyard.domain import replica_log
from chainyard.interpreters import Interpreters
from chainyard.runtime import (
    gpus,
    health_verdicts,
    host_processes,
    python_envs,
    sandbox,
)
from chainyard.runtime.base import (
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
    RuntimeBackend,
)
from chainyard.runtime.local_builds import LocalBuilds
from chainyard.runtime.local_hosts import SPARE_DELAY, STOP_GRACE, LocalHosts, _Host
from chainyard.runtime.replica_table import TrackedRecord, TrackedRecords

log = logging.getLogger("chainyard.runtime.local")

HEALTH_INTERVAL = 1.0


@dataclasses.dataclass
class _Replica(TrackedRecord):
    spec: ReplicaSpec
    host_key: tuple[str, str]
    log_path: pathlib.Path
    run_file: pathlib.Path
    phase: ReplicaPhase = ReplicaPhase.STARTING
    pid: int | None = None
    port: int | None = None
    message: str | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    ready_at: float | None = None
    stopping: bool = False
    # The replica's own credential (replica_auth.py): sent to it in the fork command.
    credential: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))


class LocalRuntime(LocalHosts, LocalBuilds, RuntimeBackend):
    name = "local"

    def __init__(
        self,
        data_dir: pathlib.Path,
        *,
        health_interval: float = HEALTH_INTERVAL,
        interpreters: Interpreters | None = None,
        install_apt: bool = False,
        pass_env: Sequence[str] = (),
        sandbox_mode: str = "auto",
    ) -> None:
        self.data_dir = data_dir
        # Each deployment's replica host runs in a bubblewrap sandbox (runtime/sandbox.py) when
        # it works here ("auto"), always ("required": refuses to start otherwise) or never ("off").
        self.sandboxed = sandbox.decide(sandbox_mode)
        # Why not, for the operator (protections.banner).
        self.sandbox_problem = (
            None if self.sandboxed else sandbox.problem() or f"--sandbox {sandbox_mode}"
        )
        # The server's variables replicas get too; their environment is otherwise built from
        # scratch (runtime/replica_env.py).
        self.pass_env = tuple(pass_env)
        self.health_interval = health_interval
        self.interpreters = interpreters or Interpreters()
        # `chainyard serve --install-apt-packages`: apt_requirements missing on this host are
        # installed with apt-get instead of failing the build.
        self.install_apt = install_apt
        self._sources = data_dir / "sources"
        self._envs = data_dir / "envs"
        self._run = data_dir / "run"
        self._logs = data_dir / "logs"
        # (chainlet id, revision) -> interpreter
        self._pythons: dict[tuple[str, int], str] = {}
        self._hosts: dict[tuple[str, str], _Host] = {}
        # A development deployment's spare host per (deployment, interpreter and environment),
        # and the source each of its deployments was last started on (docs/development.md).
        self._spares: dict[tuple[str, str], _Host] = {}
        self._latest_source: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()
        # Kept in a TrackedRecords, so that the replica table (runtime/replica_table.py) sees
        # every change of what `replicas()` shows.
        self._replicas: TrackedRecords[_Replica] = TrackedRecords(self.replica_table)
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lock: server_lock.ServerLock | None = None
        self._cpu_cursor = 0
        self._log_offsets: dict[str, int] = {}
        # Lines of the runtime's own about replicas (health decisions), for drain_logs.
        self._notes: list[tuple[str, str, str]] = []
        # Called with (chainlet id, seconds from start_replica to the first passed health check).
        self.on_ready: Callable[[str, float], None] = lambda _chainlet, _seconds: None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        # Leftover replicas are reaped only under the data dir's lock (server_lock.py): `chainyard
        # serve` took it already (this shares it); a runtime started otherwise takes it here, and
        # fails rather than kill the replicas of a live server on this data dir.
        if self._lock is None:
            self._lock = server_lock.hold(self.data_dir)
        for folder in (self._sources, self._envs, self._run, self._logs):
            folder.mkdir(parents=True, exist_ok=True)
        self._kill_leftovers()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._watcher = asyncio.create_task(self._watch(), name="chainyard-local-health")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for task in list(self._background):
            task.cancel()
        # All at once: each host waits for its replicas to finish what they serve.
        hosts = [*self._hosts.values(), *self._spares.values()]
        await asyncio.gather(*(self._stop_host(host) for host in hosts))
        self._hosts.clear()
        self._spares.clear()
        self._replicas.clear()
        if self._session is not None:
            await self._session.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _kill_leftovers(self) -> None:
        """Replica hosts recorded by an earlier server that are still alive (it was killed): stop
        them, so that what runs matches what this server starts. A host's replicas die with it.

        The records are the server's own (`run/hosts/`, never visible to a replica): a pid written
        by chainlet code could name any process."""
        for record in (self._run / "hosts").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                pid = int(json.loads(record.read_text())["pid"])
                cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"chainyard.chains.host" in cmdline:
                    os.kill(pid, signal.SIGKILL)
            record.unlink(missing_ok=True)
        for leftover in self._run.iterdir():
            if leftover.name != "hosts":
                host_processes.remove(leftover)

    # -- replicas --------------------------------------------------------------------------

    async def start_replica(self, spec: ReplicaSpec) -> None:
        log_path = self._logs / spec.deployment_id / spec.chainlet_id / f"{spec.replica_id}.log"
        # Per deployment: the folder its sandbox may write, so it can name only its own ports.
        run_file = self._run / spec.deployment_id / f"{spec.replica_id}.json"
        problem = gpus.placement_problem(spec.instance_type)
        python = self._pythons.get((spec.chainlet_id, spec.revision))
        host_env = self._host_env(spec)
        replica = _Replica(spec, self._host_key(spec, python, host_env), log_path, run_file)
        self._replicas[spec.replica_id] = replica
        if problem is not None:
            self._fail(replica, problem)
            return
        if spec.artifact_path is None or spec.source_file is None:
            self._fail(replica, "the deployment has no source to run")
            return
        digest = spec.artifact_path.name.split(".")[0]
        source = self.source_of(spec.deployment_id, digest, development=spec.development)
        if not source.is_dir():
            try:
                await asyncio.to_thread(archives.extract, spec.artifact_path, source)
            except (archives.ArchiveError, OSError) as exc:
                reason = exc if isinstance(exc, archives.ArchiveError) else None
                self._fail(
                    replica,
                    f"cannot unpack the source: {reason or archives.reason_without_paths(exc)}",
                )
                return
        if python is None:
            # The server restarted since the build: the environment is cached, so this is quick.
            try:
                python, _, _ = await self._environment(
                    spec.deployment_id,
                    spec.chainlet_name,
                    spec.pip_requirements,
                    spec.image,
                    source,
                )
            except (python_envs.EnvBuildError, ValueError) as exc:
                self._fail(replica, f"cannot prepare the chainlet's environment: {exc}")
                return
            self._pythons[(spec.chainlet_id, spec.revision)] = python
            replica.host_key = self._host_key(spec, python, host_env)
        host = self._hosts.get(replica.host_key)
        if host is None or host.process.returncode is not None:
            host = await self._start_host(replica.host_key, python, source, spec, host_env)
        if spec.development:
            self._latest_source[spec.deployment_id] = digest
            # Not at once: its imports would take the CPU from the replica starting now.
            self._in_background(
                functools.partial(self._keep_spare, spec.deployment_id, python, host_env),
                delay=SPARE_DELAY,
            )
        command = self._fork_command(replica)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        run_file.parent.mkdir(parents=True, exist_ok=True)
        if host.failed is not None:
            self._fail(replica, host.failed)
        elif host.ready.is_set():
            await self._send(host, command)
        else:
            host.pending.append(command)

    async def stop_replica(self, replica_id: str) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        replica.stopping = True
        replica.phase = ReplicaPhase.STOPPING
        if replica.pid is None:
            self._forget(replica)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(replica.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(STOP_GRACE, self._kill_if_alive, replica.pid)

    async def release_deployment(self, deployment_id: str) -> None:
        for key, host in list(self._hosts.items()):
            if key[0] != deployment_id:
                continue
            if any(r.host_key == key and not r.stopping for r in self._replicas.values()):
                continue  # a replica still runs there (or starts): not released yet
            del self._hosts[key]
            await self._stop_host(host)
        if not any(key[0] == deployment_id for key in self._hosts):
            for key in [k for k in self._spares if k[0] == deployment_id]:
                await self._stop_host(self._spares.pop(key))
            self._latest_source.pop(deployment_id, None)
            host_processes.remove(self._run / deployment_id)

    def _replica_states(self) -> list[ReplicaState]:
        return [
            ReplicaState(
                replica_id=r.spec.replica_id,
                chainlet_id=r.spec.chainlet_id,
                deployment_id=r.spec.deployment_id,
                phase=r.phase,
                address=f"http://127.0.0.1:{r.port}" if r.port else None,
                message=r.message,
                credential=r.credential,
                revision=r.spec.revision,
            )
            for r in self._replicas.values()
        ]

    def drain_logs(self) -> list[tuple[str, str, str]]:
        """New lines of every replica's log since the last call: (chainlet id, replica id, line)."""
        out, self._notes = self._notes, []
        for replica in list(self._replicas.values()):
            out.extend(self._read_new_lines(replica))
        return out

    # -- internals -------------------------------------------------------------------------

    def _read_new_lines(self, replica: _Replica) -> list[tuple[str, str, str]]:
        key = str(replica.log_path)
        offset = self._log_offsets.get(key, 0)
        try:
            with open(replica.log_path, "rb") as f:
                f.seek(offset)
                data = f.read(1 << 20)
        except FileNotFoundError:
            return []
        complete = data.rfind(b"\n") + 1
        if complete == 0:
            return []
        self._log_offsets[key] = offset + complete
        lines = data[:complete].decode(errors="replace").splitlines()
        spec = replica.spec
        return [(spec.chainlet_id, spec.replica_id, line) for line in lines if line.strip()]

    def _fork_command(self, replica: _Replica) -> dict[str, Any]:
        spec = replica.spec
        return {
            "op": "fork",
            "replica_id": spec.replica_id,
            "chainlet": spec.chainlet_name,
            "service_urls": dict(spec.service_urls),
            "secrets": dict(spec.secrets),
            "secret_keys": list(spec.secret_keys),
            "environment": spec.environment,
            "chain_api_key": spec.chain_api_key,
            # On the host's stdin, never in argv or the environment (other processes read those).
            "replica_key": replica.credential,
            "predict_concurrency": spec.predict_concurrency,
            "log_path": str(replica.log_path),
            "run_file": str(replica.run_file),
            "data_dir": str(self._data_dir(spec.deployment_id, spec.chainlet_name)),
            "limits": self._limits(spec),
        }

    def _limits(self, spec: ReplicaSpec) -> dict[str, Any]:
        millicpu = spec.instance_type.get("millicpu_limit") or 1000
        wanted = max(1, math.ceil(millicpu / 1000))
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        notes = []
        cpus: list[int] = []
        if available:
            if wanted > len(available):
                notes.append(
                    f"instance type {spec.instance_type.get('id')} asks for {wanted} CPUs; this "
                    f"machine has {len(available)}: running oversubscribed"
                )
            for _ in range(min(wanted, len(available))):
                cpus.append(available[self._cpu_cursor % len(available)])
                self._cpu_cursor += 1
        return {
            "memory_limit_mib": spec.instance_type.get("memory_limit_mib"),
            "cpus": sorted(set(cpus)),
            "threads": wanted,
            "notes": notes,
        }

    def _on_exit(self, replica: _Replica, event: dict[str, Any]) -> None:
        replica.run_file.unlink(missing_ok=True)
        if replica.stopping:
            self._forget(replica)
            return
        if replica.phase == ReplicaPhase.FAILED:
            return  # failed already (a health verdict): that message says why it was stopped
        tail = host_processes.tail(replica.log_path)
        self._fail(replica, f"the replica exited with code {event.get('code')}{tail}")

    def _fail(self, replica: _Replica, message: str) -> None:
        replica.phase = ReplicaPhase.FAILED
        replica.message = message
        replica.port = None

    def _forget(self, replica: _Replica) -> None:
        self._replicas.pop(replica.spec.replica_id, None)
        replica.run_file.unlink(missing_ok=True)
        self._retire_if_superseded(replica.host_key)

    def _kill_if_alive(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)

    async def _watch(self) -> None:
        while True:
            try:
                await self._check_health()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("health check round failed")
            await asyncio.sleep(0.1)

    async def _check_health(self) -> None:
        now = time.monotonic()
        checks = []
        for replica in list(self._replicas.values()):
            if replica.phase in (ReplicaPhase.FAILED, ReplicaPhase.STOPPING) or replica.pid is None:
                continue
            if replica.port is None:
                replica.port = host_processes.port_of(replica.run_file)
                if replica.port is None:
                    continue
            due = replica.phase == ReplicaPhase.STARTING or (
                replica.ready_at is not None and now - replica.ready_at >= self.health_interval
            )
            if due:
                checks.append(self._probe(replica))
        if checks:
            await asyncio.gather(*checks)

    async def _probe(self, replica: _Replica) -> None:
        assert self._session is not None
        url = f"http://127.0.0.1:{replica.port}/v1/models/model"
        verdict = await health_verdicts.probe(self._session, url, replica.credential)
        if replica.phase in (ReplicaPhase.FAILED, ReplicaPhase.STOPPING):
            return
        if verdict is not None:
            self._judged(replica, verdict)
        elif replica.phase == ReplicaPhase.READY:
            if replica.pid is not None and not host_processes.running(replica.pid):
                return  # it died: the host's exit event says how, which is the better message
            # A ready replica that stops answering is replaced (the reconciler restarts it).
            self._fail(replica, "the replica stopped answering its health check")
            if replica.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.pid, signal.SIGKILL)

    def _judged(self, replica: _Replica, verdict: health_verdicts.Verdict) -> None:
        health_verdicts.apply(
            replica,
            verdict,
            on_ready=self.on_ready,
            note=lambda level, text: self._note(replica, level, text),
            restart=lambda reason: self._restart(replica, reason),
        )

    def _restart(self, replica: _Replica, reason: str) -> None:
        """Failed with the reason (the reconciler logs it and starts another) and stopped; the
        exit that follows keeps this message."""
        self._fail(replica, reason)
        if replica.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(replica.pid, signal.SIGTERM)
            asyncio.get_running_loop().call_later(STOP_GRACE, self._kill_if_alive, replica.pid)

    def _note(self, replica: _Replica, level: str, message: str) -> None:
        """A line of the runtime's own about a replica, in its logs."""
        line = replica_log.record_line(level, "chainyard.health", message)
        self._notes.append((replica.spec.chainlet_id, replica.spec.replica_id, line))
