"""Live figures for the dashboard: replicas and requests per chainlet, now and over the last
minutes (a chainyard extension; Baseten's API has no such resource).

Replica and request counts live in memory (the runtime, the gateway), so `LiveSampler` reads them
once a second and keeps what changed. What the store wants (desired replicas, statuses) is read per
request, in the same lookup that enforces workspace isolation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from chainyard.schemas.common import DeploymentStatusV1
from chainyard.schemas.live import ChainletLive, DeploymentLive, EnvironmentLive, LiveSeries
from chainyard.services import lookups
from chainyard.services.context import Actor, Core
from chainyard.store.chains import ChainDeployment

log = logging.getLogger("chainyard.live")

SAMPLE_INTERVAL = 1.0
WINDOW_SECONDS = 600

# Every replica the runtime knows, as a list of whatever `describe` turns into (chainlet id,
# phase): the runtime's ReplicaState objects in the server.
ReplicaSource = Callable[[], Sequence[Any]]
Describe = Callable[[Any], tuple[str, str]]
CountSource = Callable[[], Mapping[str, int | float]]


@dataclasses.dataclass(frozen=True)
class Figures:
    ready: int = 0
    starting: int = 0
    in_flight: int = 0
    queued: int = 0


ZERO = Figures()


@dataclasses.dataclass(frozen=True)
class _Inputs:
    replicas: Sequence[Any]
    in_flight: dict[str, int | float]
    queued: dict[str, int | float]


class LiveSampler:
    """Keeps, per chainlet, the points where its figures changed during the last `window` seconds.

    Storing changes rather than every sample keeps an idle fleet at one point per chainlet, and a
    chainlet that stayed at zero for the whole window is forgotten; a busy one is bounded by one
    point per sample.
    """

    def __init__(
        self,
        replicas: ReplicaSource,
        in_flight: CountSource,
        queued: CountSource,
        *,
        interval: float = SAMPLE_INTERVAL,
        window: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        version: Callable[[], object] | None = None,
        describe: Describe = tuple,
    ) -> None:
        self._replicas = replicas
        self._describe = describe
        # Something that stays equal while the replicas do (the replica table's generation):
        # a sample with unchanged replicas and requests is skipped, since it would add nothing.
        self._version = version
        self._last_seen: tuple[object, dict[str, float], dict[str, float]] | None = None
        self._last_full = 0.0
        self._in_flight = in_flight
        self._queued = queued
        self.interval = interval
        self.window = window
        self.clock = clock
        self.started_at = clock()
        self._points: dict[str, collections.deque[tuple[float, Figures]]] = {}
        self._last_prune = 0.0
        # What the last sample saw, to apply only what changed since: each replica object (by
        # id(), held so that ids stay theirs) with how often it was listed, ready and starting
        # replicas per chainlet, and the gateway's counters.
        self._objects: dict[int, Any] = {}
        self._listed: collections.Counter[int] = collections.Counter()
        self._phases: dict[str, list[int]] = {}
        self._flows: dict[str, tuple[int, int]] = {}
        self._maxlen = int(window / interval) + 2
        self._task: asyncio.Task[None] | None = None

    def read(self) -> dict[str, Figures]:
        """The figures now, for every chainlet that has replicas or requests. Call it on the
        event loop, which changes what it reads."""
        return self._figures(
            _Inputs(self._replicas(), dict(self._in_flight()), dict(self._queued()))
        )

    def _capture(self) -> _Inputs | None:
        """What a sample reads, taken on the event loop: the runtime's replica list (a new list
        when the replicas change) and copies of the gateway's counters (`dict()` copies in one
        step, where iterating them elsewhere could meet a request changing them). None when
        nothing changed since the last sample: it would add nothing."""
        now = self.clock()
        in_flight, queued = dict(self._in_flight()), dict(self._queued())
        if self._version is not None:
            seen = (
                self._version(),
                {k: float(v) for k, v in in_flight.items() if v},
                {k: float(v) for k, v in queued.items() if v},
            )
            last = self._last_seen
            unchanged = last is not None and seen == last
            # Still a full pass now and then, to forget chainlets idle for the whole window.
            if unchanged and now - self._last_full < self.window / 10:
                return None
            self._last_seen = seen
            self._last_full = now
        return _Inputs(self._replicas(), in_flight, queued)

    def _figures(self, inputs: _Inputs) -> dict[str, Figures]:
        ready: collections.Counter[str] = collections.Counter()
        starting: collections.Counter[str] = collections.Counter()
        for chainlet_id, phase in map(self._describe, inputs.replicas):
            if phase == "READY":
                ready[chainlet_id] += 1
            elif phase == "STARTING":
                starting[chainlet_id] += 1
        in_flight, queued = inputs.in_flight, inputs.queued
        out: dict[str, Figures] = {}
        for chainlet_id in ready.keys() | starting.keys() | in_flight.keys() | queued.keys():
            figures = Figures(
                ready=ready[chainlet_id],
                starting=starting[chainlet_id],
                in_flight=int(in_flight.get(chainlet_id, 0)),
                queued=int(queued.get(chainlet_id, 0)),
            )
            if figures != ZERO:
                out[chainlet_id] = figures
        return out

    def _replica_changes(self, replicas: Sequence[Any]) -> set[str]:
        """Brings the ready and starting counts up to `replicas`, looking only at the replica
        objects that came or went since the last sample (found with set operations that run in
        C: a fleet of thousands where a few replicas changed costs about a millisecond, where
        counting them all cost tens). Returns the chainlets whose counts may have changed."""
        listed = collections.Counter(map(id, replicas))
        objects = dict(zip(map(id, replicas), replicas, strict=True))
        touched: set[str] = set()
        for object_id in {object_id for object_id, _ in listed.items() ^ self._listed.items()}:
            delta = listed.get(object_id, 0) - self._listed.get(object_id, 0)
            replica = objects[object_id] if object_id in objects else self._objects[object_id]
            chainlet_id, phase = self._describe(replica)
            touched.add(chainlet_id)
            slot = 0 if phase == "READY" else 1 if phase == "STARTING" else None
            if slot is not None:
                counts = self._phases.setdefault(chainlet_id, [0, 0])
                counts[slot] += delta
                if counts == [0, 0]:
                    del self._phases[chainlet_id]
        self._listed, self._objects = listed, objects
        return touched

    def sample(self) -> None:
        inputs = self._capture()
        if inputs is not None:
            self._record(inputs)

    def _record(self, inputs: _Inputs) -> None:
        """Adds a sample. Runs in a worker thread (`_run`) while the event loop may read the
        points: the dict is only read key by key there and each deque copied whole (`list()`),
        which CPython does in one step under the GIL; this thread is their only writer."""
        now = self.clock()
        touched = self._replica_changes(inputs.replicas)
        flows = {
            chainlet_id: (
                int(inputs.in_flight.get(chainlet_id, 0)),
                int(inputs.queued.get(chainlet_id, 0)),
            )
            for chainlet_id in inputs.in_flight.keys() | inputs.queued.keys()
        }
        flows = {k: v for k, v in flows.items() if v != (0, 0)}
        touched |= {chainlet_id for chainlet_id, _ in flows.items() ^ self._flows.items()}
        self._flows = flows
        # Only chainlets whose figures may have changed get a point: most of a large fleet is
        # steady.
        for chainlet_id in touched:
            ready, starting = self._phases.get(chainlet_id, (0, 0))
            value = Figures(ready, starting, *flows.get(chainlet_id, (0, 0)))
            points = self._points.get(chainlet_id)
            if points is None:
                if value == ZERO:
                    continue
                points = self._points[chainlet_id] = collections.deque(maxlen=self._maxlen)
            if not points or points[-1][1] != value:
                points.append((now, value))
        if now - self._last_prune >= self.window / 10:
            self._last_prune = now
            self._prune(now - self.window)

    def _prune(self, horizon: float) -> None:
        for chainlet_id, points in list(self._points.items()):
            # Keep the last point at or before the horizon: it says what held when the window
            # starts.
            while len(points) >= 2 and points[1][0] <= horizon:
                points.popleft()
            if len(points) == 1 and points[0][1] == ZERO and points[0][0] <= horizon:
                del self._points[chainlet_id]

    def series(
        self, chainlet_id: str, since: float, latest: tuple[float, Figures] | None = None
    ) -> LiveSeries:
        """Change points from `since` on; the first one is moved to `since` when it is older.
        `latest` (figures read just now) ends the series, so that it agrees with them rather
        than lagging up to one sample behind."""
        start = max(since, self.started_at)
        points = list(self._points.get(chainlet_id, ()))
        # An untracked chainlet has had nothing running since `start` (or was never sampled).
        kept = [p for p in points if p[0] > start]
        before = [p for p in points if p[0] <= start]
        head = (start, before[-1][1] if before else ZERO)
        if not kept or kept[0][0] > start:
            kept.insert(0, head)
        if latest is not None and latest[1] != kept[-1][1] and latest[0] > kept[-1][0]:
            kept.append(latest)
        return LiveSeries(
            t=[round(t, 3) for t, _ in kept],
            ready=[f.ready for _, f in kept],
            starting=[f.starting for _, f in kept],
            in_flight=[f.in_flight for _, f in kept],
            queued=[f.queued for _, f in kept],
        )

    def tracked(self) -> int:
        return len(self._points)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chainyard-live-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                # Counting thousands of replicas takes milliseconds: in a worker thread, so that
                # requests are not held up meanwhile.
                inputs = self._capture()
                if inputs is not None:
                    await asyncio.to_thread(self._record, inputs)
            except Exception:
                # A broken sample must not end the dashboard's plots for the server's lifetime.
                log.exception("live sample failed; retrying")
            await asyncio.sleep(self.interval)


@dataclasses.dataclass(frozen=True)
class _ChainletRow:
    id: str
    name: str
    status: DeploymentStatusV1
    instance_type_id: str
    instance_type_name: str
    desired_replicas: int


@dataclasses.dataclass(frozen=True)
class _DeploymentRow:
    id: str
    role: Literal["current", "candidate"]
    status: DeploymentStatusV1
    chainlets: list[_ChainletRow]


@dataclasses.dataclass(frozen=True)
class EnvironmentRows:
    """What the store says about an environment's deployments, read in one transaction."""

    chain_id: str
    environment: str
    deployments: list[_DeploymentRow]


