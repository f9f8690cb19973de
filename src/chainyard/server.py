"""The composition root: builds the store, runtime, control loops, cluster membership, gateway and
live sampler, wires them to each other, and hands them to the HTTP app (api/app.py) with the
lifespan that starts and stops them. The only package that may import every other (with
chainyard/workers/, which splits the same parts over processes).

Two shapes share these parts:
- `create_app`: everything in one process (`chainyard serve --workers 0`, and the tests);
- `chainyard serve` (workers/): a controller process runs `ControlPlane`, and worker processes
  serve `serving_app` over the controller's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import secrets
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from chainyard import __version__, heap, protections
from chainyard.api import in_flight
from chainyard.api.app import HttpSettings, Inference, build_http_app
from chainyard.async_runner import metrics as async_metrics
from chainyard.async_runner.depths import QueueDepths, with_queue
from chainyard.async_runner.loop import Runner
from chainyard.async_runner.settings import RunnerSettings
from chainyard.autoscaler.loop import Autoscaler
from chainyard.cluster.membership import Membership
from chainyard.config import ServerConfig
from chainyard.domain.catalogue_file import load_catalogue
from chainyard.gateway import async_internal as gateway_async
from chainyard.gateway import async_routes as gateway_async_routes
from chainyard.gateway import bodies
from chainyard.gateway import direct as gateway_direct
from chainyard.gateway import model_routes as gateway_model_routes
from chainyard.gateway import routes as gateway_routes
from chainyard.gateway import websockets as gateway_websockets
from chainyard.gateway.fast_lane import FastLane
from chainyard.gateway.route_cache import ROUTING_TABLES, RouteCache
from chainyard.gateway.router import ReplicaRouter, ReplicaSource
from chainyard.interpreters import Interpreters
from chainyard.metrics import Metrics, counter, gauge
from chainyard.reconciler.loop import Reconciler
from chainyard.runtime.base import ReplicaPhase, RuntimeBackend
from chainyard.runtime.factory import make_runtime
from chainyard.services import api_keys as api_key_service
from chainyard.services.auth_throttle import FailureThrottle
from chainyard.services.context import Core
from chainyard.services.crypto import SecretCipher
from chainyard.services.inference import Target
from chainyard.services.live import LiveSampler
from chainyard.store.db import Database
from chainyard.webhooks.targets import TargetPolicy, own_addresses

log = logging.getLogger("chainyard")


class GatewayServer(uvicorn.Server):
    """uvicorn's server which, told to stop, first answers the gateway's long-polls: its
    graceful shutdown waits for every request in flight, and a replica's poll for its
    dependencies' replicas would hold it for up to the poll's wait (25 s)."""

    def __init__(self, config: uvicorn.Config, router: ReplicaRouter) -> None:
        super().__init__(config)
        self.router = router

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.release_polls()
        super().handle_exit(sig, frame)

    def release_polls(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving yet: no poll to answer
        # A signal handler runs between two steps of the loop's own work: hand it over.
        self.router.stop_waiting(loop)


# How long a thread may hold the GIL while another waits (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL_SECONDS = 0.0005

# Tables whose rows the key caches hold (services/api_keys.py, services/chainlet_credentials.py).
KEY_TABLES = frozenset({"api_keys", "workspaces", "chainlet_credentials"})


def build_core(config: ServerConfig, *, migrate: bool = True) -> Core:
    """Store, catalogue and cipher, migrated and ready (also used by the admin CLI). Worker
    processes pass `migrate=False`: their controller migrated the store before starting them."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(config.effective_database_url)
    if migrate:
        db.migrate()
    return Core(
        db=db,
        catalogue=load_catalogue(config.instance_types_file),
        cipher=SecretCipher.from_data_dir(config.data_dir),
        data_dir=config.data_dir.resolve(),
        interpreters=Interpreters(config.pythons, runtime=config.runtime),
    )


def forget_keys(core: Core) -> None:
    core.auth_cache.clear()
    core.chain_key_cache.clear()


