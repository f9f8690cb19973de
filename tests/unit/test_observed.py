"""The reconciler's index of what runs: built from the previous index, it says what one built
from scratch says."""

from __future__ import annotations

import random

from chainyard.reconciler.observed import Observed
from chainyard.runtime.base import ReplicaPhase, ReplicaState


def _state(n: int, chainlet: str, deployment: str, phase: ReplicaPhase) -> ReplicaState:
    return ReplicaState(
        replica_id=f"r{n}",
        chainlet_id=chainlet,
        deployment_id=deployment,
        phase=phase,
        address=None,
        message=None,
    )


def _said(o: Observed) -> tuple[object, ...]:
    # Replica order within a chainlet aside: the same state objects per chainlet.
    grouped = {k: sorted(id(r) for r in v) for k, v in o.by_chainlet.items()}
    return grouped, o.unsettled, o.live, o.deployments, dict(o.per_deployment)


def test_after_says_what_of_says_through_random_changes() -> None:
    rng = random.Random(7)
    phases = list(ReplicaPhase)
    counter = 0

    def fresh() -> ReplicaState:
        nonlocal counter
        counter += 1
        chainlet = f"c{rng.randrange(40)}"
        return _state(counter, chainlet, f"d{chainlet[1:]}", rng.choice(phases))

    snapshot = [fresh() for _ in range(200)]
    observed = Observed.of(snapshot)
    incremental_steps = 0
    for step in range(300):
        # Like a backend that keeps settled replicas' states: most stay the same objects, some
        # change phase (a new object), some stop, some start; now and then a lot changes.
        churn = 60 if step % 25 == 0 else rng.randrange(0, 6)
        snapshot = list(snapshot)
        for _ in range(churn):
            action = rng.randrange(3)
            if action == 0 and snapshot:
                snapshot.pop(rng.randrange(len(snapshot)))
            elif action == 1 and snapshot:
                i = rng.randrange(len(snapshot))
                old = snapshot[i]
                snapshot[i] = _state(
                    int(old.replica_id[1:]), old.chainlet_id, old.deployment_id, rng.choice(phases)
                )
            else:
                snapshot.insert(rng.randrange(len(snapshot) + 1), fresh())
        updated = Observed.after(observed, snapshot)
        assert _said(updated) == _said(Observed.of(snapshot)), f"step {step}"
        assert updated.snapshot is snapshot
        # The cheap path keeps the lists of chainlets nothing happened to.
        shared = [k for k, v in updated.by_chainlet.items() if observed.by_chainlet.get(k) is v]
        if churn <= 5:
            assert len(shared) >= len(updated.by_chainlet) - 2 * churn, f"step {step}"
            incremental_steps += 1
        observed = updated
    assert incremental_steps > 200


def test_after_with_nothing_before_or_everything_gone() -> None:
    replicas = [_state(i, f"c{i % 3}", "d", ReplicaPhase.READY) for i in range(6)]
    first = Observed.after(None, replicas)
    assert _said(first) == _said(Observed.of(replicas))
    empty = Observed.after(first, [])
    assert empty.by_chainlet == {} and not empty.deployments and not empty.live


def test_a_callee_is_in_use_while_a_caller_of_its_deployment_runs() -> None:
    from chainyard.reconciler.loop import Reconciler

    reconciler = Reconciler(core=None, runtime=None)  # type: ignore[arg-type]
    # d1: Hello calls RandInt; d2 has a RandInt too, but no caller running.
    reconciler._set_shape("hello-1", ("d1", ("RandInt",)))
    reconciler._set_shape("randint-1", ("d1", ()))
    reconciler._set_shape("hello-2", ("d2", ("RandInt",)))
    reconciler._set_shape("randint-2", ("d2", ()))
    running = Observed.of(
        [
            _state(1, "hello-1", "d1", ReplicaPhase.READY),
            _state(2, "randint-1", "d1", ReplicaPhase.READY),
            _state(3, "hello-2", "d2", ReplicaPhase.STOPPING),
            _state(4, "randint-2", "d2", ReplicaPhase.READY),
        ]
    )
    assert reconciler._callee_in_use("d1", "RandInt", running)
    assert not reconciler._callee_in_use("d2", "RandInt", running)  # its caller is stopping
    assert not reconciler._callee_in_use("d1", "Other", running)
    # The caller moves to another deployment's scan (a re-scan with a new shape), then goes.
    reconciler._set_shape("hello-1", ("d3", ("RandInt",)))
    assert not reconciler._callee_in_use("d1", "RandInt", running)
    reconciler._set_shape("hello-1", None)
    assert reconciler._of_deployment.keys() == {"d1", "d2"}
