"""The autoscaler loop: samples in-flight requests per chainlet, runs the policy, writes counts."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from chainyard.autoscaler.traffic import TrafficSamples
from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.domain.autoscaling_policy import (
    Decision,
    PolicyState,
    Traffic,
    decide,
    idle_change_at,
)
from chainyard.services import autoscaler_store
from chainyard.services.context import Core
from chainyard.services.pacing import Pacer

log = logging.getLogger("chainyard.autoscaler")

FULL_PASS_EVERY = 10
# An idle chainlet left alone by its cached due time is still looked at within this long, so that
# a settings change made elsewhere (another server) is noticed. Each one after a random half to
# whole of it: rechecked all at once, a fleet of 20,000 took the autoscaler 4 s in one tick.
IDLE_RECHECK_SECONDS = 60.0


class _Quiet(NamedTuple):
    """An idle chainlet whose decision cannot change before `due` (None: never) as long as its
    count stays `desired` and no request comes."""

    desired: int
    due: float | None
    idle_since: float | None
    recheck_at: float


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
        self._quiet: dict[str, _Quiet] = {}
        self._jitter = random.Random()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chainyard-autoscaler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _pacer(self) -> Pacer:
        return Pacer(waiting=self.core.requests_waiting)

    def forget_quiet(self) -> None:
        """Settings changed: every idle chainlet is looked at again in the next idle pass.
        Thread-safe enough: API handlers call it from worker threads, and replacing the dict is
        atomic."""
        self._quiet = {}

    async def _idle_pass(
        self, now: float, demand: Mapping[str, float], busy: set[str]
    ) -> list[autoscaler_store.Managed]:
        # In a worker thread, bookkeeping included: over a fleet of thousands it takes tens of
        # milliseconds, which on the event loop would hold up every request meanwhile.
        return await asyncio.to_thread(self._idle_pass_blocking, now, demand, busy)

    def _idle_pass_blocking(
        self, now: float, demand: Mapping[str, float], busy: set[str]
    ) -> list[autoscaler_store.Managed]:
        """Every managed chainlet, in plain columns; full rows only for those with traffic or
        whose decision may be due (a steady fleet of thousands costs one light query)."""
        # Paced (services/pacing.py): over a large fleet this pass is hundreds of milliseconds,
        # and API requests share the interpreter with it.
        pacer = self._pacer()
        glances = autoscaler_store.glance(self.core, busy, pacer=pacer)
        ids = [g.chainlet_id for g in glances]
        self.samples.record(now, demand, ids)
        self.samples.forget(set(ids) | set(demand))
        for stale in set(self._quiet) - set(ids):
            del self._quiet[stale]
        due: list[str] = []
        for part in pacer.over(glances):
            due.extend(
                g.chainlet_id
                for g in part
                if g.chainlet_id in busy or not self._still_quiet(g, now)
            )
        self.desired.update({g.chainlet_id: g.desired_replicas for g in glances})
        return autoscaler_store.managed_by_id(self.core, due, pacer=pacer)

    def _still_quiet(self, glance: autoscaler_store.Glance, now: float) -> bool:
        quiet = self._quiet.get(glance.chainlet_id)
        return (
            quiet is not None
            and quiet.desired == glance.desired_replicas
            and self.samples.is_idle(glance.chainlet_id)
            and self.samples.idle_since(glance.chainlet_id) == quiet.idle_since
            and (quiet.due is None or quiet.due > now)
            and now < quiet.recheck_at
        )

    def _remember_quiet(
        self,
        chainlet_id: str,
        traffic: Traffic,
        decision: Decision,
        settings: AutoscalingSettings,
        now: float,
        floor: int | None,
    ) -> None:
        if traffic.window_average > 0 or traffic.burst_average > 0:
            self._quiet.pop(chainlet_id, None)
            return
        self._quiet[chainlet_id] = _Quiet(
            desired=decision.replicas,
            due=idle_change_at(decision.replicas, settings, decision.state, min_replica=floor),
            idle_since=self.samples.idle_since(chainlet_id),
            recheck_at=now + IDLE_RECHECK_SECONDS * self._jitter.uniform(0.5, 1.0),
        )

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("autoscaler tick failed; retrying")
            await asyncio.sleep(self.interval)

    def _decide(
        self, chainlets: list[autoscaler_store.Managed], now: float
    ) -> list[tuple[autoscaler_store.ScaleDecision, str]]:
        """The policy's decision for each chainlet, where it differs from what is stored, with its
        reason."""
        decisions: list[tuple[autoscaler_store.ScaleDecision, str]] = []
        # Paced: the first pass after a start decides for every chainlet of the fleet.
        for chainlet in itertools.chain.from_iterable(self._pacer().over(chainlets)):
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
            floor = 0 if chainlet.retired else None
            decision = decide(
                chainlet.desired_replicas, traffic, settings, state, now, min_replica=floor
            )
            self._remember_quiet(chainlet.chainlet_id, traffic, decision, settings, now, floor)
            if decision.replicas != chainlet.desired_replicas or decision.state != state:
                decisions.append(
                    (
                        autoscaler_store.ScaleDecision(
                            chainlet.chainlet_id,
                            chainlet.desired_replicas,
                            decision.replicas,
                            decision.state.to_dict(),
                        ),
                        decision.reason,
                    )
                )
        return decisions

    async def tick(self) -> None:
        now = self.clock()
        demand = self.in_flight()
        busy = {chainlet_id for chainlet_id, n in demand.items() if n > 0}
        # Idle chainlets only wait out their scale-down delay: they are looked at every
        # FULL_PASS_EVERY ticks, busy ones every tick.
        full = self._ticks % FULL_PASS_EVERY == 0
        self._ticks += 1
        if full:
            chainlets = await self._idle_pass(now, demand, busy)
        else:
            chainlets = await asyncio.to_thread(
                functools.partial(
                    autoscaler_store.managed_by_id,
                    self.core,
                    sorted(busy),
                    pacer=self._pacer(),
                )
            )
            self.samples.record(now, demand, [c.chainlet_id for c in chainlets])
        self.desired.update({c.chainlet_id: c.desired_replicas for c in chainlets})
        # In a worker thread too: an idle pass re-reads a few thousand chainlets, and deciding
        # for each on the event loop held up every request for tens of milliseconds.
        decisions = await asyncio.to_thread(self._decide, chainlets, now) if chainlets else []
        for decision, reason in decisions:
            if decision.replicas != decision.expected_replicas:
                self.decisions[reason] += 1
                self.desired[decision.chainlet_id] = decision.replicas
                log.info(
                    "chainlet %s: %d -> %d replicas (%s)",
                    decision.chainlet_id,
                    decision.expected_replicas,
                    decision.replicas,
                    reason,
                )
        written = await asyncio.to_thread(
            functools.partial(
                autoscaler_store.apply,
                self.core,
                [decision for decision, _ in decisions],
                pacer=self._pacer(),
            )
        )
        if any(d.replicas != d.expected_replicas for d in written):
            self.core.wake_reconciler()
