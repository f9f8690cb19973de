"""Replacing a chainlet's replicas with ones on newer code (a development deployment's patch,
docs/development.md), on any runtime: the new revision's replicas start beside the old, which
serve until the new are ready and then stop. A new revision whose replica fails is given up; the
old replicas never stopped, so the last good code keeps serving.

`plan` decides per chainlet from what runs; `Patches` remembers, across ticks, the builds a
rebuild needs and each patch's outcome, which the reconciler writes to the store.
"""

from __future__ import annotations

import dataclasses

from chainyard.runtime.base import ReplicaPhase, ReplicaState


@dataclasses.dataclass(frozen=True)
class Plan:
    # Replicas of the new revision to start now.
    start: int
    # Replicas of other revisions to stop now: the new ones are ready.
    stop: tuple[str, ...]
    # A replica of the new revision that failed: the revision is given up.
    failed: ReplicaState | None
    # Every replica runs the revision and enough of them are ready.
    done: bool
    # Ready replicas of any revision: what the gateway can send requests to.
    ready: int


def plan(revision: int, desired: int, live: list[ReplicaState]) -> Plan:
    """`live`: the chainlet's replicas that are not stopping."""
    current = [r for r in live if r.revision == revision]
    stale = [r for r in live if r.revision != revision]
    ready = sum(1 for r in live if r.phase == ReplicaPhase.READY)
    failed = next((r for r in current if r.phase == ReplicaPhase.FAILED), None)
    if failed is not None:
        return Plan(start=0, stop=(), failed=failed, done=False, ready=ready)
    current_ready = sum(1 for r in current if r.phase == ReplicaPhase.READY)
    if current_ready >= desired:
        # Requests already sent to the old ones finish: a stopping replica drains first.
        return Plan(
            start=0,
            stop=tuple(r.replica_id for r in stale),
            failed=None,
            done=True,
            ready=ready,
        )
    return Plan(start=max(0, desired - len(current)), stop=(), failed=None, done=False, ready=ready)


@dataclasses.dataclass
class Patches:
    """What the reconciler keeps about patches between ticks."""

    # (chainlet id, revision) whose rebuild succeeded.
    built: set[tuple[str, int]] = dataclasses.field(default_factory=set)
    # (deployment id, revision) -> whether each of its chainlets was seen done this tick.
    progress: dict[tuple[str, int], bool] = dataclasses.field(default_factory=dict)
    # (deployment id, revision) -> why it failed, to write to the store.
    failed: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)
    # Revisions given up and not yet undone in the store: never started again meanwhile.
    given_up: set[tuple[str, int]] = dataclasses.field(default_factory=set)

    def seen(self, deployment_id: str, revision: int, done: bool) -> None:
        key = (deployment_id, revision)
        self.progress[key] = self.progress.get(key, True) and done

    def fail(self, deployment_id: str, revision: int, message: str) -> None:
        self.failed.setdefault((deployment_id, revision), message)
        self.given_up.add((deployment_id, revision))

    def outcomes(self) -> tuple[list[tuple[str, int]], dict[tuple[str, int], str]]:
        """This tick's patches that are done, and those that failed; cleared for the next."""
        failed, self.failed = self.failed, {}
        done = [key for key, ok in self.progress.items() if ok and key not in failed]
        self.progress = {}
        return done, failed
