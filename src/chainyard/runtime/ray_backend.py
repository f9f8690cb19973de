"""The Ray runtime: each replica is a Ray actor, placed by Ray on a node that has the instance
type's resources.

The control plane (reconciler, autoscaler, promotion, gateway) is the same as on the local
runtime; Ray only decides where processes run. A replica asks Ray for the instance type's CPUs
(millicpu / 1000), memory, GPUs (`num_gpus`) and `accelerator_type:<GPU>`, so a GPU instance type
lands only on a node with that GPU. The chain's source archive and the chainlet's pip requirements
travel in the actor's runtime_env. On its node the actor starts the same replica host as the local
runtime (see `ray_replica`); the gateway reaches the replica at the node's address.

Work that no node can take waits `unschedulable_timeout` seconds, then the replica fails with the
reason; replicas on a node that dies fail and the reconciler starts new ones wherever Ray finds
room. See docs/ray.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import pathlib
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from chainyard.domain import replica_log
from chainyard.domain.addresses import without_addresses
from chainyard.interpreters import Interpreters
from chainyard.runtime import health_verdicts, ray_compat, ray_connect, ray_messages
from chainyard.runtime.base import (
    BuildRequest,
    BuildResult,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
    RuntimeBackend,
)
from chainyard.runtime.ray_resources import placement_problem, ray_requirements, replica_resources
from chainyard.runtime.replica_table import TrackedRecord, TrackedRecords

log = logging.getLogger("chainyard.runtime.ray")

DEFAULT_UNSCHEDULABLE_TIMEOUT = 120.0
HEALTH_INTERVAL = 1.0
STOP_GRACE = 5.0
# How often the cluster's nodes are read (placement checks, dead nodes).
NODES_INTERVAL = 2.0
# An actor call that takes longer than this is treated as no answer (the HTTP probe decides).
POLL_TIMEOUT = 5.0
# How long a replica that stopped answering may take to report its exit before it is failed
# as unresponsive.
EXIT_GRACE = 3.0
NAMESPACE = "chainyard"


@dataclasses.dataclass
class _Replica(TrackedRecord):
    spec: ReplicaSpec
    wanted: dict[str, float]
    phase: ReplicaPhase = ReplicaPhase.STARTING
    message: str | None = None
    actor: Any = None
    node_id: str | None = None
    ip: str | None = None
    port: int | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    ready_at: float | None = None
    infeasible_since: float | None = None
    said_waiting: bool = False
    stopping: bool = False
    launch: asyncio.Task[None] | None = None
    # The replica's own credential (replica_auth.py): sent in the actor's arguments.
    credential: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))


class RayRuntime(RuntimeBackend):
    name = "ray"
    # No sandbox: every actor of a cluster can reach the cluster (docs/ray.md).
    sandbox_problem = "the Ray runtime: a Ray cluster is one trust domain"

    def __init__(
        self,
        data_dir: pathlib.Path,
        *,
        address: str | None = None,
        unschedulable_timeout: float = DEFAULT_UNSCHEDULABLE_TIMEOUT,
        data_root: str | None = None,
        health_interval: float = HEALTH_INTERVAL,
        pass_env: Sequence[str] = (),
        connect_timeout: float = ray_connect.DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.data_dir = data_dir
        self.connect_timeout = connect_timeout
        # The variables replicas get from their node's environment; the rest is built from
        # scratch (runtime/replica_env.py).
        self.pass_env = tuple(pass_env)
        # None starts a Ray of our own on this machine ("local"); "auto" is Ray's discovery.
        self.address = address or "local"
        self.unschedulable_timeout = unschedulable_timeout
        # Where chainlets' data dirs live on each node (None: the node's temp dir).
        self.data_root = data_root
        self.health_interval = health_interval
        self._ray: Any = None
        self._connection: ray_connect.RayConnection | None = None
        self._actor_cls: Any = None
        self._env_task: Any = None
        self._apt_task: Any = None
        # Kept in a TrackedRecords, so that the replica table (runtime/replica_table.py) sees
        # every change of what `replicas()` shows.
        self._replicas: TrackedRecords[_Replica] = TrackedRecords(self.replica_table)
        self._stops: set[asyncio.Task[None]] = set()
        self._lines: list[tuple[str, str, str]] = []
        self._nodes: list[dict[str, float]] = []
        self._dead_nodes: set[str] = set()
        self._nodes_at = -math.inf
        # Chainlets whose replica already waited out the timeout: while still nothing fits,
        # their next replicas fail at once instead of waiting again.
        self._gave_up: set[str] = set()
        self._shipping: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.on_ready: Callable[[str, float], None] = lambda _chainlet, _seconds: None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        import ray

        from chainyard.runtime.ray_replica import ChainletReplica, apt_missing, environment_ready

        options: dict[str, Any] = {}
        if self.address == "local":
            # A Ray of our own serves this server only: no dashboard (and no port to collide).
            options["include_dashboard"] = False
        log.info("connecting to Ray at %s", self.address)
        # Off the event loop and bounded: see ray_connect.
        connection = ray_connect.RayConnection(
            ray,
            self.address,
            namespace=NAMESPACE,
            log_to_driver=False,
            ignore_reinit_error=True,
            **options,
        )
        await connection.open(self.connect_timeout)
        # Only once connected: close() disconnects what start() connected.
        self._connection = connection
        self._ray = ray
        self._actor_cls = ray.remote(ChainletReplica)
        self._env_task = ray.remote(environment_ready)
        self._apt_task = ray.remote(apt_missing)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        await self._refresh_nodes()
        log.info("connected to Ray at %s: %d alive nodes", self.address, len(self._nodes))
        self._watcher = asyncio.create_task(self._watch(), name="chainyard-ray-health")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for replica in list(self._replicas.values()):
            await self.stop_replica(replica.spec.replica_id)
        if self._stops:
            await asyncio.gather(*self._stops, return_exceptions=True)
        self._replicas.clear()
        if self._session is not None:
            await self._session.close()
        if self._connection is not None:
            # Our actors belong to this driver: disconnecting ends any that are left, and a
            # Ray started by us ("local") stops with it.
            await self._connection.close()
            self._connection = None

    # -- builds ----------------------------------------------------------------------------

    async def build(self, request: BuildRequest) -> BuildResult:
        if request.artifact_path is None:
            return BuildResult(ok=False, message="the deployment has no source archive to run")
        try:
            uri, uploaded = await self._ship(request.artifact_path)
        except Exception as exc:
            message = without_addresses(f"cannot ship the source to Ray: {exc}")
            return BuildResult(ok=False, message=message)
        lines = [f"source {'shipped to' if uploaded else 'already on'} the Ray cluster as {uri}"]
        image = request.image
        warnings = []
        if "base_image" in image:
            choice = Interpreters(runtime="ray").choose(
                image.get("python_version"),
                f"chainlet '{request.chainlet_name}': DockerImage.base_image {image['base_image']}",
            )
            if choice.refusal:
                return BuildResult(ok=False, message=choice.refusal, log_lines=tuple(lines))
            if choice.warning:
                warnings.append(choice.warning)
        packages = list(image.get("apt", []))
        if packages:
            # Checked on one node now; each replica checks its own node again when it starts.
            missing = await self._apt_task.options(num_cpus=0).remote(packages)
            if missing:
                message = (
                    f"apt packages not installed on the Ray nodes: {', '.join(missing)}; put "
                    "them in the nodes' image"
                )
                return BuildResult(ok=False, message=message, log_lines=tuple(lines))
            lines.append(f"apt packages installed on the Ray node: {', '.join(packages)}")
        requirements = ray_requirements(request.pip_requirements, image)
        local = [r for r in requirements if r.startswith((".", "/", "-e", "file:"))]
        if local:
            message = (
                "local paths in requirements are not supported on Ray (pip runs on each node, "
                f"away from the source): {', '.join(local)}"
            )
            return BuildResult(ok=False, message=message, log_lines=tuple(lines))
        if not requirements:
            return BuildResult(ok=True, log_lines=tuple(lines), warnings=tuple(warnings))
        # Ray builds a runtime_env's virtualenv on each node on first use; building it once now
        # turns a pip failure into a build failure with pip's message, and warms that node.
        lines.append(
            "building the chainlet's environment on Ray: pip install " + " ".join(requirements)
        )
        try:
            await self._env_task.options(
                num_cpus=0, runtime_env=self._runtime_env(uri, requirements)
            ).remote()
        except Exception as exc:
            # Ray's errors name its nodes by address; the build log reaches the workspace.
            text = without_addresses(str(exc))
            detail = [ln for ln in text.splitlines() if ln.strip()][-30:]
            message = (
                f"pip could not install the requirements on Ray: {ray_messages.env_error(text)}"
            )
            return BuildResult(ok=False, message=message, log_lines=tuple(lines + detail))
        lines.append("environment ready")
        return BuildResult(ok=True, log_lines=tuple(lines), warnings=tuple(warnings))

    async def _ship(self, archive: pathlib.Path) -> tuple[str, bool]:
        # Every chainlet of a deployment starts at once; one upload per archive is enough.
        lock = self._shipping.setdefault(archive.name, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(ray_compat.ship_source, archive)

    @staticmethod
    def _runtime_env(uri: str, requirements: list[str]) -> dict[str, Any]:
        env: dict[str, Any] = {"working_dir": uri}
        if requirements:
            env["pip"] = {"packages": requirements, "pip_check": False}
        return env

    # -- replicas --------------------------------------------------------------------------

    async def start_replica(self, spec: ReplicaSpec) -> None:
        replica = _Replica(spec, replica_resources(spec.instance_type))
        self._replicas[spec.replica_id] = replica
        if spec.artifact_path is None or spec.source_file is None:
            self._fail(replica, "the deployment has no source to run")
            return
        replica.launch = asyncio.create_task(self._launch(replica))

    async def stop_replica(self, replica_id: str) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None or replica.stopping:
            return
        graceful = replica.phase == ReplicaPhase.READY
        replica.stopping = True
        replica.phase = ReplicaPhase.STOPPING
        if replica.launch is not None and not replica.launch.done():
            replica.launch.cancel()
        if replica.actor is None:
            self._replicas.pop(replica_id, None)
            return
        task = asyncio.create_task(self._stop(replica, graceful=graceful))
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    def _replica_states(self) -> list[ReplicaState]:
        return [
            ReplicaState(
                replica_id=r.spec.replica_id,
                chainlet_id=r.spec.chainlet_id,
                deployment_id=r.spec.deployment_id,
                phase=r.phase,
                address=ray_messages.address(r.ip, r.port) if r.ip and r.port else None,
                message=r.message,
                credential=r.credential,
                revision=r.spec.revision,
            )
            for r in self._replicas.values()
        ]

    def drain_logs(self) -> list[tuple[str, str, str]]:
        lines, self._lines = self._lines, []
        return lines

    # -- starting --------------------------------------------------------------------------

    def _say(self, replica: _Replica, line: str) -> None:
        self._lines.append((replica.spec.chainlet_id, replica.spec.replica_id, line))

    def _command(self, spec: ReplicaSpec, credential: str) -> dict[str, Any]:
        millicpu = spec.instance_type.get("millicpu_limit") or 1000
        gpus = int(spec.instance_type.get("gpu_count") or 0)
        return {
            "replica_id": spec.replica_id,
            "chainlet": spec.chainlet_name,
            "deployment_id": spec.deployment_id,
            "source_file": spec.source_file,
            "entrypoint_name": spec.entrypoint_name,
            "service_urls": dict(spec.service_urls),
            "secrets": dict(spec.secrets),
            "secret_keys": list(spec.secret_keys),
            "environment": spec.environment,
            "chain_api_key": spec.chain_api_key,
            # In the actor's arguments: the worker hands it to the host on its stdin.
            "replica_key": credential,
            "predict_concurrency": spec.predict_concurrency,
            "data_root": self.data_root,
            "image": dict(spec.image),
            # The operator's named variables, with the server's values (as on the local
            # runtime): the nodes' own environments may lack them.
            "pass_env": {n: os.environ[n] for n in self.pass_env if n in os.environ},
            "limits": {
                # CUDA reserves address space far beyond memory use: no address-space cap on
                # GPU replicas (Ray's memory monitor still watches the node).
                "memory_limit_mib": None if gpus else spec.instance_type.get("memory_limit_mib"),
                # Ray does not pin CPUs; thread pools follow the instance type's vCPUs.
                "cpus": [],
                "threads": max(1, math.ceil(millicpu / 1000)),
                "notes": [],
            },
        }

    def _actor_options(self, replica: _Replica, uri: str) -> dict[str, Any]:
        wanted = replica.wanted
        options: dict[str, Any] = {
            "num_cpus": wanted["CPU"],
            "num_gpus": wanted.get("GPU", 0),
            "max_restarts": 0,
            "max_task_retries": 0,
            "runtime_env": self._runtime_env(
                uri, ray_requirements(replica.spec.pip_requirements, replica.spec.image)
            ),
        }
        if "memory" in wanted:
            options["memory"] = int(wanted["memory"])
        custom = {k: v for k, v in wanted.items() if k not in ("CPU", "GPU", "memory")}
        if custom:
            options["resources"] = custom
        return options

    async def _launch(self, replica: _Replica) -> None:
        spec = replica.spec
        assert spec.artifact_path is not None
        try:
            uri, _ = await self._ship(spec.artifact_path)
            options = self._actor_options(replica, uri)
            # Not in a thread: creating an actor only submits it, and a stop that cancels this
            # task between awaits must never leave an actor behind that nobody knows of.
            replica.actor = self._actor_cls.options(**options).remote()
            info = await self._placed(
                replica, replica.actor.start.remote(self._command(spec, replica.credential))
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if replica.phase == ReplicaPhase.STARTING:
                self._fail(replica, self._start_error(exc))
            return
        if info is None or replica.phase != ReplicaPhase.STARTING:
            return
        self._gave_up.discard(spec.chainlet_id)
        replica.node_id, replica.ip = str(info["node_id"]), str(info["ip"])
        replica.message = None
        gpus = f", GPUs {info['gpus']}" if info.get("gpus") else ""
        # The node's id, not its address: the replica's logs reach the workspace.
        self._say(replica, f"placed on Ray node {replica.node_id[:12]}{gpus}")

    def _start_error(self, exc: BaseException) -> str:
        text = str(exc)
        if "runtime env" in text.lower() or "runtime_env" in text.lower():
            return f"Ray could not set up the replica's environment: {ray_messages.env_error(text)}"
        if self._ray is not None and isinstance(exc, self._ray.exceptions.RayActorError):
            return ray_messages.actor_error(exc)
        return f"the replica could not start on Ray: {text[:600]}"

    async def _placed(self, replica: _Replica, ref: Any) -> dict[str, Any] | None:
        """Waits for Ray to place the actor; while no node fits, says so, and gives up after the
        timeout (the replica fails, its actor is withdrawn)."""
        answer = _awaitable(ref)
        try:
            while True:
                done, _ = await asyncio.wait({answer}, timeout=0.5)
                if done:
                    result: dict[str, Any] = answer.result()
                    return result
                if not self._still_placeable(replica):
                    self._kill(replica)
                    return None
        finally:
            if not answer.done():
                answer.cancel()

    def _still_placeable(self, replica: _Replica) -> bool:
        spec = replica.spec
        now = time.monotonic()
        problem = placement_problem(spec.instance_type, replica.wanted, self._nodes)
        if problem is None:
            replica.infeasible_since = None
            if not replica.said_waiting and now - replica.started > 10:
                replica.said_waiting = True
                replica.message = (
                    "waiting for Ray to place it (resources in use, or its environment is built)"
                )
                self._say(replica, f"replica {spec.replica_id} is {replica.message}")
            return True
        replica.message = problem
        if replica.infeasible_since is None:
            replica.infeasible_since = now
            if spec.chainlet_id in self._gave_up:
                self._fail(replica, problem)
                return False
            self._say(
                replica,
                f"replica {spec.replica_id} {problem}; waiting up to "
                f"{self.unschedulable_timeout:g} s for such a node",
            )
        if now - replica.infeasible_since >= self.unschedulable_timeout:
            self._gave_up.add(spec.chainlet_id)
            self._fail(replica, f"{problem}; gave up after {self.unschedulable_timeout:g} s")
            return False
        return True

    # -- watching --------------------------------------------------------------------------

    async def _refresh_nodes(self) -> None:
        nodes = await asyncio.to_thread(self._ray.nodes)
        self._nodes = [
            {k: float(v) for k, v in node.get("Resources", {}).items()}
            for node in nodes
            if node.get("Alive")
        ]
        self._dead_nodes = {str(node["NodeID"]) for node in nodes if not node.get("Alive")}
        self._nodes_at = time.monotonic()

    async def _watch(self) -> None:
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Ray health round failed")
            await asyncio.sleep(0.2)

    async def _round(self) -> None:
        now = time.monotonic()
        if now - self._nodes_at >= NODES_INTERVAL:
            self._nodes_at = now
            try:
                await self._refresh_nodes()
            except Exception as exc:
                # The GCS is unreachable: keep the last view, and let the replicas' own health
                # checks decide meanwhile.
                log.warning("cannot read the Ray cluster's nodes: %s", exc)
        checks = []
        for replica in list(self._replicas.values()):
            if replica.phase in (ReplicaPhase.FAILED, ReplicaPhase.STOPPING) or not replica.ip:
                continue
            if replica.node_id in self._dead_nodes:
                self._fail(replica, f"the Ray node running the replica died ({replica.node_id})")
                continue
            due = replica.phase == ReplicaPhase.STARTING or (
                replica.ready_at is not None and now - replica.ready_at >= self.health_interval
            )
            if due:
                checks.append(self._check(replica))
        if checks:
            await asyncio.gather(*checks)

    async def _check(self, replica: _Replica) -> None:
        """Actor liveness and output first, then the replica's readiness over HTTP."""
        actor_problem = None
        status: dict[str, Any] | None = None
        try:
            status = await asyncio.wait_for(_awaitable(replica.actor.poll.remote()), POLL_TIMEOUT)
        except TimeoutError:
            pass
        except Exception as exc:
            actor_problem = ray_messages.actor_error(exc)
        if _settled(replica):
            return
        if status is not None:
            for line in status.get("lines") or []:
                self._say(replica, line)
            if status.get("ended"):
                self._fail(replica, str(status["ended"]))
                return
            if status.get("port"):
                replica.port = int(status["port"])
        if replica.port is None:
            if actor_problem is not None:
                self._fail(replica, actor_problem)
            return
        assert self._session is not None and replica.ip
        url = f"{ray_messages.address(replica.ip, replica.port)}/v1/models/model"
        verdict = await health_verdicts.probe(self._session, url, replica.credential)
        if _settled(replica):
            return
        serving = verdict is not None and verdict.action == health_verdicts.Action.SERVE
        if verdict is not None and (actor_problem is None or serving):
            self._judged(replica, verdict)
        elif replica.phase == ReplicaPhase.READY or actor_problem is not None:
            # A ready replica that stops answering is replaced (the reconciler starts another),
            # with the reason its host reports when it exited: that event can trail the failed
            # probe on a busy node.
            reason = actor_problem or await self._exit_reason(replica)
            if not _settled(replica):
                self._fail(replica, reason or "the replica stopped answering its health check")

    async def _exit_reason(self, replica: _Replica) -> str | None:
        """How the replica ended, if its host says so within EXIT_GRACE seconds."""
        deadline = time.monotonic() + EXIT_GRACE
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            try:
                status = await asyncio.wait_for(
                    _awaitable(replica.actor.poll.remote()), POLL_TIMEOUT
                )
            except Exception:
                return None
            for line in status.get("lines") or []:
                self._say(replica, line)
            if status.get("ended"):
                return str(status["ended"])
        return None

    def _judged(self, replica: _Replica, verdict: health_verdicts.Verdict) -> None:
        # Restarted: failed with the reason; the reconciler stops it (the actor is killed).
        health_verdicts.apply(
            replica,
            verdict,
            on_ready=self.on_ready,
            note=lambda level, text: self._note(replica, level, text),
            restart=lambda reason: self._fail(replica, reason),
        )

    def _note(self, replica: _Replica, level: str, message: str) -> None:
        self._say(replica, replica_log.record_line(level, "chainyard.health", message))

    # -- stopping --------------------------------------------------------------------------

    def _fail(self, replica: _Replica, message: str) -> None:
        replica.phase = ReplicaPhase.FAILED
        # Ray's errors name nodes and workers by address; the message reaches the workspace.
        replica.message = without_addresses(message)
        replica.port = None

    def _kill(self, replica: _Replica) -> None:
        if replica.actor is not None and self._ray is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(replica.actor, no_restart=True)

    async def _stop(self, replica: _Replica, *, graceful: bool) -> None:
        try:
            if graceful:
                lines = await asyncio.wait_for(
                    _awaitable(replica.actor.stop.remote(STOP_GRACE)), STOP_GRACE + 5
                )
                for line in lines:
                    self._say(replica, line)
        except Exception as exc:
            log.debug("graceful stop of replica %s: %s", replica.spec.replica_id, exc)
        finally:
            self._kill(replica)
            self._replicas.pop(replica.spec.replica_id, None)


def _settled(replica: _Replica) -> bool:
    """Failed or stopping: nothing a check learned can change it (checks run while it moves)."""
    return replica.phase in (ReplicaPhase.FAILED, ReplicaPhase.STOPPING)


def _awaitable(ref: Any) -> asyncio.Future[Any]:
    """An ObjectRef as an asyncio future (Ray completes it from its own thread)."""
    return asyncio.wrap_future(ref.future())
