"""This server's part in a group of servers on one database.

Every server serves the API and inference. Exactly one, the holder of the `control-loops` lease,
runs the runtime's replicas, the reconciler and the autoscaler. It renews the lease every second;
a server that cannot renew stops its loops and replicas before the lease runs out, and another
takes the lease once it has expired (TTL 5 s by default, so a killed leader is replaced within
about 6 s).

Other servers route inference to the leader's replicas through the endpoints it publishes in
the store, and report the requests their gateways hold so that the leader's autoscaler sees the
whole demand. A server alone (the usual case) publishes nothing.

What inference routes to keeps the replica table's contract (runtime/replica_table.py) across
roles: `replicas()` is the runtime's snapshot on the leader and the published endpoints on
other servers, the same object while `generation` stays, and the generation moves at each
change of either source and at each change of role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from chainyard.runtime.base import ReplicaPhase, ReplicaState, RuntimeBackend
from chainyard.runtime.replica_table import ReplicaTable, Snapshot, wait_past
from chainyard.services import cluster
from chainyard.services.context import Core

log = logging.getLogger("chainyard.cluster")

# A follower reports its demand at least this often, which also tells the leader it exists.
HEARTBEAT_SECONDS = 2.0
# Followers whose report is older than this are gone.
PEER_STALE_SECONDS = 10.0


class Membership:
    def __init__(
        self,
        core: Core,
        backend: RuntimeBackend,
        *,
        server_id: str,
        local_demand: Callable[[], Mapping[str, float]],
        on_gain: Callable[[], Awaitable[None]],
        on_loss: Callable[[], Awaitable[None]],
        ttl: float = 5.0,
        period: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.backend = backend
        self.server_id = server_id
        self.local_demand = local_demand
        self.on_gain = on_gain
        self.on_loss = on_loss
        self.ttl = ttl
        self.period = period
        self.clock = clock
        self.leader = False
        self._valid_until = 0.0
        self._task: asyncio.Task[None] | None = None
        # The endpoints the leader published, as this server (a follower) read them last.
        self._endpoints = ReplicaTable()
        self._last_read: list[cluster.Endpoint] | None = None
        # What inference sees: (role, the source's generation) it was taken at, the snapshot,
        # this view's own generation, and the coroutines waiting for it to move.
        self._view_of: tuple[bool, int] | None = None
        self._view: Sequence[ReplicaState] = ()
        self._generation = 0
        self._waiters: set[asyncio.Future[None]] = set()
        backend.replica_table.listen(self._source_changed)
        self._endpoints.listen(self._source_changed)
        # The runtime's generation the endpoints were last published at (leader only).
        self._published_generation: int | None = None
        # Sealed credentials of published replicas -> plain (cluster.read_endpoints).
        self._opened: dict[bytes, str] = {}
        self._published: dict[str, cluster.Endpoint] | None = None
        self._peers_demand: dict[str, float] = {}
        self._reported: tuple[dict[str, float], float] | None = None
        self._ticks = 0

    # -- what the rest of the server asks ---------------------------------------------------

    def replicas(self) -> Sequence[ReplicaState]:
        """The replicas inference may use: the runtime's on the leader, the published ones on
        other servers."""
        self._sync()
        return self._view

    @property
    def generation(self) -> int:
        self._sync()
        return self._generation

    async def changed(self, since: int) -> int:
        """The generation once it differs from `since`, woken by either source or a change of
        role, not by a timer."""
        return await wait_past(since, lambda: self.generation, self._waiters)

    def _sync(self) -> None:
        source = self.backend if self.leader else self._endpoints
        seen = (self.leader, source.generation)
        if seen != self._view_of:
            self._view = self.backend.replicas() if self.leader else self._endpoints.snapshot
            # Read again: reading the runtime's replicas may have brought its table up to date.
            self._view_of = (self.leader, source.generation)
            self._generation += 1

    def _source_changed(self, _snapshot: Snapshot | None = None) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def demand(self) -> dict[str, float]:
        """This server's gateway demand plus what the other servers reported (leader only)."""
        total = {k: float(v) for k, v in self.local_demand().items()}
        for chainlet_id, value in self._peers_demand.items():
            total[chainlet_id] = total.get(chainlet_id, 0.0) + value
        return total

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Tries for the lease once before serving, so that a lone server starts its loops at
        once; then keeps renewing (or waiting for it) in the background."""
        await self._step()
        self._task = asyncio.create_task(self._run(), name="chainyard-membership")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.leader:
            await self._lose("shutting down")
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    cluster.release, self.core, cluster.CONTROL_LOOPS, self.server_id
                )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster step failed")

    async def _step(self) -> None:
        now = self.clock()
        renew = self._ticks % max(1, round(1.0 / self.period)) == 0 or not self.leader
        self._ticks += 1
        if renew:
            try:
                held = await asyncio.to_thread(
                    cluster.acquire,
                    self.core,
                    cluster.CONTROL_LOOPS,
                    self.server_id,
                    ttl=self.ttl,
                    now=now,
                )
            except Exception:
                log.exception("cannot reach the store to renew the control-loops lease")
                held = None
            if held:
                # Stop a second before the lease runs out, so that no other server can take
                # over while this one still acts.
                self._valid_until = now + self.ttl - 1.0
                if not self.leader:
                    await self._gain()
            elif self.leader and (held is False or self.clock() >= self._valid_until):
                await self._lose("the lease went to another server" if held is False else "")
        if self.leader:
            await self._lead(now)
        else:
            await self._follow(now)

    async def _gain(self) -> None:
        log.info("server %s now runs the control loops", self.server_id)
        self.leader = True
        self._published = None
        self._published_generation = None
        self._source_changed()
        await self.on_gain()

    async def _lose(self, why: str) -> None:
        log.warning(
            "server %s stops its control loops%s", self.server_id, f": {why}" if why else ""
        )
        self.leader = False
        self._source_changed()
        await self.on_loss()

    # -- roles ----------------------------------------------------------------------------

    async def _lead(self, now: float) -> None:
        self._peers_demand = await asyncio.to_thread(
            cluster.others_demand, self.core, self.server_id, fresh_after=now - PEER_STALE_SECONDS
        )
        if not self._peers_demand and not await asyncio.to_thread(self._has_peers, now):
            self._published = None
            self._published_generation = None
            return
        generation = self.backend.generation
        if generation == self._published_generation:
            return  # nothing changed since it was published
        current = {
            r.replica_id: cluster.Endpoint(
                r.replica_id, r.chainlet_id, r.deployment_id, r.phase.value, r.address, r.credential
            )
            for r in self.backend.replicas()
        }
        if current != self._published:
            await asyncio.to_thread(
                cluster.publish_endpoints, self.core, self.server_id, current.values()
            )
            self._published = current
        self._published_generation = generation

    def _has_peers(self, now: float) -> bool:
        # Followers report demand (an empty report too) every HEARTBEAT_SECONDS.
        return cluster.has_peers(self.core, self.server_id, fresh_after=now - PEER_STALE_SECONDS)

    async def _follow(self, now: float) -> None:
        endpoints = await asyncio.to_thread(cluster.read_endpoints, self.core, self._opened)
        if endpoints == self._last_read:
            return await self._report(now)
        self._last_read = endpoints
        # A new generation only when something changed: the router indexes it once per change.
        self._endpoints.publish(
            ReplicaState(
                replica_id=e.replica_id,
                chainlet_id=e.chainlet_id,
                deployment_id=e.deployment_id,
                phase=ReplicaPhase(e.phase),
                address=e.address,
                credential=e.credential,
            )
            for e in endpoints
        )
        await self._report(now)

    async def _report(self, now: float) -> None:
        demand = {k: float(v) for k, v in self.local_demand().items() if v}
        last = self._reported
        if last is None or last[0] != demand or now - last[1] >= HEARTBEAT_SECONDS:
            await asyncio.to_thread(
                cluster.publish_demand, self.core, self.server_id, demand, now=now
            )
            self._reported = (demand, now)
