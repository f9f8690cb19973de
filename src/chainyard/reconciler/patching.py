"""The reconciler's part in applying a patch of a development deployment (docs/development.md):
moving a chainlet's replicas to its code revision (reconciler/revisions.py), the rebuild a
changed requirement needs first, and writing each patch's outcome. A part of `Reconciler`
(reconciler/loop.py), kept apart because nothing else in the loop knows about revisions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import TYPE_CHECKING

from chainyard.reconciler import revisions
from chainyard.runtime.base import (
    BuildResult,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
    RuntimeBackend,
)
from chainyard.services import patches
from chainyard.services.context import Core
from chainyard.services.reconciler_store import ChainletUpdate, ChainletWork


class Patching:
    core: Core
    runtime: RuntimeBackend
    _wake: asyncio.Event
    _builds: dict[str, asyncio.Task[BuildResult]]
    _failures: dict[str, int]
    _retry_at: dict[str, float]
    _patches: revisions.Patches
    _build_revision: dict[str, int]
    _replacing: bool
    _change_waiter: asyncio.Task[None] | None

    if TYPE_CHECKING:  # of Reconciler

        async def _stop(self, replica_id: str) -> None: ...
        async def _replica_spec(self, w: ChainletWork) -> ReplicaSpec: ...
        def _start_build(self, w: ChainletWork) -> None: ...
        def _build_outcome(self, w: ChainletWork, update: ChainletUpdate) -> BuildResult: ...
        def _cancel_build(self, chainlet_id: str) -> None: ...

    async def _replace(
        self, w: ChainletWork, update: ChainletUpdate, live: list[ReplicaState]
    ) -> int:
        """Moves the chainlet's replicas to its code revision (reconciler/revisions.py); returns
        how many replicas of any revision are ready."""
        ready = sum(1 for r in live if r.phase == ReplicaPhase.READY)
        revision = (w.deployment_id, w.code_revision)
        if revision in self._patches.given_up:
            # Undone in the store at the end of this tick (another chainlet of the patch failed
            # first), which writes the failure into every chainlet's logs (patches.fail).
            for r in live:
                if r.revision == w.code_revision:
                    await self._stop(r.replica_id)
            return ready
        if (
            w.patch_kind == "requirements"
            and (w.chainlet_id, w.code_revision) not in self._patches.built
        ):
            result = self._patch_build(w, update)
            if result is None:
                self._patches.seen(*revision, done=False)
                return ready
            if not result.ok:
                self._give_up(w, f"the rebuild failed: {result.message}")
                return ready
            self._patches.built.add((w.chainlet_id, w.code_revision))
        step = revisions.plan(w.code_revision, w.desired_replicas, live)
        if step.failed is not None:
            for r in live:
                if r.revision == w.code_revision:
                    await self._stop(r.replica_id)
            if w.patch_kind is not None:
                self._give_up(w, step.failed.message or "its replica failed to start")
            else:
                self._failures[w.chainlet_id] += 1
                attempts = self._failures[w.chainlet_id]
                self._retry_at[w.chainlet_id] = time.monotonic() + min(0.5 * 2**attempts, 30)
            return step.ready
        if step.start and time.monotonic() >= self._retry_at.get(w.chainlet_id, 0.0):
            for _ in range(step.start):
                await self.runtime.start_replica(await self._replica_spec(w))
        for replica_id in step.stop:
            await self._stop(replica_id)
        if w.patch_kind is not None and not step.done and _overdue(w):
            # Its replicas never became ready (on Ray: no room for a second one beside the
            # old). Given up, the old code keeps serving and a watcher learns why.
            self._give_up(
                w,
                f"its new replicas were not ready within {PATCH_DEADLINE_SECONDS:.0f} s; "
                "the cluster may have no room for them beside the old ones",
            )
            return step.ready
        if w.patch_kind is not None:
            self._patches.seen(*revision, done=step.done)
        if not step.done:
            self._replacing = True
        return step.ready

    def _give_up(self, w: ChainletWork, reason: str) -> None:
        self._patches.fail(w.deployment_id, w.code_revision, f"chainlet {w.name}: {reason}")

    def _patch_build(self, w: ChainletWork, update: ChainletUpdate) -> BuildResult | None:
        """The rebuild a patch of the chainlet's requirements or image needs, in the background
        while the old replicas serve: None until it is done."""
        task = self._builds.get(w.chainlet_id)
        if task is not None and self._build_revision.get(w.chainlet_id) != w.code_revision:
            self._cancel_build(w.chainlet_id)  # for a patch that a newer one superseded
            task = None
        if task is None:
            self._start_build(w)
            self._build_revision[w.chainlet_id] = w.code_revision
            update.log_lines.append(
                (f"rebuild of {w.name} for patch {w.code_revision} started", "INFO", "build")
            )
            return None
        if not task.done():
            return None
        self._build_revision.pop(w.chainlet_id, None)
        return self._build_outcome(w, update)

    async def _record_patches(self, generation: int) -> None:
        """Writes this tick's patch outcomes; while a replacement waits for replicas, the next
        change of the replica table wakes the loop (a patch is live the moment its replica is
        ready, not at the next interval)."""
        done, failed = self._patches.outcomes()
        if done or failed:
            await asyncio.to_thread(self._write_patch_outcomes, done, failed)
            for key in failed:
                self._patches.given_up.discard(key)
            self._wake.set()  # a failed patch undone: its chainlets go back at once
        if self._replacing and (self._change_waiter is None or self._change_waiter.done()):
            self._change_waiter = asyncio.create_task(self._wake_on_change(generation))

    def _write_patch_outcomes(
        self, done: list[tuple[str, int]], failed: dict[tuple[str, int], str]
    ) -> None:
        for deployment_id, revision in done:
            patches.succeed(self.core, deployment_id, revision)
        for (deployment_id, revision), message in failed.items():
            patches.fail(self.core, deployment_id, revision, message)

    async def _wake_on_change(self, generation: int) -> None:
        await self.runtime.changed(generation)
        self._wake.set()


# How long a patch may take before it is given up: a rebuild installing requirements included.
PATCH_DEADLINE_SECONDS = 900.0


def _overdue(w: ChainletWork) -> bool:
    started = w.patch_created_at
    if started is None:
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - started).total_seconds() > PATCH_DEADLINE_SECONDS
