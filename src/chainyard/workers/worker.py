"""A worker process: the API and the gateway on the listening socket its controller bound,
routing to the replica view the controller pushes (workers/view.py). It runs no control loop:
what the API's writes must tell the loops, and what its gateway holds (the autoscaler's demand),
go to the controller over the channel.

Started as `python -m chainyard.workers.worker` (workers/spawn.py), with its settings pickled on
stdin, the listening socket and its end of the channel (a socket pair) inherited. The first
workers start before the controller is built: they import while it starts, then read their
settings. It stops when the
controller does: a SIGTERM from it, the channel closing, or the controller's death (the kernel
sends SIGKILL to an orphan, so that no worker keeps the port serving a frozen table).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import logging
import os
import pickle
import signal
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from chainyard import __version__
from chainyard.async_runner.wake import Coalesced
from chainyard.config import ServerConfig
from chainyard.gateway.route_cache import ROUTING_TABLES
from chainyard.server import (
    KEY_TABLES,
    GatewayServer,
    Serving,
    build_core,
    check_throttle_settings,
    forget_keys,
    serving,
    serving_app,
)
from chainyard.workers import metric_families
from chainyard.workers.channel import Message, Peer
from chainyard.workers.link import ControllerLink, SharedRateLimiter, SharedThrottle
from chainyard.workers.view import ChannelView

log = logging.getLogger("chainyard.workers")

# How often a worker tells the controller what its gateway holds, when that changed.
REPORT_SECONDS = 0.05
# How long a new worker waits for the controller's first replica view before giving up.
FIRST_VIEW_SECONDS = 60.0


@dataclasses.dataclass
class WorkerSettings:
    config: ServerConfig
    index: int
    listen_fd: int
    channel_fd: int
    uvicorn: dict[str, Any]
    log_level: str
    controller_pid: int
    # Opens the gateway's internal async route to the controller's runner
    # (gateway/async_internal.py); made at each start, handed over here, never stored.
    async_secret: str = ""


@dataclasses.dataclass
class _Shared:
    """What the controller pushes besides the view."""

    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    in_flight: dict[str, float] = dataclasses.field(default_factory=dict)
    queued: dict[str, float] = dataclasses.field(default_factory=dict)


def build_worker_app(settings: WorkerSettings, server: list[GatewayServer]) -> FastAPI:
    config = settings.config
    check_throttle_settings(config)
    core = build_core(config, migrate=False)
    link = ControllerLink()
    shared = _Shared()
    view = ChannelView()
    parts = serving(config, core, view, totals=(lambda: shared.in_flight, lambda: shared.queued))
    if config.auth_failure_limit > 0:
        core.auth_throttle = SharedThrottle(
            link, config.auth_failure_limit, config.auth_failures_per_second
        )
    # What the API's writes tell the control loops, which run in the controller.
    core.wake_reconciler = lambda: link.send({"t": "wake"})
    core.chainlets_deleted = lambda: link.send({"t": "chainlets_deleted"})
    core.autoscaling_changed = lambda: link.send({"t": "autoscaling_changed"})
    # An enqueued async request wakes the controller's runner (a burst, once).
    async_enqueued = Coalesced(lambda: link.send({"t": "async_enqueued"}))
    # This worker's writes drop the other workers' caches too (the controller passes them on).
    core.db.watch(ROUTING_TABLES, lambda: _drop_everywhere(link, "routes"))
    core.db.watch(KEY_TABLES, lambda: _drop_everywhere(link, "keys"))

    def handle(peer: Peer, message: Message) -> Any:
        kind = message.get("t")
        if kind == "view":
            shared.status = message["status"]
            view.publish(int(message["generation"]), message["replicas"])
        elif kind == "load":
            shared.in_flight = message["in_flight"]
            shared.queued = message["queued"]
        elif kind == "drop":
            if message.get("what") == "routes":
                parts.routes.invalidate()
            else:
                forget_keys(core)
        elif kind == "collect":
            return metric_families.export(parts.metrics.registry)
        return None

    async def render_metrics() -> bytes:
        text: str = await link.ask({"t": "scrape"})
        return text.encode()

    def stop_serving(_task: asyncio.Task[None]) -> None:
        if server and not server[0].should_exit:
            log.warning("worker %d: the controller's channel closed; stopping", settings.index)
            server[0].release_polls()
            server[0].should_exit = True

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        channel = socket.socket(fileno=settings.channel_fd)
        reader, writer = await asyncio.open_unix_connection(sock=channel)
        peer = Peer(reader, writer, handle)
        link.connect(peer)
        async_enqueued.bind(asyncio.get_running_loop())
        peer.send({"t": "hello", "worker": settings.index, "pid": os.getpid()})
        reading = asyncio.create_task(peer.run(), name="chainyard-worker-channel")
        reading.add_done_callback(stop_serving)
        await asyncio.wait_for(view.received.wait(), FIRST_VIEW_SECONDS)
        await parts.router.start()
        parts.live.start()
        reporting = asyncio.create_task(_report(parts, link), name="chainyard-worker-report")
        app.state.ready = True
        log.info("chainyard %s worker %d serving", __version__, settings.index)
        try:
            yield
        finally:
            app.state.ready = False
            reporting.cancel()
            await parts.live.stop()
            await parts.router.close()
            peer.close()
            reading.cancel()
            core.db.dispose()

    app = serving_app(
        config,
        parts,
        lifespan=lifespan,
        health=lambda: {**shared.status, "worker": settings.index},
        render_metrics=render_metrics,
        state={
            "worker": settings.index,
            "async_secret": settings.async_secret,
            "async_enqueued": async_enqueued,
        },
    )
    if config.rate_limit_per_second > 0:
        app.state.rate_limiter = SharedRateLimiter(link, config.rate_limit_per_second)
    return app


def _drop_everywhere(link: ControllerLink, what: str) -> None:
    """Tells every other worker to drop its cache of `what`, and waits (in the thread that
    committed the write) until they have: the answer to the write leaves only then, so a client's
    next request sees the change whichever worker takes it."""
    message: Message = {"t": "drop", "what": what}
    try:
        link.ask_blocking(message)
    except RuntimeError:
        link.send(message)  # committed on the event loop's thread, which must not block
    except Exception as exc:
        log.warning("could not drop the other workers' %s caches: %s", what, exc)


async def _report(parts: Serving, link: ControllerLink) -> None:
    """Sends what this gateway holds whenever it changed (the autoscaler's demand, the live
    view's figures), checked every REPORT_SECONDS: off the request path, at most 20 a second."""
    last: Message | None = None
    while True:
        router = parts.router
        report: Message = {
            "t": "load",
            "demand": {k: float(v) for k, v in router.demand().items() if v},
            "in_flight": {k: float(v) for k, v in router.in_flight.items() if v},
            "queued": {k: float(v) for k, v in router.waiting.items() if v},
        }
        if report != last:
            link.send(report)
            last = report
        await asyncio.sleep(REPORT_SECONDS)


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the kernel kills this worker when the controller dies, however it dies.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def main() -> None:
    try:
        settings: WorkerSettings = pickle.load(sys.stdin.buffer)
    except EOFError:
        return  # the server stopped before it handed this worker its settings (workers/spawn.py)
    _die_with_parent()
    if os.getppid() != settings.controller_pid:
        sys.exit(1)  # the controller died before the line above took effect
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s[w{settings.index}]: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    server: list[GatewayServer] = []
    app = build_worker_app(settings, server)
    listener = socket.socket(fileno=settings.listen_fd)
    # Nothing this worker starts may inherit the server's socket or the channel.
    listener.set_inheritable(False)
    os.set_inheritable(settings.channel_fd, False)
    uvicorn_server = GatewayServer(
        uvicorn.Config(app, log_level=settings.log_level.lower(), **settings.uvicorn),
        app.state.router,
    )
    server.append(uvicorn_server)
    try:
        uvicorn_server.run(sockets=[listener])
    finally:
        # A quick exit: the interpreter's teardown would walk the whole heap (cli/main.py).
        gc.freeze()


if __name__ == "__main__":
    main()
