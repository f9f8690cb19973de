"""Where inference requests go, remembered: a request whose route is known reaches its replica
without touching the store.

A route is what `services.inference.resolve` answers for (workspace, chain, environment or
deployment or the development deployment): the deployment and the entrypoint chainlet. A
development push deletes the old development deployment and adds the new one in one transaction,
which drops the cache like any other write to these tables. It changes only when a chain, a
deployment or an environment row is written, and every such write transaction of this process
drops the whole cache once it has committed (`Database.watch`). A resolution that started before
such a commit may have read the old rows: it is not kept (the generation moved meanwhile).

Writes by another process (another server on the same database) are not seen here; a route
therefore is fresh for `ttl` seconds. A request that finds it older is still sent where it says,
and the route is looked up again in the background (`refresh`), so that no request waits for the
store once its route is known: another server's promotion reaches this one within `ttl` seconds
and one request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

# The tables whose rows decide a route (store/chains.py, store/environments.py).
ROUTING_TABLES = frozenset({"chains", "chain_deployments", "environments"})
DEFAULT_TTL_SECONDS = 2.0
_MAX_ROUTES = 100_000

V = TypeVar("V")


class RouteCache(Generic[V]):
    def __init__(
        self, *, ttl: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.generation = 0
        self._routes: dict[Hashable, tuple[float, V]] = {}
        self._refreshing: dict[Hashable, asyncio.Task[None]] = {}

    def get(self, key: Hashable) -> V | None:
        """The route, if it is fresh."""
        hit = self._routes.get(key)
        if hit is None or hit[0] < self.clock():
            return None
        return hit[1]

    def stale(self, key: Hashable) -> V | None:
        """The route, however old."""
        hit = self._routes.get(key)
        return None if hit is None else hit[1]

    def refresh(self, key: Hashable, resolve: Callable[[], Awaitable[V | None]]) -> None:
        """Looks the route up again in the background (once at a time per route): kept when
        `resolve` answers one, forgotten when it answers None or fails (the chain may be gone;
        the next request then resolves it itself and gets the error)."""
        if key in self._refreshing:
            return

        async def run() -> None:
            generation = self.generation
            try:
                value = await resolve()
            except Exception:
                value = None
            finally:
                self._refreshing.pop(key, None)
            if value is None:
                self._routes.pop(key, None)
            else:
                self.put(key, value, generation)

        self._refreshing[key] = asyncio.get_running_loop().create_task(run())

    def put(self, key: Hashable, value: V, generation: int) -> None:
        """Keeps `value`, resolved from rows read after `generation` was current, unless a
        routing change committed since."""
        # The dict is taken before the generation is compared: an invalidation between the two
        # replaces the dict, and this write lands in the one thrown away.
        routes = self._routes
        if generation != self.generation:
            return
        if len(routes) >= _MAX_ROUTES:
            routes.clear()
        routes[key] = (self.clock() + self.ttl, value)

    def invalidate(self) -> None:
        """Called from whichever thread committed the change: the generation moves first, so that
        a resolution in flight cannot put its old answer back after the clear."""
        self.generation += 1
        self._routes = {}

    def __len__(self) -> int:
        return len(self._routes)
