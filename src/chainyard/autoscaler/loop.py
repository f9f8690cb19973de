"""The autoscaler loop: samples in-flight requests per chainlet, runs the policy, writes counts."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping

from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.domain.autoscaling_policy import PolicyState, Traffic, decide
from chainyard.services import autoscaling
from chainyard.services.context import Core

log = logging.getLogger("chainyard.autoscaler")

MAX_WINDOW = 3600.0
FULL_PASS_EVERY = 10


class TrafficSamples:
    """In-flight samples per chainlet, kept for the longest window a setting may ask for."""

    def __init__(self) -> None:
        self._samples: dict[str, collections.deque[tuple[float, float]]] = {}

    def record(self, now: float, counts: Mapping[str, float], chainlets: list[str]) -> None:
        # Chainlets already tracked get a sample every time (zero when idle), so that averages
        # stay true between the passes that look at idle chainlets.
        for chainlet_id in set(chainlets) | set(counts) | set(self._samples):
            samples = self._samples.setdefault(chainlet_id, collections.deque())
            samples.append((now, float(counts.get(chainlet_id, 0))))
            while samples and samples[0][0] < now - MAX_WINDOW:
                samples.popleft()

    def average(self, chainlet_id: str, now: float, window: float) -> float:
        samples = self._samples.get(chainlet_id)
        if not samples:
            return 0.0
        recent = [v for t, v in samples if t >= now - window]
        if not recent:
            recent = [samples[-1][1]]
        return sum(recent) / len(recent)

    def forget(self, keep: set[str]) -> None:
        for chainlet_id in list(self._samples):
            if chainlet_id not in keep:
                del self._samples[chainlet_id]


class Autoscaler:
    def __init__(
        self,
        core: Core,
        in_flight: Callable[[], Mapping[str, float]],
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.in_flight = in_flight
        self.interval = interval
        self.clock = clock
        self.samples = TrafficSamples()
        self.decisions: collections.Counter[str] = collections.Counter()
        # Replica counts the autoscaler last saw or set, per chainlet (for metrics).
        self.desired: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._ticks = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chainyard-autoscaler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("autoscaler tick failed; retrying")
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        now = self.clock()
        demand = self.in_flight()
        busy = {chainlet_id for chainlet_id, n in demand.items() if n > 0}
        # Idle chainlets only wait out their scale-down delay: they are looked at every
        # FULL_PASS_EVERY ticks, busy ones every tick.
        full = self._ticks % FULL_PASS_EVERY == 0
        self._ticks += 1
        chainlets = await asyncio.to_thread(
            functools.partial(autoscaling.managed, self.core, busy, idle_too=full)
        )
        ids = [c.chainlet_id for c in chainlets]
        self.samples.record(now, demand, ids)
        if full:
            self.samples.forget(set(ids) | set(demand))
        decisions = []
        self.desired.update({c.chainlet_id: c.desired_replicas for c in chainlets})
        for chainlet in chainlets:
            if chainlet.retired and chainlet.desired_replicas == 0:
                # Replaced by a promotion: the requests it still finishes must not scale it back
                # up. A request sent to it directly wakes it (the gateway), and then it is scaled.
                continue
            settings = AutoscalingSettings.from_dict(chainlet.autoscaling)
            traffic = Traffic(
                window_average=self.samples.average(
                    chainlet.chainlet_id, now, settings.autoscaling_window
                ),
                burst_average=self.samples.average(
                    chainlet.chainlet_id, now, settings.autoscaling_window / 10
                ),
            )
            state = PolicyState.from_dict(chainlet.state)
            decision = decide(
                chainlet.desired_replicas,
                traffic,
                settings,
                state,
                now,
                min_replica=0 if chainlet.retired else None,
            )
            if decision.replicas != chainlet.desired_replicas or decision.state != state:
                decisions.append(
                    autoscaling.ScaleDecision(
                        chainlet.chainlet_id,
                        chainlet.desired_replicas,
                        decision.replicas,
                        decision.state.to_dict(),
                    )
                )
                if decision.replicas != chainlet.desired_replicas:
                    self.decisions[decision.reason] += 1
                    self.desired[chainlet.chainlet_id] = decision.replicas
                    log.info(
                        "chainlet %s: %d -> %d replicas (%s)",
                        chainlet.chainlet_id,
                        chainlet.desired_replicas,
                        decision.replicas,
                        decision.reason,
                    )
        written = await asyncio.to_thread(autoscaling.apply, self.core, decisions)
        if any(d.replicas != d.expected_replicas for d in written):
            self.core.wake_reconciler()
