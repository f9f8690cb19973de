"""A replica's view of one dependency's ready replicas, and the choice of one per call.

The table is fed by the gateway (chains/direct_calls.py polls it) and read by the dependency's
stub on every call: the least-loaded replica by the calls this process has in flight to each
address. A replica that refused a connection is left out until the next table. Calls run on the
replica's event loop and, for a sync chainlet, in worker threads: every method takes the lock.

The table also measures what the autoscaler needs of the calls that bypass the gateway: how many
were in flight on average since the last report (`take_report`).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence

# The replica's wire format (chains/replica_app.py).
PREDICT_PATH = "/v1/models/model:predict"


@dataclasses.dataclass(frozen=True)
class Peer:
    """A ready replica of the dependency: where it listens and the credential it wants."""

    address: str
    key: str = dataclasses.field(repr=False)

    @property
    def predict_url(self) -> str:
        return f"{self.address}{PREDICT_PATH}"


class Lease:
    """One call's hold on a peer; released once, whichever way the call ends."""

    __slots__ = ("_table", "done", "peer")

    def __init__(self, table: DependencyTable, peer: Peer) -> None:
        self._table = table
        self.peer = peer
        self.done = False

    def release(self) -> None:
        self._table.release(self)

    def refused(self) -> None:
        """The peer refused the connection: nothing was sent; leave it out until the next
        table."""
        self._table.refused(self)


class DependencyTable:
    def __init__(
        self, name: str, *, clock: Callable[[], float] = time.monotonic, enabled: bool = True
    ) -> None:
        self.name = name
        self.enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: tuple[Peer, ...] = ()
        self.version = ""
        self._bad: set[str] = set()
        self._load: collections.Counter[str] = collections.Counter()
        self._turn = 0
        # Calls in flight to peers (not through the gateway), integrated over time for reports.
        self._in_flight = 0
        self._area = 0.0
        self._since = clock()
        self._changed_at = self._since
        # Called (outside the lock) when a call starts while the last report said idle, so the
        # poller reports at once rather than at the end of an idle long-poll.
        self.on_busy: Callable[[], None] = lambda: None
        self._reported_idle = True

    # -- the gateway's answers --------------------------------------------------------------

    def update(self, peers: Iterable[Peer], version: str) -> None:
        with self._lock:
            self._peers = tuple(peers)
            self.version = version
            self._bad.clear()

    @property
    def peers(self) -> Sequence[Peer]:
        return self._peers

    # -- calls -------------------------------------------------------------------------------

    def pick(self) -> Lease | None:
        """The least-loaded peer not known bad, counted as one more call on it; None when there
        is none (the call goes through the gateway, which wakes a dependency at zero)."""
        if not self.enabled or not self._peers:
            return None
        wake = False
        with self._lock:
            usable = [p for p in self._peers if p.address not in self._bad]
            if not usable:
                return None
            # Rotating the start spreads calls among peers that are equally loaded.
            self._turn = (self._turn + 1) % len(usable)
            ordered = usable[self._turn :] + usable[: self._turn]
            peer = min(ordered, key=lambda p: self._load[p.address])
            self._load[peer.address] += 1
            self._account(+1)
            if self._reported_idle:
                self._reported_idle = False
                wake = True
        if wake:
            self.on_busy()
        return Lease(self, peer)

    def release(self, lease: Lease) -> None:
        with self._lock:
            if lease.done:
                return
            lease.done = True
            address = lease.peer.address
            self._load[address] -= 1
            if self._load[address] <= 0:
                del self._load[address]
            self._account(-1)

    def refused(self, lease: Lease) -> None:
        with self._lock:
            self._bad.add(lease.peer.address)
        self.release(lease)

    def load(self, address: str) -> int:
        with self._lock:
            return self._load[address]

    def _account(self, delta: int) -> None:
        now = self._clock()
        self._area += self._in_flight * (now - self._changed_at)
        self._changed_at = now
        self._in_flight += delta

    # -- demand, for the gateway's autoscaler ------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def take_report(self) -> float:
        """Calls in flight to peers since the last report: the time-weighted mean, or the count
        now when that is more (a burst that has just begun)."""
        with self._lock:
            now = self._clock()
            area = self._area + self._in_flight * (now - self._changed_at)
            elapsed = now - self._since
            mean = area / elapsed if elapsed > 0 else float(self._in_flight)
            self._area = 0.0
            self._since = self._changed_at = now
            value = max(mean, float(self._in_flight))
            self._reported_idle = value == 0
            return value