def gateway_metrics(metrics: Metrics, replica_router: ReplicaRouter) -> None:
    """What the gateway measures: in a worker process, its own share of the server's figures."""
    replica_router.observe_latency = lambda chainlet, seconds: metrics.request_seconds.labels(
        chainlet
    ).observe(seconds)

    def live() -> Iterable[Any]:
        yield gauge(
            "chainyard_in_flight_requests",
            "Requests running on a chainlet's replicas",
            "chainlet_id",
            replica_router.in_flight,
        )
        yield gauge(
            "chainyard_queued_requests",
            "Requests held at the gateway for a free or new replica",
            "chainlet_id",
            replica_router.waiting,
        )
        yield counter(
            "chainyard_requests",
            "Requests forwarded to a chainlet",
            ["chainlet_id"],
            {(k,): v for k, v in replica_router.requests_total.items()},
        )
        yield counter(
            "chainyard_request_errors",
            "Error answers, by class",
            ["chainlet_id", "class"],
            {k: float(v) for k, v in replica_router.errors_total.items()},
        )

    metrics.add_source(live)


def control_metrics(
    metrics: Metrics, backend: RuntimeBackend, reconciler: Reconciler, autoscaler: Autoscaler
) -> None:
    """What the control loops and the runtime measure."""
    reconciler.on_tick = metrics.reconciler_tick_seconds.observe
    if hasattr(backend, "on_ready"):
        backend.on_ready = lambda chainlet, seconds: metrics.cold_start_seconds.labels(
            chainlet
        ).observe(seconds)

    def live() -> Iterable[Any]:
        ready: Counter[str] = Counter(
            r.chainlet_id for r in backend.replicas() if r.phase == ReplicaPhase.READY
        )
        yield gauge("chainyard_replicas_ready", "Ready replicas", "chainlet_id", ready)
        yield gauge(
            "chainyard_replicas_desired",
            "Replicas the autoscaler wants",
            "chainlet_id",
            autoscaler.desired,
        )
        yield counter(
            "chainyard_autoscaler_decisions",
            "Replica count changes made by the autoscaler, by reason",
            ["reason"],
            {(k,): v for k, v in autoscaler.decisions.items()},
        )

    metrics.add_source(live)


@dataclasses.dataclass
class ControlPlane:
    """The runtime and the loops that drive it, started and stopped by the cluster membership
    (the control-loops lease)."""

    core: Core
    backend: RuntimeBackend
    reconciler: Reconciler
    autoscaler: Autoscaler
    membership: Membership
    initial_key_file: Any

    async def start(self) -> None:
        # Starts the runtime and the control loops if this server gets the lease.
        await self.membership.start()

    async def stop(self) -> None:
        await self.membership.stop()
        await self.autoscaler.stop()
        await self.reconciler.stop()
        await self.backend.close()

    def health(self) -> dict[str, object]:
        return {
            "runtime": self.backend.name,
            "server_id": self.membership.server_id,
            "leader": self.membership.leader,
            "protections": protections.active(self.backend),
        }

    def banner(self, config: ServerConfig) -> str:
        return protections.banner(self.backend, allow_unsandboxed=config.allow_unsandboxed)


def control_plane(
    config: ServerConfig,
    core: Core,
    local_demand: Callable[[], Mapping[str, float]],
    *,
    runtime: RuntimeBackend | None = None,
    queue: QueueDepths | None = None,
) -> ControlPlane:
    """The runtime, reconciler, autoscaler and membership, wired; `local_demand` is what this
    server's gateways hold (one in-process gateway, or the sum of the workers'). `queue`: the
    async queue, whose queued requests count toward the autoscaler's demand (read only by the
    leader's autoscaler: the queue is the same for every server)."""
    initial_key_file = None
    if config.bootstrap_api_key:
        api_key_service.ensure_bootstrap_key(core, config.bootstrap_api_key)
    elif api_key_service.ensure_initial_key(core, core.data_dir / "initial-api-key"):
        initial_key_file = core.data_dir / "initial-api-key"
    backend = runtime or make_runtime(config)
    reconciler = Reconciler(
        core, backend, interval=config.reconcile_interval, gateway_url=config.gateway_url
    )
    # Refuses to start (SharedUnsandboxed) with several workspaces and no sandbox.
    reconciler.sole_workspace = protections.single_workspace(
        core, backend, allow_unsandboxed=config.allow_unsandboxed
    )
    reconciler.one_workspace_only = (
        protections.unprotected(backend) and not config.allow_unsandboxed
    )

    async def lead() -> None:
        await backend.start()
        if config.run_reconciler:
            reconciler.start()
        if config.run_autoscaler:
            autoscaler.start()

    async def follow() -> None:
        await autoscaler.stop()
        await reconciler.stop()
        await backend.close()

    membership = Membership(
        core,
        backend,
        server_id=config.effective_server_id,
        local_demand=local_demand,
        on_gain=lead,
        on_loss=follow,
        ttl=config.lease_ttl,
    )
    demand = membership.demand if queue is None else with_queue(membership.demand, queue)
    autoscaler = Autoscaler(core, demand, interval=config.autoscale_interval)
    core.wake_reconciler = reconciler.wake
    core.chainlets_deleted = reconciler.forget_existing
    core.autoscaling_changed = autoscaler.forget_quiet
    return ControlPlane(core, backend, reconciler, autoscaler, membership, initial_key_file)


