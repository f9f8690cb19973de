"""The controller process of `chainyard serve`: it owns the store's migrations, the runtime, the
control loops and the cluster lease (server.ControlPlane), and keeps `workers` worker processes
serving on the listening socket (restarting one that dies). `serve` binds that socket and starts
the first workers before it builds the controller (workers/spawn.py).

Over each worker's channel it pushes the replica view (each generation of the membership's, with
the server's status), the gateways' summed load (for every worker's live view), and cache drops
(its own writes of routing and key tables, and those one worker reports to the others). It
answers the workers' asks for the shared limits and for the metrics of the whole server, and adds
up what each worker's gateway holds into the autoscaler's demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from chainyard.api.limits import RateLimiter
from chainyard.config import ServerConfig
from chainyard.gateway.route_cache import ROUTING_TABLES
from chainyard.metrics import Metrics
from chainyard.runtime.base import RuntimeUnavailable
from chainyard.server import (
    GIL_SWITCH_INTERVAL_SECONDS,
    KEY_TABLES,
    ControlPlane,
    async_queue_parts,
    async_runner,
    build_core,
    control_metrics,
    control_plane,
    failure_throttle,
)
from chainyard.workers import metric_families, spawn
from chainyard.workers.channel import Message, Peer
from chainyard.workers.view import encode
from chainyard.workers.worker import WorkerSettings

log = logging.getLogger("chainyard.workers")

# How long workers get to finish the requests they hold when the server stops.
GRACEFUL_STOP_SECONDS = 30.0
# A worker that dies is started again after this long (doubling while it keeps dying at once).
RESTART_SECONDS = 0.5
# How often the gateways' summed load goes to the workers' live views, when it changed.
LOAD_SECONDS = 0.5
# How long a scrape waits for each worker's figures.
COLLECT_SECONDS = 5.0


class Controller:
    def __init__(
        self,
        config: ServerConfig,
        *,
        workers: int,
        uvicorn_options: Mapping[str, Any],
        log_level: str,
        spawned: Sequence[spawn.Spawned] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.config = config
        self.workers = workers
        self.uvicorn_options = dict(uvicorn_options)
        self.log_level = log_level
        self.core = build_core(config)
        self.core.auth_throttle = failure_throttle(config)
        # The async runner runs here, calling through the workers' gateways.
        self.queue = async_queue_parts(config, self.core)
        self.plane: ControlPlane = control_plane(
            config, self.core, self._demand, queue=self.queue.depths
        )
        self.metrics = Metrics()
        control_metrics(
            self.metrics, self.plane.backend, self.plane.reconciler, self.plane.autoscaler
        )
        self._stopping = False
        async_runner(config, self.core, self.queue, self.metrics, stopping=lambda: self._stopping)
        self.limiter = (
            RateLimiter(config.rate_limit_per_second) if config.rate_limit_per_second > 0 else None
        )
        self._peers: dict[int, Peer] = {}
        self._loads: dict[int, Message] = {}
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        # Workers started ahead (workers/spawn.py), each waiting for its settings.
        self._spawned = list(spawned)
        self._channels: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.core.db.watch(
            ROUTING_TABLES, lambda: self._broadcast_soon({"t": "drop", "what": "routes"})
        )
        self.core.db.watch(KEY_TABLES, lambda: self._broadcast_soon({"t": "drop", "what": "keys"}))

    @property
    def initial_key_file(self) -> Any:
        return self.plane.initial_key_file

    def banner(self) -> str:
        return self.plane.banner(self.config)

    # -- what the control loops see ---------------------------------------------------------

    def _demand(self) -> dict[str, float]:
        return self._summed("demand")

    def _summed(self, key: str) -> dict[str, float]:
        total: dict[str, float] = {}
        for load in self._loads.values():
            for chainlet_id, value in load.get(key, {}).items():
                total[chainlet_id] = total.get(chainlet_id, 0.0) + float(value)
        return total

    # -- the channel ------------------------------------------------------------------------

    def _broadcast(self, message: Message, *, but: Peer | None = None) -> None:
        for peer in list(self._peers.values()):
            if peer is not but:
                peer.send(message)

    def _broadcast_soon(self, message: Message) -> None:
        # Store watchers run in the committing thread.
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._broadcast, message)

    def _view_message(self) -> Message:
        membership = self.plane.membership
        return {
            "t": "view",
            "generation": membership.generation,
            "replicas": encode(membership.replicas()),
            "status": {**self.plane.health(), "workers": self.workers},
        }

    async def _push_views(self) -> None:
        membership = self.plane.membership
        generation = membership.generation
        while True:
            generation = await membership.changed(generation)
            self._broadcast(self._view_message())

    async def _push_loads(self) -> None:
        last: Message | None = None
        while True:
            await asyncio.sleep(LOAD_SECONDS)
            load = {
                "t": "load",
                "in_flight": self._summed("in_flight"),
                "queued": self._summed("queued"),
            }
            if load != last:
                self._broadcast(load)
                last = load

    def _handle(self, peer: Peer, message: Message) -> Any:
        kind = message.get("t")
        index = int(peer.info.get("worker", -1))
        if kind == "load":
            self._loads[index] = message
        elif kind == "hello":
            peer.info = message
        elif kind == "wake":
            self.core.wake_reconciler()
        elif kind == "async_enqueued":
            if self.queue.runner is not None:
                self.queue.runner.wake()
        elif kind == "chainlets_deleted":
            self.core.chainlets_deleted()
        elif kind == "autoscaling_changed":
            self.core.autoscaling_changed()
        elif kind == "drop":
            return self._drop_elsewhere(str(message.get("what")), peer)
        elif kind == "rate":
            if self.limiter is None:
                return 0.0
            return self.limiter.take(message["who"], message["method"], message["route"])
        elif kind == "throttle_wait":
            throttle = self.core.auth_throttle
            return throttle.wait(message["host"]) if throttle is not None else 0.0
        elif kind == "throttle_failed":
            if self.core.auth_throttle is not None:
                self.core.auth_throttle.failed(message["host"])
        elif kind == "scrape":
            return self._scrape()
        return None

    async def _drop_elsewhere(self, what: str, origin: Peer) -> None:
        """Has every worker but `origin` drop its cache of `what`; returns once they have."""
        others = [p for p in self._peers.values() if p is not origin]
        answers = await asyncio.gather(
            *(p.ask({"t": "drop", "what": what}, COLLECT_SECONDS) for p in others),
            return_exceptions=True,
        )
        for peer, answer in zip(others, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning(
                    "worker %s did not drop its %s: %s", peer.info.get("worker"), what, answer
                )

    async def _scrape(self) -> str:
        await self.queue.depths.refresh()
        peers = list(self._peers.values())
        answers = await asyncio.gather(
            *(p.ask({"t": "collect"}, COLLECT_SECONDS) for p in peers), return_exceptions=True
        )
        parts = [metric_families.export(self.metrics.registry)]
        for peer, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning("worker %s sent no metrics: %s", peer.info.get("worker"), answer)
            else:
                parts.append(answer)
        return metric_families.render(metric_families.merge(parts)).decode()

    # -- workers ----------------------------------------------------------------------------

    async def _start_worker(self, index: int, listener: socket.socket) -> None:
        # A worker started before the controller was built (workers/spawn.py), or a new one.
        worker = self._spawned.pop(0) if self._spawned else spawn.spawn(listener)
        settings = WorkerSettings(
            config=self.config,
            index=index,
            listen_fd=listener.fileno(),
            channel_fd=worker.channel_fd,
            uvicorn=self.uvicorn_options,
            log_level=self.log_level,
            controller_pid=os.getpid(),
            async_secret=self.queue.secret,
        )
        process = worker.process
        assert process.stdin is not None
        # BrokenPipeError: it died before it read them; the supervisor starts another.
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(pickle.dumps(settings))
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        self._processes[index] = process
        reader, writer = await asyncio.open_unix_connection(sock=worker.channel)
        peer = Peer(reader, writer, self._handle)
        peer.info = {"worker": index}
        self._peers[index] = peer
        # The worker serves once it has a view: send the current one at once.
        peer.send(self._view_message())
        task = asyncio.create_task(self._serve_peer(index, peer), name=f"chainyard-worker-{index}")
        self._channels.add(task)
        task.add_done_callback(self._channels.discard)

    async def _serve_peer(self, index: int, peer: Peer) -> None:
        await peer.run()
        if self._peers.get(index) is peer:
            del self._peers[index]
        self._loads.pop(index, None)

    async def _supervise(self, listener: socket.socket) -> None:
        """Starts the workers, and starts again one that exits while the server runs."""
        delays = dict.fromkeys(range(self.workers), RESTART_SECONDS)
        started: dict[int, float] = {}
        for index in range(self.workers):
            await self._start_worker(index, listener)
            started[index] = time.monotonic()
        while True:
            await asyncio.sleep(0.2)
            for index, process in list(self._processes.items()):
                code = process.poll()
                if code is None:
                    continue
                lived = time.monotonic() - started[index]
                delays[index] = RESTART_SECONDS if lived > 10 else min(delays[index] * 2, 10.0)
                log.error(
                    "worker %d (pid %d) exited with %s; starting it again in %.1f s",
                    index,
                    process.pid,
                    code,
                    delays[index],
                )
                del self._processes[index]
                # Stopping cancels this task, so no worker starts after that.
                await asyncio.sleep(delays[index])
                await self._start_worker(index, listener)
                started[index] = time.monotonic()

    async def _stop_workers(self) -> None:
        processes = list(self._processes.values())
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACEFUL_STOP_SECONDS
        for process in processes:
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.poll() is None:
                log.warning("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()

    async def _start_plane(self, stop: asyncio.Event) -> bool:
        """Starts the control plane; False when `stop` came first. Starting the runtime may take
        long (connecting to a cluster): a stop signal meanwhile ends it at once."""
        starting = asyncio.create_task(self.plane.start(), name="chainyard-start-plane")
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if starting.done():
            starting.result()  # the runtime's error, if it could not start
            return True
        log.warning("stopped while the control plane was starting")
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return False

    async def run(self, listener: socket.socket, stop: asyncio.Event) -> None:
        """Serves until `stop` is set: workers first stop taking requests and finish theirs, then
        the control loops and the runtime stop."""
        self._loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        try:
            if not await self._start_plane(stop):
                return
            tasks = [
                asyncio.create_task(self._push_views(), name="chainyard-push-views"),
                asyncio.create_task(self._push_loads(), name="chainyard-push-loads"),
                asyncio.create_task(self._supervise(listener), name="chainyard-supervise"),
            ]
            if self.queue.runner is not None:
                # The runner's calls are answered on the loop while its store turns run in a
                # thread: each would wait out the other's GIL switch interval (5 ms) otherwise.
                sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
                self.queue.runner.start()
            await stop.wait()
        finally:
            self._stopping = True
            # No worker is started again from here on.
            for task in tasks:
                task.cancel()
            # Before the workers: the runner's calls in flight go through them.
            if self.queue.runner is not None:
                await self.queue.runner.stop()
            await self._stop_workers()
            # Stopped before every worker got its settings.
            spawn.discard(self._spawned)
            self._spawned.clear()
            for peer in list(self._peers.values()):
                peer.close()
            await self.plane.stop()
            self.core.db.dispose()


def serve(controller: Controller, listener: socket.socket) -> None:
    """Runs the controller until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await controller.run(listener, stop)

    run: Callable[[Coroutine[Any, Any, None]], None]
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        run(main())
    except RuntimeUnavailable as exc:
        # e.g. Ray does not answer: a message for the operator, not a traceback.
        print(f"chainyard: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
