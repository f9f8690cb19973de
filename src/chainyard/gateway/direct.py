"""What replicas need to call their dependencies' replicas directly (docs/data-plane.md,
"Dependency calls straight to a replica"): the dependency's ready replicas, long-polled, and the
demand of the calls that no longer cross the gateway.

A poll is authenticated by the calling chainlet's chain key, which opens only the chainlets of
its own deployment that it declared as dependencies (services/chainlet_credentials.py): the
answer hands out those replicas' credentials, and nothing of another deployment's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

# A poll is held at most this long; a caller asks for less while its calls run.
MAX_WAIT = 30.0
# A caller's report counts this long past the wait it asked for: it polls again well before.
REPORT_GRACE = 5.0
# What one caller may report for one dependency: more than any replica runs at once.
MAX_LOAD = 10_000.0
MAX_CALLERS = 100_000


def long_polled(method: str, path: str) -> bool:
    """The poll's requests, which the server's request count leaves out (api/in_flight.py)."""
    return (
        method == "GET" and path.startswith("/internal/chainlets/") and path.endswith("/replicas")
    )


def version(peers: list[tuple[str, str]]) -> str:
    """A short digest of the ready replicas (address, credential): equal answers, equal
    versions, whatever else moved in the replica table meanwhile."""
    digest = hashlib.sha256(json.dumps(sorted(peers)).encode()).hexdigest()
    return digest[:20] if peers else ""


class DirectDemand:
    """Calls in flight straight from replicas to a chainlet's replicas, as their callers
    report them on each poll: chainlet id -> caller -> (calls, counts until)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._reports: dict[str, dict[str, tuple[float, float]]] = {}
        self._count = 0

    def report(self, chainlet_id: str, caller: str, load: float, *, wait: float) -> None:
        load = min(max(load, 0.0), MAX_LOAD)
        callers = self._reports.setdefault(chainlet_id, {})
        if load == 0:
            if callers.pop(caller, None) is not None:
                self._count -= 1
            if not callers:
                del self._reports[chainlet_id]
            return
        if caller not in callers:
            if self._count >= MAX_CALLERS:
                self.totals()  # forget what expired first
                if self._count >= MAX_CALLERS:
                    return
            self._count += 1
        callers[caller] = (load, self._clock() + wait + REPORT_GRACE)

    def totals(self) -> dict[str, float]:
        now = self._clock()
        out: dict[str, float] = {}
        for chainlet_id in list(self._reports):
            callers = self._reports[chainlet_id]
            for caller, (load, until) in list(callers.items()):
                if until < now:
                    del callers[caller]
                    self._count -= 1
                else:
                    out[chainlet_id] = out.get(chainlet_id, 0.0) + load
            if not callers:
                del self._reports[chainlet_id]
        return out


def parse_wait(value: str | None) -> float:
    try:
        wait = float(value) if value else MAX_WAIT
    except ValueError:
        wait = MAX_WAIT
    return min(max(wait, 0.0), MAX_WAIT) if wait == wait else MAX_WAIT


def parse_load(value: str | None) -> float:
    try:
        load = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return load if 0.0 <= load <= MAX_LOAD else 0.0


async def peers_changed(
    ready: Callable[[], list[tuple[str, str]]],
    generation: Callable[[], int],
    changed: Callable[[int], Any],
    since: str,
    wait: float,
    stopping: asyncio.Event | None = None,
) -> tuple[list[tuple[str, str]], str]:
    """The ready replicas and their version, once the version differs from `since`, `wait`
    seconds have passed, or the server is stopping: woken by each change of the replica table,
    never by a timer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        seen = generation()
        peers = ready()
        current = version(peers)
        remaining = deadline - loop.time()
        if current != since or remaining <= 0 or (stopping is not None and stopping.is_set()):
            return peers, current
        change = asyncio.ensure_future(changed(seen))
        waits: set[asyncio.Future[Any]] = {change}
        if stopping is not None:
            waits.add(asyncio.ensure_future(stopping.wait()))
        try:
            done, _ = await asyncio.wait(
                waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()
        if change not in done:
            peers = ready()
            return peers, version(peers)