def read_environment(core: Core, actor: Actor, chain_id: str, env_name: str) -> EnvironmentRows:
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        env = lookups.environment(session, chain, env_name)
        found = []
        roles: tuple[tuple[Literal["current", "candidate"], str | None], ...] = (
            ("current", env.current_deployment_id),
            ("candidate", env.candidate_deployment_id),
        )
        for role, deployment_id in roles:
            if not deployment_id:
                continue
            row = session.get(ChainDeployment, deployment_id)
            if row is None:
                continue
            chainlets = []
            for c in sorted(row.chainlets, key=lambda c: c.position):
                it = core.catalogue.get(c.instance_type_id)
                chainlets.append(
                    _ChainletRow(
                        id=c.id,
                        name=c.name,
                        status=DeploymentStatusV1(c.status),
                        instance_type_id=c.instance_type_id,
                        instance_type_name=it.name if it else c.instance_type_id,
                        desired_replicas=c.desired_replicas,
                    )
                )
            found.append(_DeploymentRow(row.id, role, DeploymentStatusV1(row.status), chainlets))
        return EnvironmentRows(chain_id=chain.id, environment=env.name, deployments=found)


def environment_live(
    rows: EnvironmentRows, sampler: LiveSampler, window_seconds: int
) -> EnvironmentLive:
    """Joins the store's rows with the sampler's figures. Runs on the event loop, where the
    sampler's inputs change (see LiveSampler._record for its points)."""
    now = sampler.clock()
    figures = sampler.read()
    since = now - window_seconds
    deployments = []
    for d in rows.deployments:
        out = []
        for c in d.chainlets:
            f = figures.get(c.id, ZERO)
            out.append(
                ChainletLive(
                    id=c.id,
                    name=c.name,
                    status=c.status,
                    instance_type_id=c.instance_type_id,
                    instance_type_name=c.instance_type_name,
                    replicas_desired=c.desired_replicas,
                    replicas_ready=f.ready,
                    replicas_starting=f.starting,
                    in_flight=f.in_flight,
                    queued=f.queued,
                    series=sampler.series(c.id, since, latest=(now, f)),
                )
            )
        deployments.append(DeploymentLive(id=d.id, role=d.role, status=d.status, chainlets=out))
    return EnvironmentLive(
        chain_id=rows.chain_id,
        environment=rows.environment,
        now=round(now, 3),
        window_seconds=window_seconds,
        sample_interval_seconds=sampler.interval,
        deployments=deployments,
    )
