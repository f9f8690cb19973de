"""The replica table: what runs, as one immutable snapshot with a generation number.

Every runtime (local, Ray, simulated) and the cluster's follower view keep one. Consumers (the
gateway's index, the reconciler, the live sampler, the endpoints the leader publishes) compare
`generation` with the one they last saw and redo their work only when it moved; a coroutine
that needs something to change (a request waiting for a ready replica) awaits `changed(since)`,
which a publication wakes, rather than looking again on a timer.

How a runtime feeds it. The process runtimes keep mutable records per replica and change their
fields in many places (health verdicts, host events, stops). Rather than publish at each of them,
a record is a `TrackedRecord`: setting a field that shows in `ReplicaState` marks the table
dirty, as do adding and removing records (`TrackedRecords`). A dirty table rebuilds its snapshot
from the runtime (`compute`) once, soon after, on the event loop (`call_soon`, so that the
several fields one change sets make one generation), or at once when someone reads it first.
The rebuilt snapshot is compared by value with the previous one: only a real difference makes a
new generation, and states that did not change keep their previous objects, so consumers that
recognise unchanged replicas by identity (reconciler/observed.py) redo only what changed.

A table that is never dirty costs nothing to read: `snapshot` is the same tuple object until the
generation moves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from chainyard.runtime.base import ReplicaState

Snapshot = tuple["ReplicaState", ...]


class ReplicaTable:
    def __init__(
        self,
        compute: Callable[[], Iterable[ReplicaState]] | None = None,
        *,
        compare: bool = True,
    ) -> None:
        # Builds the snapshot from the runtime's own records, when the table is dirty.
        self._compute = compute
        # False: every rebuild is taken as a change, as is (the simulated runtime, which marks
        # itself dirty only on a change and keeps settled states as the same objects).
        self._compare = compare
        self._snapshot: Snapshot = ()
        self._generation = 0
        self._dirty = False
        # The loop a rebuild is scheduled on (None: none scheduled).
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._listeners: list[Callable[[Snapshot], None]] = []

    @property
    def snapshot(self) -> Snapshot:
        self.refresh()
        return self._snapshot

    @property
    def generation(self) -> int:
        self.refresh()
        return self._generation

    def touch(self) -> None:
        """Something the snapshot shows may have changed: rebuild it soon (on the running loop,
        which also wakes the waiters) or when it is next read."""
        self._dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: the next read rebuilds it
        # A rebuild scheduled on a loop that has since ended never runs: schedule on this one.
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self.refresh)

    def refresh(self) -> None:
        self._scheduled_on = None
        if self._dirty and self._compute is not None:
            self._dirty = False
            self.publish(self._compute())

    def publish(self, states: Iterable[ReplicaState]) -> bool:
        """Makes `states` the snapshot; True when that is a new generation."""
        new = tuple(states)
        if new is self._snapshot:
            return False
        if self._compare:
            if new == self._snapshot:
                return False
            previous = {s.replica_id: s for s in self._snapshot}
            new = tuple(_same_or(previous.get(s.replica_id), s) for s in new)
        self._snapshot = new
        self._generation += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for listener in self._listeners:
            listener(new)
        return True

    def listen(self, listener: Callable[[Snapshot], None]) -> None:
        """Calls `listener(snapshot)` at each new generation."""
        self._listeners.append(listener)

    async def changed(self, since: int) -> int:
        """Returns the generation once it differs from `since` (at once if it does already)."""
        return await wait_past(since, lambda: self.generation, self._waiters)


def _same_or(previous: ReplicaState | None, state: ReplicaState) -> ReplicaState:
    return previous if previous is not None and previous == state else state


# Fields of the runtimes' replica records that `ReplicaState` shows (directly, or as the
# address). A change to any other field (pids, timestamps) makes no new generation.
VISIBLE_FIELDS = frozenset({"phase", "port", "ip", "message", "credential"})


class TrackedRecord:
    """A runtime's mutable replica record whose visible fields tell its table when they change
    (set `table` once the record is in the runtime's `TrackedRecords`)."""

    _visible: ClassVar[frozenset[str]] = VISIBLE_FIELDS

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._visible:
            table: ReplicaTable | None = self.__dict__.get("_table")
            if table is not None and self.__dict__.get(name) != value:
                table.touch()
        object.__setattr__(self, name, value)


R = TypeVar("R", bound=TrackedRecord)


class TrackedRecords(dict[str, R]):
    """Replica id -> record: adding or removing one tells the table, and records added here
    tell it about their own changes."""

    def __init__(self, table: ReplicaTable) -> None:
        super().__init__()
        self.table = table

    def __setitem__(self, key: str, record: R) -> None:
        object.__setattr__(record, "_table", self.table)
        super().__setitem__(key, record)
        self.table.touch()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.table.touch()

    def pop(self, key: str, *default: Any) -> Any:
        with contextlib.suppress(KeyError):
            record = super().pop(key)
            self.table.touch()
            return record
        if default:
            return default[0]
        raise KeyError(key)

    def clear(self) -> None:
        super().clear()
        self.table.touch()

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("add records one by one, so the table sees them")

    def setdefault(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("add records one by one, so the table sees them")


async def wait_past(
    since: int, generation: Callable[[], int], waiters: set[asyncio.Future[None]]
) -> int:
    """The generation once it differs from `since`: each round waits on a future put in
    `waiters`, which whoever makes a new generation resolves (no timer)."""
    while (current := generation()) == since:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.add(waiter)
        try:
            await waiter
        finally:
            waiters.discard(waiter)
    return current
