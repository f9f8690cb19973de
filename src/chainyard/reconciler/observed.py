"""What the runtime reports, indexed once per change.

A tick needs the replicas per chainlet, which chainlets have replicas not yet ready, and which
still have live ones. With tens of thousands of replicas, building these every tick would cost
the server a noticeable slice of each second; while the runtime's replica table keeps its
generation (runtime/replica_table.py) the index is reused. When it did change, `Observed.after`
rebuilds only the chainlets whose replicas changed, recognising unchanged replicas as the very
same state objects (replica tables keep the objects of unchanged replicas, so a promotion's tick
costs its own chainlets rather than the whole fleet).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Sequence

from chainyard.runtime.base import ReplicaPhase, ReplicaState

# Past this share of replicas changed, indexing from scratch is as cheap.
_REBUILD_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Observed:
    snapshot: Sequence[ReplicaState]
    by_chainlet: dict[str, list[ReplicaState]]
    # Chainlets with a replica that is not READY (starting, failed, stopping).
    unsettled: frozenset[str]
    # Chainlets with a replica that is not stopping.
    live: frozenset[str]
    deployments: frozenset[str]
    # id() of each state object in `snapshot` -> the object (held, so the ids stay its own),
    # and replicas per deployment: what `after` needs to apply a change.
    by_object: dict[int, ReplicaState] = dataclasses.field(repr=False, compare=False)
    per_deployment: Counter[str] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def of(cls, snapshot: Sequence[ReplicaState]) -> Observed:
        by_chainlet: dict[str, list[ReplicaState]] = defaultdict(list)
        for replica in snapshot:
            by_chainlet[replica.chainlet_id].append(replica)
        per_deployment = Counter(r.deployment_id for r in snapshot)
        return cls(
            snapshot,
            dict(by_chainlet),
            frozenset(r.chainlet_id for r in snapshot if r.phase != ReplicaPhase.READY),
            frozenset(r.chainlet_id for r in snapshot if r.phase != ReplicaPhase.STOPPING),
            frozenset(per_deployment),
            dict(zip(map(id, snapshot), snapshot, strict=True)),
            per_deployment,
        )

    @classmethod
    def after(cls, previous: Observed | None, snapshot: Sequence[ReplicaState]) -> Observed:
        """The index of `snapshot`, the same as `of(snapshot)`, built from `previous` by
        changing only the chainlets whose replicas changed."""
        if previous is None:
            return cls.of(snapshot)
        by_object = dict(zip(map(id, snapshot), snapshot, strict=True))
        gone = [previous.by_object[i] for i in previous.by_object.keys() - by_object.keys()]
        new = [by_object[i] for i in by_object.keys() - previous.by_object.keys()]
        if len(gone) + len(new) > _REBUILD_SHARE * max(len(snapshot), 1):
            return cls.of(snapshot)
        gone_ids = {id(r) for r in gone}
        touched = {r.chainlet_id for r in gone} | {r.chainlet_id for r in new}
        by_chainlet = dict(previous.by_chainlet)
        arrived: dict[str, list[ReplicaState]] = defaultdict(list)
        for replica in new:
            arrived[replica.chainlet_id].append(replica)
        for chainlet_id in touched:
            kept = [r for r in by_chainlet.get(chainlet_id, ()) if id(r) not in gone_ids]
            kept.extend(arrived.get(chainlet_id, ()))
            if kept:
                by_chainlet[chainlet_id] = kept
            else:
                by_chainlet.pop(chainlet_id, None)
        unsettled = set(previous.unsettled) - touched
        live = set(previous.live) - touched
        for chainlet_id in touched:
            replicas = by_chainlet.get(chainlet_id, ())
            if any(r.phase != ReplicaPhase.READY for r in replicas):
                unsettled.add(chainlet_id)
            if any(r.phase != ReplicaPhase.STOPPING for r in replicas):
                live.add(chainlet_id)
        per_deployment = previous.per_deployment.copy()
        per_deployment.subtract(r.deployment_id for r in gone)
        per_deployment.update(r.deployment_id for r in new)
        per_deployment = +per_deployment  # drops deployments left with no replica
        return cls(
            snapshot,
            by_chainlet,
            frozenset(unsettled),
            frozenset(live),
            frozenset(per_deployment),
            by_object,
            per_deployment,
        )

    def of_chainlet(self, chainlet_id: str) -> list[ReplicaState]:
        return self.by_chainlet.get(chainlet_id, [])