def check_throttle_settings(config: ServerConfig) -> None:
    # Refused at construction, like the settings above, rather than silently unthrottled.
    if config.auth_failure_limit < 0:
        raise ValueError("auth_failure_limit must be 0 (off) or more")


def failure_throttle(config: ServerConfig) -> FailureThrottle | None:
    check_throttle_settings(config)
    if config.auth_failure_limit > 0:
        return FailureThrottle(config.auth_failure_limit, config.auth_failures_per_second)
    return None


@dataclasses.dataclass
class Serving:
    """The API and gateway of one process, on a replica view (the membership's in one process,
    the controller's channel in a worker)."""

    core: Core
    router: ReplicaRouter
    routes: RouteCache[Target]
    metrics: Metrics
    live: LiveSampler


def serving(
    config: ServerConfig,
    core: Core,
    view: ReplicaSource,
    *,
    totals: tuple[Callable[[], Mapping[str, float]], Callable[[], Mapping[str, float]]]
    | None = None,
) -> Serving:
    """The gateway and its caches on `view`. `totals` (in flight, queued) feed the live view when
    other processes' gateways share the load; by default this gateway's own figures."""
    replica_router = ReplicaRouter(
        view,
        max_body_bytes=config.max_body_bytes,
        direct_calls=config.direct_dependency_calls,
    )
    routes: RouteCache[Target] = RouteCache()
    core.db.watch(ROUTING_TABLES, routes.invalidate)
    core.db.watch(KEY_TABLES, functools.partial(forget_keys, core))
    metrics = Metrics()
    gateway_metrics(metrics, replica_router)
    in_flight_now, queued_now = totals or (
        lambda: replica_router.in_flight,
        lambda: replica_router.waiting,
    )
    live_sampler = LiveSampler(
        view.replicas,
        in_flight_now,
        queued_now,
        version=lambda: view.generation,
        describe=lambda r: (r.chainlet_id, r.phase.value),
    )
    return Serving(core, replica_router, routes, metrics, live_sampler)


def serving_app(
    config: ServerConfig,
    parts: Serving,
    *,
    lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]],
    health: Callable[[], Mapping[str, object]],
    render_metrics: Callable[[], Awaitable[bytes]],
    state: Mapping[str, object],
) -> FastAPI:
    core = parts.core
    requests = in_flight.RequestCounter()
    core.requests_waiting = requests.any
    inference_routers = [
        gateway_routes.router,
        gateway_model_routes.router,
        gateway_async_routes.router,
        gateway_async.router,
    ]
    # Checked at enqueue (webhooks/targets.py); the runner's deliveries check again.
    webhook_policy = TargetPolicy(
        allow_private=config.allow_private_webhooks, own=own_addresses(config.host)
    )
    return build_http_app(
        lifespan=lifespan,
        state={
            "core": core,
            "router": parts.router,
            "routes": parts.routes,
            "metrics": parts.metrics,
            "render_metrics": render_metrics,
            "live": parts.live,
            "webhook_policy": webhook_policy,
            **state,
        },
        settings=HttpSettings(
            max_request_bytes=config.max_request_bytes,
            rate_limit_per_second=config.rate_limit_per_second,
        ),
        inference=Inference(
            routers=inference_routers,
            install=gateway_websockets.install,
            lane=functools.partial(
                FastLane,
                routes=[r for router in inference_routers for r in router.routes],
                max_body_bytes=config.max_body_bytes,
                core=core,
            ),
            streams_body=bodies.streams_body,
            max_body_bytes=config.max_body_bytes,
            long_polls=gateway_direct.long_polled,
        ),
        requests=requests,
        health=health,
    )


