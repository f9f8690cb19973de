"""The control loop: compares what the store wants with what the runtime runs, and acts.

Level-triggered: every tick starts from the store and the runtime's report, so a missed or repeated
tick is harmless and a restarted server resumes where the store says. Each chainlet is handled in
its own try/except; one broken chainlet cannot stop the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from chainyard.domain.ids import new_replica_id
from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus, Event
from chainyard.reconciler import revisions
from chainyard.reconciler.builds import Builds
from chainyard.reconciler.observed import Observed
from chainyard.reconciler.patching import Patching
from chainyard.runtime.base import (
    BuildResult,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
    RuntimeBackend,
)
from chainyard.services import chainlet_credentials, reconciler_store, rollouts, secrets
from chainyard.services.context import Core
from chainyard.services.pacing import Pacer
from chainyard.services.reconciler_store import ChainletGlance, ChainletUpdate, ChainletWork

log = logging.getLogger("chainyard.reconciler")

S = DeploymentStatus
# Every this many intervals the reconciler looks at every chainlet that runs, not only changed
# ones. Counted in time, not ticks: a burst of wake-ups (API changes) runs many ticks in a
# second, and a full scan of a large fleet in each tenth of them would cost the API its latency.
FULL_SCAN_EVERY = 10
# After a tick, the reconciler rests this many times as long as the tick took (at most an
# interval), even when woken meanwhile. Measured with bench/control_plane.py on PostgreSQL, 200
# updates back to back: an update that meets a tick takes about twice as long as one that does not.
REST_PER_TICK = 2.0
# Chainlets reconciled on the event loop between two chances for requests to run.
_YIELD_EVERY = 50
# Chain keys issued per write transaction (a short hold of SQLite's write lock).
_KEYS_PER_WRITE = 500
# Replica start attempts before a deploying chainlet is DEPLOY_FAILED.
MAX_START_ATTEMPTS = 3
# Statuses that become ACTIVE once every desired replica is ready.
_READY_BECOMES_ACTIVE = frozenset(
    {S.DEPLOYING, S.UNHEALTHY, S.UPDATING, S.WAKING_UP, S.LOADING_MODEL}
)


class Reconciler(Builds, Patching):
    def __init__(
        self,
        core: Core,
        runtime: RuntimeBackend,
        *,
        interval: float = 1.0,
        gateway_url: str = "http://127.0.0.1:8080",
    ) -> None:
        self.core = core
        self.runtime = runtime
        self.interval = interval
        # Replicas call their dependencies through this server's internal route.
        self.gateway_url = gateway_url.rstrip("/")
        self._wake = asyncio.Event()
        self._builds: dict[str, asyncio.Task[BuildResult]] = {}
        self._failures: dict[str, int] = defaultdict(int)
        self._retry_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self._next_full_scan = 0.0
        # Deployments that run nothing more: released from the runtime once no replica is left.
        self._releasable: set[str] = set()
        # Chainlet id -> the chain key its replicas present to call their dependencies: issued
        # once per chainlet while this server runs (only its hash is stored), so its replicas
        # share it; a restarted server issues new ones, and the old ones stay valid.
        self._chain_keys: dict[str, str] = {}
        self._observed: Observed | None = None
        # The runtime's replica table generation `_observed` indexes (runtime/replica_table.py).
        self._observed_generation = -1
        # Derived set, kept while its inputs are unchanged (see _suspicious).
        self._ready_version = 0
        self._suspicious_cache: tuple[Observed, int, set[str]] | None = None
        # Set on a server whose chainlet code runs unsandboxed (protections.py): it builds the
        # code of this one workspace only (the first to build, when None).
        self.one_workspace_only = False
        self.sole_workspace: str | None = None
        # What each chainlet looked like when last scanned: (deployment id, dependencies), and
        # its ready replica count, to notice replicas that changed between full scans; and the
        # chainlets of each deployment, by the same scans.
        self._shape: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._of_deployment: dict[str, set[str]] = defaultdict(set)
        # Patches of development deployments being applied (reconciler/revisions.py); while a
        # replacement waits for replicas, a change of the replica table wakes the loop.
        self._patches = revisions.Patches()
        self._build_revision: dict[str, int] = {}
        self._replacing = False
        self._change_waiter: asyncio.Task[None] | None = None
        self._ready_seen: dict[str, int] = {}
        # Chainlets the store was last seen to hold: between full scans only replicas of other
        # chainlets are looked up (they may be orphans). A full scan refills it; a deletion
        # through the API empties it (forget_existing).
        self._existing: set[str] = set()
        self.on_tick: Callable[[float], None] = lambda _seconds: None
        self.last_tick_seconds = 0.0

    def wake(self) -> None:
        """Thread-safe: API handlers run in worker threads."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    _loop: asyncio.AbstractEventLoop | None = None

    def forget_existing(self) -> None:
        """Chainlet rows were deleted. Thread-safe: the set is replaced, not changed."""
        self._existing = set()
        self.wake()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self.run(), name="chainyard-reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in self._builds.values():
            task.cancel()
        self._builds.clear()
        if self._change_waiter is not None:
            self._change_waiter.cancel()

    async def run(self) -> None:
        while True:
            # Cleared before the tick, not after: a wake-up that comes while the tick runs (an API
            # change, a finished build, the tick's own follow-up) calls for one more.
            self._wake.clear()
            started = time.perf_counter()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconciler tick failed; retrying next tick")
            self.last_tick_seconds = time.perf_counter() - started
            self.on_tick(self.last_tick_seconds)
            self.ticks += 1
            if self.last_tick_seconds > max(1.0, self.interval):
                log.warning("slow reconciler tick: %.2fs", self.last_tick_seconds)
            # Wake-ups coming back to back (a burst of API changes) would otherwise run tick after
            # tick, each re-reading everything in flight, and hold the interpreter that serves
            # the API all the while: resting twice as long as the tick took keeps the loop to a
            # third of the time at most. A cheap tick rests next to nothing, so cold starts stay
            # quick.
            rest = min(REST_PER_TICK * self.last_tick_seconds, self.interval)
            await asyncio.sleep(rest)
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives while the
            # wake-up completes, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval - rest):
                    await self._wake.wait()

    async def tick(self) -> None:
        self._replacing = False
        generation = self.runtime.generation
        if self._observed is None or generation != self._observed_generation:
            snapshot = self.runtime.replicas()
            generation = self.runtime.generation  # the one `snapshot` belongs to
            # Indexing thousands of replicas, and the full scan's comparison below, run in a
            # worker thread: on the event loop they would hold up every request meanwhile.
            self._observed = await asyncio.to_thread(Observed.after, self._observed, snapshot)
            self._observed_generation = generation
        observed = self._observed
        # A full scan now and then; in between only chainlets whose stored state is not at rest,
        # and those whose replicas look different from what the store was last told.
        full = self._full_scan_due(time.monotonic())
        suspicious = self._suspicious(observed)
        if full:
            # Plain columns for every running chainlet, and full rows only for those whose store
            # state and replicas disagree: a steady fleet of thousands costs one light query.
            wanted, work = await asyncio.to_thread(self._full_scan, observed)
            self._existing = set(wanted)
        else:
            work = await asyncio.to_thread(
                functools.partial(
                    reconciler_store.load_work,
                    self.core,
                    settled_too=False,
                    also=suspicious,
                    pacer=self._pacer(),
                )
            )
            wanted = {w.chainlet_id for w in work}
        for w in work:
            self._set_shape(w.chainlet_id, (w.deployment_id, w.dependencies))
        unknown = set(observed.by_chainlet) - wanted
        # Of the unknown, chainlets whose deployment is still wanted. A full scan sees only
        # running chainlets, so it also finds one just scaled to zero whose last replica is still
        # stopping: its replicas go, but its deployment keeps what the runtime holds for it.
        serving: set[str] = set()
        if unknown and full:
            serving = await asyncio.to_thread(reconciler_store.still_serving, self.core, unknown)
        elif unknown:
            existing = self._existing
            if unknown - existing:
                existing |= await asyncio.to_thread(
                    reconciler_store.existing_chainlets, self.core, unknown - existing
                )
            unknown -= existing
        for chainlet_id in unknown:
            self._set_shape(chainlet_id, None)
            self._ready_seen.pop(chainlet_id, None)
            if chainlet_id not in serving:
                self._chain_keys.pop(chainlet_id, None)
            for replica in observed.of_chainlet(chainlet_id):
                await self._stop(replica.replica_id)
                if chainlet_id not in serving:
                    # Deleted, or no longer wanted at all: once its replicas are gone, what the
                    # runtime keeps for the deployment goes too.
                    self._releasable.add(replica.deployment_id)
        await self._issue_chain_keys(work, observed)
        updates: list[ChainletUpdate] = []
        for i, item in enumerate(work):
            if i and i % _YIELD_EVERY == 0:
                # Hundreds of chainlets in one tick (a burst of deployments, a restart) would
                # otherwise hold the event loop, and every request waiting on it, at a stretch.
                await asyncio.sleep(0)
            try:
                update = await self._reconcile(item, observed.of_chainlet(item.chainlet_id))
            except Exception:
                log.exception("reconciling chainlet %s failed", item.chainlet_id)
                continue
            if update is not None:
                updates.append(update)
        await asyncio.to_thread(
            functools.partial(
                reconciler_store.apply_updates,
                self.core,
                updates,
                pacer=self._pacer(),
            )
        )
        await self._record_patches(generation)
        # Gradual promotions move one step per tick, from the ready counts just recorded.
        await asyncio.to_thread(rollouts.advance, self.core)
        await self._release_idle_deployments(observed)
        lines = self.runtime.drain_logs()
        if lines:
            await asyncio.to_thread(reconciler_store.record_replica_logs, self.core, lines)
        # Statuses that changed this tick may call for more work at once (e.g. built → deploy).
        if any(u.events for u in updates):
            self._wake.set()

    def _pacer(self) -> Pacer:
        return Pacer(waiting=self.core.requests_waiting)

    def _full_scan_due(self, now: float) -> bool:
        if now < self._next_full_scan:
            return False
        self._next_full_scan = now + FULL_SCAN_EVERY * self.interval
        return True

    def _full_scan(self, observed: Observed) -> tuple[set[str], list[ChainletWork]]:
        # Paced (services/pacing.py): over a large fleet this is the longest thing the reconciler
        # does, and API requests share the interpreter with it.
        pacer = self._pacer()
        glances = reconciler_store.glance(self.core, pacer=pacer)
        wanted = {g.chainlet_id for g in glances}
        # Chainlets being patched look at rest in the store while their replicas are replaced.
        closer: set[str] = reconciler_store.patched(self.core)
        for part in pacer.over(glances):
            closer.update(
                g.chainlet_id
                for g in part
                if not self._at_rest(g, observed.of_chainlet(g.chainlet_id))
            )
        return wanted, reconciler_store.load_chainlets(self.core, closer, pacer=pacer)

    def _suspicious(self, observed: Observed) -> set[str]:
        """Chainlets whose replicas are not all ready, or whose count differs from what the store
        was last told; recomputed only when the replicas or those counts changed."""
        cache = self._suspicious_cache
        if cache is None or cache[0] is not observed or cache[1] != self._ready_version:
            found = set(observed.unsettled) | {
                chainlet_id
                for chainlet_id, replicas in observed.by_chainlet.items()
                if len(replicas) != self._ready_seen.get(chainlet_id, -1)
            }
            cache = self._suspicious_cache = (observed, self._ready_version, found)
        return set(cache[2])

    def _set_shape(self, chainlet_id: str, shape: tuple[str, tuple[str, ...]] | None) -> None:
        before = self._shape.get(chainlet_id)
        if before == shape:
            return
        if before is not None:
            self._of_deployment[before[0]].discard(chainlet_id)
            if not self._of_deployment[before[0]]:
                del self._of_deployment[before[0]]
        if shape is None:
            del self._shape[chainlet_id]
        else:
            self._shape[chainlet_id] = shape
            self._of_deployment[shape[0]].add(chainlet_id)

    def _callee_in_use(self, deployment_id: str, name: str, observed: Observed) -> bool:
        """Callers still running hold on to their dependencies: a chainlet going to zero keeps its
        replicas until no chainlet of its deployment that calls it has any, so in-flight requests
        can finish. Looks at that deployment's chainlets only: the whole fleet, each tick, cost
        the event loop tens of milliseconds at 20,000 chainlets."""
        return any(
            name in self._shape[chainlet_id][1]
            for chainlet_id in self._of_deployment.get(deployment_id, ())
            if chainlet_id in observed.live
        )

    async def _release_idle_deployments(self, observed: Observed) -> None:
        if not self._releasable:
            return
        for deployment_id in sorted(self._releasable - observed.deployments):
            self._releasable.discard(deployment_id)
            for chainlet_id in self._of_deployment.get(deployment_id, ()):
                self._chain_keys.pop(chainlet_id, None)
            try:
                await self.runtime.release_deployment(deployment_id)
            except Exception:
                log.exception("releasing deployment %s failed", deployment_id)

    def _at_rest(self, g: ChainletGlance, replicas: list[ReplicaState]) -> bool:
        """ACTIVE, wanting exactly what runs, all of it ready, and seen before (its shape is
        known for draining): nothing for this tick to do."""
        return (
            g.status == S.ACTIVE
            and g.desired_state == "ACTIVE"
            and g.desired_replicas == g.ready_replicas == len(replicas)
            and all(r.phase == ReplicaPhase.READY for r in replicas)
            and g.chainlet_id in self._shape
        )

    async def _stop(self, replica_id: str) -> None:
        try:
            await self.runtime.stop_replica(replica_id)
        except Exception:
            log.exception("stopping replica %s failed", replica_id)

    async def _reconcile(
        self, w: ChainletWork, replicas: list[ReplicaState]
    ) -> ChainletUpdate | None:
        update = ChainletUpdate(chainlet_id=w.chainlet_id, expected_status=w.status)
        live = [r for r in replicas if r.phase != ReplicaPhase.STOPPING]

        if w.desired_state == "INACTIVE" or w.status == S.DEACTIVATING:
            self._cancel_build(w.chainlet_id)
            for r in live:
                await self._stop(r.replica_id)
            self._releasable.add(w.deployment_id)
            if w.status == S.DEACTIVATING and not replicas:
                update.events.append((Event.STOPPED, None))
            return self._finish(update, w, ready=0)

        if w.status == S.BUILDING:
            return self._reconcile_build(w, update)

        if w.status in TERMINAL_FAILURES or w.status == S.INACTIVE:
            for r in live:
                await self._stop(r.replica_id)
            return self._finish(update, w, ready=0)

        if w.patch_kind is not None or any(r.revision != w.code_revision for r in live):
            ready = await self._replace(w, update, live)
            self._status_events(w, update, live, ready)
            return self._finish(update, w, ready=ready)

        failed = [r for r in live if r.phase == ReplicaPhase.FAILED]
        for r in failed:
            await self._stop(r.replica_id)
            self._failures[w.chainlet_id] += 1
            attempts = self._failures[w.chainlet_id]
            self._retry_at[w.chainlet_id] = time.monotonic() + min(0.5 * 2 ** (attempts - 1), 30)
            update.log_lines.append(
                (f"replica {r.replica_id} failed: {r.message or 'unknown reason'}", "ERROR", None)
            )
        live = [r for r in live if r.phase != ReplicaPhase.FAILED]
        ready = sum(1 for r in live if r.phase == ReplicaPhase.READY)

        if failed and w.status == S.DEPLOYING:
            if self._failures[w.chainlet_id] >= MAX_START_ATTEMPTS:
                for r in live:
                    await self._stop(r.replica_id)
                message = failed[-1].message or "replica failed to start"
                update.events.append((Event.DEPLOY_FAILED, message))
                return self._finish(update, w, ready=0)
        elif failed and w.status in (S.ACTIVE, S.UPDATING):
            update.events.append((Event.REPLICA_LOST, failed[-1].message))
            return self._finish(update, w, ready=ready)

        await self._scale(w, live)
        self._status_events(w, update, live, ready)
        return self._finish(update, w, ready=ready)

    def _status_events(
        self, w: ChainletWork, update: ChainletUpdate, live: list[ReplicaState], ready: int
    ) -> None:
        if w.desired_replicas > 0 and w.status == S.SCALED_TO_ZERO:
            update.events.append((Event.WAKE, None))
        elif (
            w.desired_replicas > 0
            and ready >= w.desired_replicas
            and w.status in _READY_BECOMES_ACTIVE
        ):
            self._failures.pop(w.chainlet_id, None)
            update.events.append((Event.REPLICAS_READY, None))
        elif (
            w.desired_replicas == 0
            and not live
            and w.status in (S.ACTIVE, S.UNHEALTHY, S.WAKING_UP)
        ):
            update.events.append((Event.SCALE_TO_ZERO, None))

    def _finish(
        self, update: ChainletUpdate, w: ChainletWork, *, ready: int
    ) -> ChainletUpdate | None:
        if self._ready_seen.get(w.chainlet_id) != ready:
            self._ready_seen[w.chainlet_id] = ready
            self._ready_version += 1
        if ready != w.ready_replicas:
            update.ready_replicas = ready
        if update.events or update.ready_replicas is not None or update.log_lines:
            return update
        return None

    async def _scale(self, w: ChainletWork, live: list[ReplicaState]) -> None:
        missing = w.desired_replicas - len(live)
        if missing > 0 and time.monotonic() >= self._retry_at.get(w.chainlet_id, 0.0):
            for _ in range(missing):
                await self.runtime.start_replica(await self._replica_spec(w))
        elif missing < 0:
            observed = self._observed
            if (
                w.desired_replicas == 0
                and observed is not None
                and self._callee_in_use(w.deployment_id, w.name, observed)
            ):
                return
            # Stop the least useful first: replicas still starting, then the newest ready ones.
            order = sorted(live, key=lambda r: r.phase == ReplicaPhase.READY)
            for r in order[:-missing]:
                await self._stop(r.replica_id)

    async def _replica_spec(self, w: ChainletWork) -> ReplicaSpec:
        it = self.core.catalogue.get(w.instance_type_id)
        secret_values = (
            await asyncio.to_thread(
                secrets.values_for, self.core, w.workspace_id, list(w.secret_keys)
            )
            if w.secret_keys
            else {}
        )
        return ReplicaSpec(
            replica_id=new_replica_id(),
            chainlet_id=w.chainlet_id,
            chainlet_name=w.name,
            deployment_id=w.deployment_id,
            chain_id=w.chain_id,
            instance_type={
                "id": w.instance_type_id,
                "millicpu_limit": it.millicpu_limit if it else None,
                "memory_limit_mib": it.memory_limit_mib if it else None,
                "gpu_count": it.gpu_count if it else 0,
                "gpu_type": it.gpu_type if it else None,
            },
            compute=w.compute,
            artifact_path=self._artifact(w),
            entrypoint=w.is_entrypoint,
            dependencies=w.dependencies,
            source_file=w.source_file,
            entrypoint_name=w.entrypoint_name,
            pip_requirements=w.pip_requirements,
            secrets=secret_values,
            secret_keys=w.secret_keys,
            environment=w.environment,
            service_urls={
                name: f"{self.gateway_url}/internal/chainlets/{w.sibling_ids[name]}/predict"
                for name in w.dependencies
                if name in w.sibling_ids
            },
            chain_api_key=await self._chain_key(w) if w.dependencies else "",
            predict_concurrency=int(w.compute.get("predict_concurrency") or 1),
            image=w.image,
            revision=w.code_revision,
            development=w.development,
        )

    async def _issue_chain_keys(self, work: list[ChainletWork], observed: Observed) -> None:
        """The chain keys this tick's starts will need, issued in one write: one write per
        chainlet took a restart of 20,000 running chainlets 15 s longer (docs/bench.md)."""
        needed = [
            (w.deployment_id, w.chainlet_id)
            for w in work
            if w.dependencies
            and w.chainlet_id not in self._chain_keys
            and w.desired_replicas > len(observed.of_chainlet(w.chainlet_id))
        ]
        for start in range(0, len(needed), _KEYS_PER_WRITE):
            chunk = needed[start : start + _KEYS_PER_WRITE]
            issued = await asyncio.to_thread(chainlet_credentials.issue_many, self.core, chunk)
            self._chain_keys.update(issued)

    async def _chain_key(self, w: ChainletWork) -> str:
        """The chainlet's chain key (services/chainlet_credentials.py), issued on first use."""
        key = self._chain_keys.get(w.chainlet_id)
        if key is None:
            key = await asyncio.to_thread(
                chainlet_credentials.issue, self.core, w.deployment_id, w.chainlet_id
            )
            self._chain_keys[w.chainlet_id] = key
        return key
