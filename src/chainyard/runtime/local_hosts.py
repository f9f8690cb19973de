"""The local runtime's replica hosts (chains/host.py): starting one for a deployment's source, a
development deployment's spare (docs/development.md), reading a host's events, stopping hosts,
and the sandbox each runs in. A part of `LocalRuntime` (runtime/local.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import pathlib
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from chainyard.runtime import host_processes, replica_env, sandbox
from chainyard.runtime.base import ReplicaSpec

log = logging.getLogger("chainyard.runtime.local")

STOP_GRACE = 5.0
# Seconds after a development deployment's replica starts before its next spare host does.
SPARE_DELAY = 0.5


class _Host:
    """One host process and the replicas it forked."""

    def __init__(self, key: tuple[str, str], process: asyncio.subprocess.Process) -> None:
        self.key = key
        self.process = process
        # A spare (chains/host.py `--spare`) until a host for new code takes it; warm once its
        # imports are done.
        self.spare = False
        self.warm = False
        self.ready = asyncio.Event()
        self.failed: str | None = None
        self.pending: list[dict[str, Any]] = []
        self.reader: asyncio.Task[None] | None = None


class LocalHosts:
    data_dir: pathlib.Path
    sandboxed: bool
    pass_env: tuple[str, ...]
    _envs: pathlib.Path
    _run: pathlib.Path
    _logs: pathlib.Path
    _hosts: dict[tuple[str, str], _Host]
    _spares: dict[tuple[str, str], _Host]
    _latest_source: dict[str, str]
    _background: set[asyncio.Task[None]]
    # The runtime's replicas (runtime/local.py `_Replica`), by id.
    _replicas: Any

    if TYPE_CHECKING:  # of LocalBuilds and LocalRuntime, which come later in the MRO

        def _dev_sources(self, deployment_id: str) -> pathlib.Path: ...
        def source_of(
            self, deployment_id: str, digest: str, *, development: bool
        ) -> pathlib.Path: ...
        def _fail(self, replica: Any, message: str) -> None: ...
        def _on_exit(self, replica: Any, event: dict[str, Any]) -> None: ...

    def _home(self, deployment_id: str) -> pathlib.Path:
        """HOME of a deployment's replicas: scratch space of their own (caches land there)."""
        home = self.data_dir / "scratch" / deployment_id
        home.mkdir(parents=True, exist_ok=True)
        return home

    def _host_env(self, spec: ReplicaSpec) -> dict[str, str]:
        """What a host's environment adds for the chainlet: its `env_variables` and its
        `external_package_dirs` on PYTHONPATH. Set on the host, before the chain is imported, as
        a container's environment is on Baseten."""
        added = {str(k): str(v) for k, v in (spec.image.get("env") or {}).items()}
        dirs = spec.image.get("package_dirs") or []
        if dirs and spec.artifact_path is not None:
            digest = spec.artifact_path.name.split(".")[0]
            source = self.source_of(spec.deployment_id, digest, development=spec.development)
            paths = [str(source / d) for d in dirs]
            existing = added.get("PYTHONPATH")
            added["PYTHONPATH"] = os.pathsep.join(paths + ([existing] if existing else []))
        return added

    @staticmethod
    def _host_key(
        spec: ReplicaSpec, python: str | None, host_env: dict[str, str]
    ) -> tuple[str, str]:
        # Chainlets share a host only when their interpreter, environment variables and source
        # agree (a patch limited to some chainlets leaves the others on the older source).
        digest = spec.artifact_path.name.split(".")[0] if spec.artifact_path else ""
        return (spec.deployment_id, _spare_kind(python, host_env) + "@" + digest)

    async def _start_host(
        self,
        key: tuple[str, str],
        python: str,
        source: pathlib.Path,
        spec: ReplicaSpec,
        host_env: dict[str, str],
    ) -> _Host:
        assert spec.source_file is not None
        load = [str(source), spec.source_file] + (
            [spec.entrypoint_name] if spec.entrypoint_name else []
        )
        spare = self._spares.pop((key[0], _spare_kind(python, host_env)), None)
        if spare is not None and spare.process.returncode is None and spare.failed is None:
            # Everything but the chain is imported already: only the chain's own import is left.
            spare.key = key
            spare.spare = False
            self._hosts[key] = spare
            command = {"op": "load", "source_dir": load[0], "chain_file": load[1]}
            if spec.entrypoint_name:
                command["entrypoint"] = spec.entrypoint_name
            await self._send(spare, command)
            return spare
        if spare is not None:
            await self._stop_host(spare)
        workdir = self._dev_sources(key[0]) if spec.development else source
        return await self._spawn_host(key, python, load, workdir, host_env)

    async def _keep_spare(self, deployment_id: str, python: str, host_env: dict[str, str]) -> None:
        """A development deployment keeps one spare host per interpreter and environment: the
        next patch's host (docs/development.md)."""
        if not any(key[0] == deployment_id for key in self._hosts):
            return  # released meanwhile
        kind = (deployment_id, _spare_kind(python, host_env))
        spare = self._spares.get(kind)
        if spare is not None and spare.process.returncode is None and spare.failed is None:
            return
        workdir = self._dev_sources(deployment_id)
        workdir.mkdir(parents=True, exist_ok=True)
        host = await self._spawn_host(kind, python, ["--spare"], workdir, host_env, spare=True)
        self._spares[kind] = host

    async def _spawn_host(
        self,
        key: tuple[str, str],
        python: str,
        args: list[str],
        workdir: pathlib.Path,
        host_env: dict[str, str],
        *,
        spare: bool = False,
    ) -> _Host:
        host_log = self._logs / key[0] / "host.log"
        host_log.parent.mkdir(parents=True, exist_ok=True)
        argv = [python, "-m", "chainyard.chains.host", *args]
        if self.sandboxed:
            argv = sandbox.command(argv, self._layout(key[0], python, workdir))
        stderr = open(host_log, "ab")  # noqa: SIM115 - handed to the child process
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=str(workdir),
                env=replica_env.replica_env(
                    home=self._home(key[0]), pass_through=self.pass_env, chainlet_env=host_env
                ),
            )
        finally:
            stderr.close()
        host = _Host(key, process)
        host.spare = spare
        if not spare:
            self._hosts[key] = host
        record = self._run / "hosts" / f"{process.pid}.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"pid": process.pid, "deployment": key[0]}))
        host.reader = asyncio.create_task(self._read_host(host, host_log))
        return host

    async def _read_host(self, host: _Host, host_log: pathlib.Path) -> None:
        assert host.process.stdout is not None
        try:
            async for raw in host.process.stdout:
                await self._on_host_event(host, raw)
        except (ValueError, OSError) as exc:
            # Lines past the reader's limit: the host (which runs chainlet code) is not speaking
            # the protocol; it is stopped, not believed.
            host.failed = f"the replica host broke its protocol ({exc})"
            with contextlib.suppress(ProcessLookupError):
                host.process.kill()
        await host.process.wait()
        (self._run / "hosts" / f"{host.process.pid}.json").unlink(missing_ok=True)
        if host.failed is None:
            tail = host_processes.tail(host_log)
            host.failed = f"the replica host exited ({host.process.returncode}){tail}"
        self._fail_pending(host)
        for replica in list(self._replicas.values()):
            if replica.host_key == host.key and replica.pid is not None and not replica.stopping:
                self._fail(replica, host.failed)
        if self._hosts.get(host.key) is host:
            del self._hosts[host.key]
        if self._spares.get(host.key) is host:
            del self._spares[host.key]

    async def _on_host_event(self, host: _Host, raw: bytes) -> None:
        """One event line of a host. The host runs the chain's code, so an event is believed
        only about the host's own replicas, and a pid only once found among its descendants."""
        try:
            event = json.loads(raw)
            kind = event.get("event")
        except (ValueError, AttributeError):
            return
        if kind == "warm":
            host.warm = True
            return
        if kind == "ready":
            host.ready.set()
            for command in host.pending:
                await self._send(host, command)
            host.pending.clear()
            return
        if kind == "failed":
            host.failed = f"the chain failed to load: {str(event.get('message'))[:2000]}"
            self._fail_pending(host)
            return
        replica = self._replicas.get(str(event.get("replica_id")))
        if replica is None or replica.host_key != host.key:
            return
        if kind == "forked":
            # In a sandbox the host reports the pid of its own PID namespace.
            replica.pid = host_processes.descendant_pid(host.process.pid, event.get("pid"))
            if replica.pid is None:
                self._fail(replica, "the replica host reported a replica it did not start")
            elif replica.stopping:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.pid, signal.SIGTERM)
        elif kind == "exited":
            self._on_exit(replica, event)

    def _layout(self, deployment_id: str, python: str, source: pathlib.Path) -> sandbox.Layout:
        """What a deployment's sandbox sees of the data dir: its own parts only. `source` is the
        chain's source, or for a development deployment the folder of all its sources (its
        spare host loads whichever a patch brings)."""
        read_only = [source, sandbox.interpreter_root(python)]
        env_dir = pathlib.Path(python).parents[1]
        if env_dir.is_relative_to(self._envs):
            read_only.append(env_dir)
        writable = [
            self._home(deployment_id),
            self._logs / deployment_id,
            self._run / deployment_id,
            self.data_dir / "chainlet-data" / deployment_id,
        ]
        return sandbox.Layout(
            data_dir=self.data_dir,
            read_only=tuple(read_only),
            writable=tuple(writable),
            workdir=source,
        )

    def _fail_pending(self, host: _Host) -> None:
        for command in host.pending:
            replica = self._replicas.get(command["replica_id"])
            if replica is not None:
                self._fail(replica, host.failed or "the replica host failed")
        host.pending.clear()

    def _retire_if_superseded(self, key: tuple[str, str]) -> None:
        """A development deployment's host of older source goes once its last replica has: the
        deployment will not start replicas on that source again unless a patch fails, and
        then the host is started anew."""
        latest = self._latest_source.get(key[0])
        host = self._hosts.get(key)
        if host is None or latest is None or key[1].endswith("@" + latest):
            return
        if any(r.host_key == key for r in self._replicas.values()):
            return
        del self._hosts[key]
        self._in_background(functools.partial(self._stop_host, host))

    def _in_background(
        self, work: Callable[[], Coroutine[Any, Any, None]], *, delay: float = 0.0
    ) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            try:
                await work()
            except Exception:
                log.exception("background work of the local runtime failed")

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send(self, host: _Host, command: dict[str, Any]) -> None:
        assert host.process.stdin is not None
        host.process.stdin.write((json.dumps(command) + "\n").encode())
        await host.process.stdin.drain()

    async def _stop_host(self, host: _Host) -> None:
        if host.process.stdin is not None and not host.process.stdin.is_closing():
            host.process.stdin.close()  # the host stops its children and exits
        try:
            await asyncio.wait_for(host.process.wait(), timeout=STOP_GRACE + 2)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                host.process.kill()
            await host.process.wait()
        if host.reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(host.reader, timeout=2)


def _spare_kind(python: str | None, host_env: dict[str, str]) -> str:
    """What a host is started with besides the chain: interpreter and environment variables."""
    return (python or "") + (json.dumps(host_env, sort_keys=True) if host_env else "")
