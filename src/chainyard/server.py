"""The composition root: builds the store, runtime, control loops, cluster membership, gateway and
live sampler, wires them to each other, and hands them to the HTTP app (api/app.py) with the
lifespan that starts and stops them. The only module that may import every package."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import FastAPI

from chainyard import __version__, heap, protections
from chainyard.api import in_flight
from chainyard.api.app import HttpSettings, Inference, build_http_app
from chainyard.autoscaler.loop import Autoscaler
from chainyard.cluster.membership import Membership
from chainyard.config import ServerConfig
from chainyard.domain.catalogue_file import load_catalogue
from chainyard.gateway import bodies
from chainyard.gateway import direct as gateway_direct
from chainyard.gateway import model_routes as gateway_model_routes
from chainyard.gateway import routes as gateway_routes
from chainyard.gateway import websockets as gateway_websockets
from chainyard.gateway.fast_lane import FastLane
from chainyard.gateway.route_cache import ROUTING_TABLES, RouteCache
from chainyard.gateway.router import ReplicaRouter
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

log = logging.getLogger("chainyard")

# How long a thread may hold the GIL while another waits (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


def build_core(config: ServerConfig) -> Core:
    """Store, catalogue and cipher, migrated and ready (also used by the admin CLI)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(config.effective_database_url)
    db.migrate()
    return Core(
        db=db,
        catalogue=load_catalogue(config.instance_types_file),
        cipher=SecretCipher.from_data_dir(config.data_dir),
        data_dir=config.data_dir.resolve(),
        interpreters=Interpreters(config.pythons, runtime=config.runtime),
    )


def _metrics(
    backend: RuntimeBackend,
    replica_router: ReplicaRouter,
    reconciler: Reconciler,
    autoscaler: Autoscaler,
) -> Metrics:
    metrics = Metrics()
    replica_router.observe_latency = lambda chainlet, seconds: metrics.request_seconds.labels(
        chainlet
    ).observe(seconds)
    reconciler.on_tick = metrics.reconciler_tick_seconds.observe
    if hasattr(backend, "on_ready"):
        backend.on_ready = lambda chainlet, seconds: metrics.cold_start_seconds.labels(
            chainlet
        ).observe(seconds)

    def live() -> Iterable[Any]:
        ready: Counter[str] = Counter(
            r.chainlet_id for r in backend.replicas() if r.phase == ReplicaPhase.READY
        )
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
        yield gauge("chainyard_replicas_ready", "Ready replicas", "chainlet_id", ready)
        yield gauge(
            "chainyard_replicas_desired",
            "Replicas the autoscaler wants",
            "chainlet_id",
            autoscaler.desired,
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
        yield counter(
            "chainyard_autoscaler_decisions",
            "Replica count changes made by the autoscaler, by reason",
            ["reason"],
            {(k,): v for k, v in autoscaler.decisions.items()},
        )

    metrics.add_source(live)
    return metrics


def create_app(config: ServerConfig, *, runtime: RuntimeBackend | None = None) -> FastAPI:
    # Fail at construction, not at the first request, on a bad catalogue file or database URL.
    core = build_core(config)
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
    replica_router = ReplicaRouter(
        backend,
        max_body_bytes=config.max_body_bytes,
        direct_calls=config.direct_dependency_calls,
    )
    routes: RouteCache[Target] = RouteCache()
    core.db.watch(ROUTING_TABLES, routes.invalidate)

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
        local_demand=replica_router.demand,
        on_gain=lead,
        on_loss=follow,
        ttl=config.lease_ttl,
    )
    # Inference routes to the leader's replicas, wherever this server stands.
    replica_router.runtime = membership
    autoscaler = Autoscaler(core, membership.demand, interval=config.autoscale_interval)
    metrics = _metrics(backend, replica_router, reconciler, autoscaler)
    live_sampler = LiveSampler(
        membership.replicas,
        lambda: replica_router.in_flight,
        lambda: replica_router.waiting,
        version=lambda: membership.generation,
        describe=lambda r: (r.chainlet_id, r.phase.value),
    )
    core.wake_reconciler = reconciler.wake
    core.chainlets_deleted = reconciler.forget_existing
    core.autoscaling_changed = autoscaler.forget_quiet

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The control loops do their Python work in worker threads. A request's thread, back
        # from a database call, waits for the GIL until the holder's switch interval ends: 5 ms
        # by default, several times per request while the loops are busy.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
        await replica_router.start()
        # Starts the runtime and the control loops if this server gets the lease.
        await membership.start()
        live_sampler.start()
        collector = heap.settle()
        app.state.ready = True
        log.info("chainyard %s serving (runtime %s)", __version__, backend.name)
        try:
            yield
        finally:
            app.state.ready = False
            await live_sampler.stop()
            await membership.stop()
            await autoscaler.stop()
            await reconciler.stop()
            await replica_router.close()
            await backend.close()
            core.db.dispose()
            heap.thaw(collector)
            sys.setswitchinterval(switch_interval)

    # Refused at construction, like the settings above, rather than silently unthrottled.
    if config.auth_failure_limit < 0:
        raise ValueError("auth_failure_limit must be 0 (off) or more")
    if config.auth_failure_limit > 0:
        core.auth_throttle = FailureThrottle(
            config.auth_failure_limit, config.auth_failures_per_second
        )
    requests = in_flight.RequestCounter()
    core.requests_waiting = requests.any

    def health() -> dict[str, object]:
        return {
            "runtime": backend.name,
            "server_id": membership.server_id,
            "leader": membership.leader,
            "protections": protections.active(backend),
        }

    inference_routers = [gateway_routes.router, gateway_model_routes.router]
    return build_http_app(
        lifespan=lifespan,
        state={
            "core": core,
            "runtime": backend,
            "reconciler": reconciler,
            "router": replica_router,
            "routes": routes,
            "autoscaler": autoscaler,
            "membership": membership,
            "metrics": metrics,
            "live": live_sampler,
            "initial_key_file": initial_key_file,
            "protections_banner": protections.banner(
                backend, allow_unsandboxed=config.allow_unsandboxed
            ),
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
