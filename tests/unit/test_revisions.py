"""Replacing replicas with ones on newer code (reconciler/revisions.py)."""

from __future__ import annotations

import datetime as dt

from chainyard.domain.statuses import DeploymentStatus
from chainyard.reconciler import patching, revisions
from chainyard.runtime.base import ReplicaPhase, ReplicaState
from chainyard.services.reconciler_store import ChainletWork

READY = ReplicaPhase.READY
STARTING = ReplicaPhase.STARTING
FAILED = ReplicaPhase.FAILED


def _replica(name: str, revision: int, phase: ReplicaPhase) -> ReplicaState:
    return ReplicaState(
        replica_id=name,
        chainlet_id="c1",
        deployment_id="d1",
        phase=phase,
        address=f"http://127.0.0.1/{name}",
        revision=revision,
    )


def test_new_revision_starts_beside_the_old_which_keeps_serving() -> None:
    step = revisions.plan(2, 1, [_replica("old", 1, READY)])
    assert step.start == 1
    assert step.stop == ()
    assert not step.done
    assert step.ready == 1


def test_old_replicas_stop_once_the_new_are_ready() -> None:
    step = revisions.plan(2, 1, [_replica("old", 1, READY), _replica("new", 2, READY)])
    assert step.start == 0
    assert step.stop == ("old",)
    assert step.done


def test_nothing_more_starts_while_the_new_one_starts() -> None:
    step = revisions.plan(2, 1, [_replica("old", 1, READY), _replica("new", 2, STARTING)])
    assert (step.start, step.stop, step.done) == (0, (), False)


def test_a_failed_new_replica_gives_the_revision_up_and_stops_nothing_old() -> None:
    failed = _replica("new", 2, FAILED)
    step = revisions.plan(2, 1, [_replica("old", 1, READY), failed])
    assert step.failed == failed
    assert step.stop == ()
    assert step.start == 0
    assert not step.done


def test_at_zero_the_patch_is_done_at_once() -> None:
    step = revisions.plan(3, 0, [])
    assert step.done and step.start == 0


def test_every_wanted_replica_is_replaced() -> None:
    live = [_replica("a", 0, READY), _replica("b", 0, READY), _replica("c", 1, READY)]
    step = revisions.plan(1, 2, live)
    assert step.start == 1 and not step.done
    live.append(_replica("d", 1, READY))
    step = revisions.plan(1, 2, live)
    assert step.done and set(step.stop) == {"a", "b"}


def test_patch_outcomes_need_every_chainlet_done() -> None:
    patches = revisions.Patches()
    patches.seen("d1", 2, done=True)
    patches.seen("d1", 2, done=False)
    patches.seen("d2", 5, done=True)
    done, failed = patches.outcomes()
    assert done == [("d2", 5)] and failed == {}
    patches.seen("d1", 2, done=True)
    patches.fail("d1", 2, "chainlet A: boom")
    done, failed = patches.outcomes()
    assert done == [] and failed == {("d1", 2): "chainlet A: boom"}
    assert ("d1", 2) in patches.given_up


def _work(created: dt.datetime | None) -> ChainletWork:
    return ChainletWork(
        chainlet_id="c1",
        name="Dep",
        deployment_id="d1",
        chain_id="ch1",
        status=DeploymentStatus.ACTIVE,
        desired_replicas=1,
        ready_replicas=1,
        desired_state="ACTIVE",
        instance_type_id="1x2",
        compute={},
        artifact_digest="a" * 64,
        is_entrypoint=False,
        dependencies=(),
        pip_requirements=(),
        code_revision=2,
        development=True,
        patch_kind="code",
        patch_created_at=created,
    )


def test_a_patch_is_given_up_once_past_its_deadline() -> None:
    now = dt.datetime.now(dt.UTC)
    assert not patching._overdue(_work(now))
    assert not patching._overdue(_work(None))
    late = now - dt.timedelta(seconds=patching.PATCH_DEADLINE_SECONDS + 5)
    assert patching._overdue(_work(late))
    # As SQLite hands it back: naive, in UTC.
    assert patching._overdue(_work(late.replace(tzinfo=None)))
