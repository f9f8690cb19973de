"""What the runtime reports, indexed once per change.

A tick needs the replicas per chainlet, which chainlets have replicas not yet ready, and which
still have live ones. With tens of thousands of replicas, building these every tick would cost
the API's event loop a noticeable slice of each second; a backend returns the same list while
nothing changed, and the index is reused then.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from chainyard.runtime.base import ReplicaPhase, ReplicaState


@dataclasses.dataclass(frozen=True)
class Observed:
    snapshot: list[ReplicaState]
    by_chainlet: dict[str, list[ReplicaState]]
    # Chainlets with a replica that is not READY (starting, failed, stopping).
    unsettled: frozenset[str]
    # Chainlets with a replica that is not stopping.
    live: frozenset[str]
    deployments: frozenset[str]

    @classmethod
    def of(cls, snapshot: list[ReplicaState]) -> Observed:
        by_chainlet: dict[str, list[ReplicaState]] = defaultdict(list)
        unsettled: set[str] = set()
        live: set[str] = set()
        deployments: set[str] = set()
        for replica in snapshot:
            by_chainlet[replica.chainlet_id].append(replica)
            deployments.add(replica.deployment_id)
            if replica.phase != ReplicaPhase.READY:
                unsettled.add(replica.chainlet_id)
            if replica.phase != ReplicaPhase.STOPPING:
                live.add(replica.chainlet_id)
        return cls(
            snapshot,
            dict(by_chainlet),
            frozenset(unsettled),
            frozenset(live),
            frozenset(deployments),
        )

    def of_chainlet(self, chainlet_id: str) -> list[ReplicaState]:
        return self.by_chainlet.get(chainlet_id, [])