@dataclasses.dataclass
class AsyncParts:
    """The async queue's parts of one server: its depths (metrics, autoscaling), its runner (None
    with `run_async_runner` off) and the secret that opens the gateway's internal async route to
    it (made at each start, never stored)."""

    depths: QueueDepths
    secret: str
    runner: Runner | None = None

    def enqueued(self) -> None:
        if self.runner is not None:
            self.runner.enqueued()


def async_queue_parts(config: ServerConfig, core: Core) -> AsyncParts:
    return AsyncParts(
        QueueDepths(core, per_deployment=config.async_concurrency_per_deployment),
        secrets.token_urlsafe(32),
    )


def async_runner(
    config: ServerConfig,
    core: Core,
    parts: AsyncParts,
    metrics: Metrics,
    *,
    stopping: Callable[[], bool],
) -> None:
    """The runner (when the server runs one), and what it and the queue measure."""
    if config.run_async_runner:
        settings = RunnerSettings(
            server_id=config.effective_server_id,
            gateway_url=config.local_gateway_url,
            secret=parts.secret,
            concurrency=config.async_concurrency,
            per_deployment=config.async_concurrency_per_deployment,
            lease_seconds=config.async_lease_seconds,
            webhook_attempts=config.webhook_max_attempts,
            webhook_retry_seconds=config.webhook_retry_seconds,
            allow_private_webhooks=config.allow_private_webhooks,
            listen_host=config.host,
        )
        parts.runner = Runner(core, settings, stopping=stopping)
    async_metrics.install(metrics, parts.depths, parts.runner)


def create_app(config: ServerConfig, *, runtime: RuntimeBackend | None = None) -> FastAPI:
    """Everything in one process: the API, the gateway and the control loops."""
    # Fail at construction, not at the first request, on a bad catalogue file or database URL.
    core = build_core(config)
    core.auth_throttle = failure_throttle(config)
    demand: list[Callable[[], Mapping[str, float]]] = []
    queue = async_queue_parts(config, core)
    plane = control_plane(config, core, lambda: demand[0](), runtime=runtime, queue=queue.depths)
    # Inference routes to the leader's replicas, wherever this server stands.
    parts = serving(config, core, plane.membership)
    demand.append(parts.router.demand)
    control_metrics(parts.metrics, plane.backend, plane.reconciler, plane.autoscaler)
    async_runner(config, core, queue, parts.metrics, stopping=parts.router.stopping.is_set)

    async def render_metrics() -> bytes:
        await queue.depths.refresh()
        return parts.metrics.render()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The control loops do their Python work in worker threads. A request's thread, back
        # from a database call, waits for the GIL until the holder's switch interval ends: 5 ms
        # by default, several times per request while the loops are busy. (Worker processes,
        # which run no loop, need neither this nor the frozen collector.)
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
        await parts.router.start()
        await plane.start()
        parts.live.start()
        if queue.runner is not None:
            queue.runner.start()
        collector = heap.settle()
        app.state.ready = True
        log.info("chainyard %s serving (runtime %s)", __version__, plane.backend.name)
        try:
            yield
        finally:
            app.state.ready = False
            if queue.runner is not None:
                await queue.runner.stop()
            await parts.live.stop()
            await plane.stop()
            await parts.router.close()
            core.db.dispose()
            heap.thaw(collector)
            sys.setswitchinterval(switch_interval)

    return serving_app(
        config,
        parts,
        lifespan=lifespan,
        health=plane.health,
        render_metrics=render_metrics,
        state={
            "runtime": plane.backend,
            "reconciler": plane.reconciler,
            "autoscaler": plane.autoscaler,
            "membership": plane.membership,
            "initial_key_file": plane.initial_key_file,
            "protections_banner": plane.banner(config),
            "async_secret": queue.secret,
            "async_enqueued": queue.enqueued,
            "async_runner": queue.runner,
        },
    )
