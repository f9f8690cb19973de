"""The queue's depth per deployment, read at most once a `max_age` (a GROUP BY over the open
requests): for the metrics (read before each scrape) and the autoscaler's demand, in which the
queued requests of a deployment count toward its entrypoint, so that a backlog scales it and wakes
it from zero without a sync call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from chainyard.services import async_requests, inference
from chainyard.services.async_requests import Depth
from chainyard.services.context import Core

log = logging.getLogger("chainyard.async")

MAX_AGE_SECONDS = 1.0


class QueueDepths:
    def __init__(
        self,
        core: Core,
        *,
        per_deployment: int,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.per_deployment = per_deployment
        self.max_age = max_age
        self.clock = clock
        self.latest: dict[str, Depth] = {}
        # Deployment id -> its entrypoint chainlet's id, for those with queued requests.
        self.entrypoints: dict[str, str] = {}
        self._read_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None

    def _read(self) -> tuple[dict[str, Depth], dict[str, str]]:
        found = async_requests.depths(self.core.db)
        queued = [deployment for deployment, depth in found.items() if depth.queued]
        return found, inference.entrypoints(self.core, queued)

    async def refresh(self) -> dict[str, Depth]:
        """The depths, read again when older than `max_age` (one read at a time)."""
        if self.clock() - self._read_at >= self.max_age:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.create_task(self._refresh())
            with contextlib.suppress(Exception):
                await asyncio.shield(self._reading)
        return self.latest

    async def _refresh(self) -> None:
        try:
            self.latest, self.entrypoints = await asyncio.to_thread(self._read)
        except Exception as exc:
            log.warning("cannot read the async queue's depths: %s", exc)
        finally:
            # A failed read is not retried at once: the store is away.
            self._read_at = self.clock()

    def demand(self) -> dict[str, float]:
        """Per entrypoint chainlet: the deployment's queued requests, at most as many as may run
        at once (more would scale it for requests that wait for the cap anyway). Called on the
        event loop (the autoscaler's tick): answers what it has, and reads again in the
        background when that is old."""
        if self.clock() - self._read_at >= self.max_age and (
            self._reading is None or self._reading.done()
        ):
            self._reading = asyncio.get_running_loop().create_task(self._refresh())
        out: dict[str, float] = {}
        for deployment_id, depth in self.latest.items():
            chainlet_id = self.entrypoints.get(deployment_id)
            if chainlet_id is not None and depth.queued:
                out[chainlet_id] = float(min(depth.queued, self.per_deployment))
        return out


def with_queue(
    demand: Callable[[], Mapping[str, float]], depths: QueueDepths
) -> Callable[[], dict[str, float]]:
    """`demand` plus the queue's."""

    def total() -> dict[str, float]:
        out = {k: float(v) for k, v in demand().items()}
        for chainlet_id, queued in depths.demand().items():
            out[chainlet_id] = out.get(chainlet_id, 0.0) + queued
        return out

    return total
