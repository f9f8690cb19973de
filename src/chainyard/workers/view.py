"""What a worker's gateway routes to: the controller's replica view, pushed over the channel.

The controller sends the whole view at each of its generations (the membership's: the runtime's
replicas on the leader, the published endpoints on a follower), and the worker keeps the
controller's generation number, so that every worker of a server names one view alike. A request
waiting for a replica awaits `changed`, which the next message wakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from chainyard.runtime.base import ReplicaPhase, ReplicaState
from chainyard.runtime.replica_table import wait_past


def encode(states: Sequence[ReplicaState]) -> list[list[Any]]:
    return [
        [
            s.replica_id,
            s.chainlet_id,
            s.deployment_id,
            s.phase.value,
            s.address,
            s.message,
            s.credential,
        ]
        for s in states
    ]


def decode(rows: list[list[Any]]) -> tuple[ReplicaState, ...]:
    return tuple(
        ReplicaState(
            replica_id=row[0],
            chainlet_id=row[1],
            deployment_id=row[2],
            phase=ReplicaPhase(row[3]),
            address=row[4],
            message=row[5],
            credential=row[6],
        )
        for row in rows
    )


class ChannelView:
    def __init__(self) -> None:
        self._snapshot: tuple[ReplicaState, ...] = ()
        self._generation = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self.received = asyncio.Event()

    def replicas(self) -> Sequence[ReplicaState]:
        return self._snapshot

    @property
    def generation(self) -> int:
        return self._generation

    async def changed(self, since: int) -> int:
        return await wait_past(since, lambda: self._generation, self._waiters)

    def publish(self, generation: int, rows: list[list[Any]]) -> None:
        if generation == self._generation and self.received.is_set():
            return
        previous = {s.replica_id: s for s in self._snapshot}
        # Unchanged replicas keep their objects, as the runtimes' tables do.
        self._snapshot = tuple(
            p if (p := previous.get(s.replica_id)) == s else s for s in decode(rows)
        )
        self._generation = generation
        self.received.set()
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
