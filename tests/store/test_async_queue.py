"""The async request queue on SQLite and PostgreSQL (services/async_requests.py,
services/async_queue.py, services/async_deliveries.py): enqueue, claim order and leases,
results, retries, expiry, cancel, webhook stage, limits. Times are injected (`now`), never
read from the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from chainyard.domain import async_requests as d
from chainyard.domain.errors import Forbidden, NotFound, RateLimited
from chainyard.services import async_deliveries as deliveries
from chainyard.services import async_queue as queue
from chainyard.services import async_requests as requests
from chainyard.services.context import Actor
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.db import Database
from chainyard.store.environments import Environment
from chainyard.store.workspaces import Workspace

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ACTOR = Actor("ws000001", "one", key_type="WORKSPACE_MANAGE_ALL", key_prefix="k1")
INVOKER = Actor("ws000001", "one", key_type="WORKSPACE_INVOKE", key_prefix="k2")
OTHER = Actor("ws000002", "two", key_type="WORKSPACE_MANAGE_ALL", key_prefix="k3")
PRODUCTION = d.AsyncTarget("environment", "production")
DEPLOYMENT = d.AsyncTarget("deployment")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _deployment(deployment_id: str, **kw: Any) -> ChainDeployment:
    fields: dict[str, Any] = {"chain_id": "chain001", "created_at": T0, **kw}
    return ChainDeployment(
        id=deployment_id, name=deployment_id, status="ACTIVE", entrypoint="A", **fields
    )


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        session.add_all(
            [Workspace(id="ws000001", name="one"), Workspace(id="ws000002", name="two")]
        )
        session.flush()
        session.add_all(
            [
                Chain(id="chain001", workspace_id="ws000001", name="c1"),
                Chain(id="chain002", workspace_id="ws000002", name="c2"),
            ]
        )
        session.flush()
        session.add_all([_deployment("dep1"), _deployment("dep2"), _deployment("dep3")])
        session.add(_deployment("dev1", is_development=True))
        session.flush()
        session.add(
            Environment(
                id="env1", chain_id="chain001", name="production", current_deployment_id="dep1"
            )
        )
    yield database
    database.dispose()


def enqueue(
    db: Database,
    seconds: float = 0,
    *,
    deployment_id: str = "dep1",
    target: d.AsyncTarget = PRODUCTION,
    actor: Actor = ACTOR,
    chain_id: str = "chain001",
    **fields: Any,
) -> str:
    spec = d.check({"model_input": {"n": seconds}, **fields})
    answer = requests.enqueue(
        db,
        actor,
        chain_id=chain_id,
        deployment_id=deployment_id,
        target=target,
        spec=spec,
        now=at(seconds),
    )
    return answer.request_id


def row(db: Database, request_id: str) -> AsyncRequest:
    with db.read() as session:
        found = session.get(AsyncRequest, request_id)
        assert found is not None
        return found


def statuses(db: Database, request_id: str) -> tuple[str, str]:
    view = requests.status(db, ACTOR, request_id)
    return view.status, view.webhook_status


def test_an_enqueued_request_is_queued_and_its_status_is_the_spec_answer(db: Database) -> None:
    fired: list[str] = []
    answer = requests.enqueue(
        db,
        INVOKER,
        chain_id="chain001",
        deployment_id="dep1",
        target=PRODUCTION,
        spec=d.check({"model_input": {"x": 1}, "webhook_endpoint": "https://h.example/w"}),
        now=at(0),
        on_enqueued=lambda: fired.append("woken"),
    )
    assert fired == ["woken"]
    assert len(answer.request_id) == 20
    view = requests.status(db, INVOKER, answer.request_id)
    assert view.model_dump(mode="json") == {
        "request_id": answer.request_id,
        "chain_id": "chain001",
        "deployment_id": "dep1",
        "status": "QUEUED",
        "webhook_status": "PENDING",
        "created_at": "2026-06-01T12:00:00Z",
        "status_at": "2026-06-01T12:00:00Z",
        "errors": [],
    }
    stored = row(db, answer.request_id)
    assert stored.expires_at == at(600)
    assert stored.retry == {"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 5000}
    assert stored.model_input == {"x": 1}
    no_hook = enqueue(db, 1)
    assert statuses(db, no_hook) == ("QUEUED", "NO_WEBHOOK_PROVIDED")


def test_requests_are_seen_by_their_workspace_only(db: Database) -> None:
    request_id = enqueue(db)
    for call in (requests.status, requests.cancel):
        with pytest.raises(NotFound) as info:
            call(db, OTHER, request_id)  # type: ignore[operator]
        assert info.value.code == "ASYNC_REQUEST_NOT_FOUND"
    with pytest.raises(NotFound):
        requests.status(db, ACTOR, "nosuchrequest")
    metrics_key = Actor("ws000001", "one", key_type="WORKSPACE_EXPORT_METRICS", key_prefix="m")
    with pytest.raises(Forbidden):
        requests.status(db, metrics_key, request_id)


def test_claims_follow_priority_then_age_and_take_only_what_is_due(db: Database) -> None:
    late_urgent = enqueue(db, 3, priority=0)
    old_low = enqueue(db, 1, priority=2)
    old_normal = enqueue(db, 0, priority=1)
    young_normal = enqueue(db, 2, priority=1)
    first = queue.claim(db, "s1", limit=2, now=at(10))
    assert [c.request_id for c in first] == [late_urgent, old_normal]
    assert [c.attempt for c in first] == [1, 1]
    assert first[0].model_input == {"n": 3}
    assert first[0].lease_until == at(10 + queue.LEASE_SECONDS)
    rest = queue.claim(db, "s1", limit=10, now=at(10))
    assert [c.request_id for c in rest] == [young_normal, old_low]
    assert queue.claim(db, "s1", limit=10, now=at(11)) == []
    view = requests.status(db, ACTOR, old_low)
    assert (view.status, view.status_at) == ("IN_PROGRESS", at(10))


def test_a_lease_that_ran_out_is_taken_over_and_the_old_holder_is_fenced_off(
    db: Database,
) -> None:
    request_id = enqueue(db)
    [mine] = queue.claim(db, "s1", limit=5, lease_seconds=30, now=at(1))
    assert not mine.taken_over
    # Still held: nobody else gets it, however often they ask.
    assert queue.claim(db, "s2", limit=5, now=at(30)) == []
    assert queue.renew(db, "s1", [request_id], lease_seconds=30, now=at(30)) == {request_id}
    assert queue.claim(db, "s2", limit=5, now=at(59)) == []
    # s1 went silent: its lease ends at 60 and s2 takes the request over.
    [theirs] = queue.claim(db, "s2", limit=5, now=at(60))
    assert (theirs.request_id, theirs.taken_over, theirs.attempt) == (request_id, True, 1)
    assert queue.renew(db, "s1", [request_id], now=at(61)) == set()
    assert queue.record_result(db, "s1", request_id, {"from": "s1"}, now=at(61)) == queue.NOT_HELD
    assert queue.record_failure(db, "s1", request_id, "MODEL_PREDICT_ERROR", "x", now=at(61)) == (
        queue.NOT_HELD
    )
    assert statuses(db, request_id) == ("IN_PROGRESS", "NO_WEBHOOK_PROVIDED")
    assert queue.record_result(db, "s2", request_id, {"from": "s2"}, now=at(62)).held
    assert statuses(db, request_id) == ("SUCCEEDED", "NO_WEBHOOK_PROVIDED")
    assert row(db, request_id).lost_leases == 1


def test_a_result_without_a_webhook_succeeds_and_keeps_no_output(db: Database) -> None:
    request_id = enqueue(db)
    queue.claim(db, "s1", limit=1, now=at(1))
    recorded = queue.record_result(
        db, "s1", request_id, {"out": 1}, deployment_id="dep2", now=at(2)
    )
    assert recorded == queue.Recorded(held=True)
    view = requests.status(db, ACTOR, request_id)
    assert (view.status, view.webhook_status, view.status_at) == (
        "SUCCEEDED",
        "NO_WEBHOOK_PROVIDED",
        at(2),
    )
    assert view.deployment_id == "dep2"
    stored = row(db, request_id)
    assert (stored.result, stored.lease_holder, stored.outcome) == (None, None, None)
    # Done: a second report changes nothing.
    assert not queue.record_result(db, "s1", request_id, {"out": 2}, now=at(3)).held


def test_a_success_waits_for_its_webhook_then_succeeds_and_drops_the_output(db: Database) -> None:
    request_id = enqueue(db, webhook_endpoint="https://h.example/hook")
    queue.claim(db, "s1", limit=1, now=at(1))
    recorded = queue.record_result(db, "s1", request_id, {"out": [1, 2]}, now=at(2))
    delivery = recorded.delivery
    assert delivery is not None
    assert (delivery.outcome, delivery.output, delivery.errors, delivery.attempt) == (
        d.RequestStatus.SUCCEEDED,
        {"out": [1, 2]},
        [],
        1,
    )
    assert (delivery.webhook_endpoint, delivery.chain_id, delivery.deployment_id) == (
        "https://h.example/hook",
        "chain001",
        "dep1",
    )
    assert statuses(db, request_id) == ("IN_PROGRESS", "PENDING")
    # Held by s1, which delivers it right away: nobody else may claim it meanwhile.
    assert deliveries.claim_deliveries(db, "s2", limit=5, now=at(3)) == []
    assert deliveries.record_delivery(db, "s1", request_id, delivered=True, now=at(4))
    assert statuses(db, request_id) == ("SUCCEEDED", "SUCCEEDED")
    stored = row(db, request_id)
    assert (stored.result, stored.outcome, stored.status_at) == (None, None, at(4))
    assert not deliveries.record_delivery(db, "s1", request_id, delivered=True, now=at(5))


def test_a_failing_webhook_is_retried_when_asked_then_marked_failed(db: Database) -> None:
    request_id = enqueue(db, webhook_endpoint="https://h.example/hook")
    queue.claim(db, "s1", limit=1, now=at(1))
    queue.record_result(db, "s1", request_id, "text output", now=at(2))
    assert deliveries.record_delivery(
        db, "s1", request_id, delivered=False, error="HTTP 500", retry_at=at(12), now=at(3)
    )
    assert statuses(db, request_id) == ("IN_PROGRESS", "PENDING")
    assert deliveries.claim_deliveries(db, "s2", limit=5, now=at(11)) == []
    [again] = deliveries.claim_deliveries(db, "s2", limit=5, lease_seconds=10, now=at(12))
    assert (again.attempt, again.output, again.lease_until) == (2, "text output", at(22))
    # s2 dies mid-delivery: after its lease, s3 sends it again.
    assert deliveries.claim_deliveries(db, "s3", limit=5, now=at(21)) == []
    [third] = deliveries.claim_deliveries(db, "s3", limit=5, now=at(22))
    assert third.attempt == 3
    assert not deliveries.record_delivery(db, "s2", request_id, delivered=True, now=at(23))
    assert deliveries.record_delivery(
        db, "s3", request_id, delivered=False, error="timed out", now=at(24)
    )
    assert statuses(db, request_id) == ("WEBHOOK_FAILED", "FAILED")
    stored = row(db, request_id)
    assert (stored.result, stored.webhook_error, stored.webhook_attempts) == (None, "timed out", 3)
    assert deliveries.claim_deliveries(db, "s3", limit=5, now=at(99)) == []


def test_failures_are_retried_with_the_backoff_then_fail_with_the_error(db: Database) -> None:
    request_id = enqueue(
        db,
        inference_retry_config={"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 1500},
    )
    [first] = queue.claim(db, "s1", limit=1, now=at(1))
    assert first.retry == d.RetryConfig(3, 1000, 1500)
    recorded = queue.record_failure(db, "s1", request_id, "MODEL_UNAVAILABLE", "503", now=at(2))
    assert recorded == queue.Recorded(held=True, retry_at=at(3))
    assert statuses(db, request_id) == ("IN_PROGRESS", "NO_WEBHOOK_PROVIDED")
    assert requests.status(db, ACTOR, request_id).errors == []
    assert queue.claim(db, "s2", limit=1, now=at(2.999)) == []
    [second] = queue.claim(db, "s2", limit=1, now=at(3))
    assert (second.attempt, second.taken_over) == (2, False)
    # The delay doubles, up to max_delay_ms.
    assert queue.record_failure(db, "s2", request_id, "MODEL_UNAVAILABLE", "503", now=at(4)) == (
        queue.Recorded(held=True, retry_at=at(5.5))
    )
    [third] = queue.claim(db, "s1", limit=1, now=at(5.5))
    assert third.attempt == 3
    last = queue.record_failure(db, "s1", request_id, "MODEL_PREDICT_ERROR", "boom", now=at(6))
    assert last == queue.Recorded(held=True)
    view = requests.status(db, ACTOR, request_id)
    assert (view.status, view.webhook_status, view.status_at) == (
        "FAILED",
        "NO_WEBHOOK_PROVIDED",
        at(6),
    )
    assert [e.model_dump() for e in view.errors] == [
        {"code": "MODEL_PREDICT_ERROR", "message": "boom"}
    ]
    assert queue.claim(db, "s1", limit=1, now=at(100)) == []


def test_a_failure_that_is_not_retryable_fails_at_once_and_its_webhook_follows(
    db: Database,
) -> None:
    request_id = enqueue(db, webhook_endpoint="https://h.example/hook")
    queue.claim(db, "s1", limit=1, now=at(1))
    recorded = queue.record_failure(
        db, "s1", request_id, d.ErrorCode.MODEL_INVALID_INPUT, "bad arg", retryable=False, now=at(2)
    )
    assert recorded.delivery is not None
    assert recorded.delivery.outcome == d.RequestStatus.FAILED
    assert recorded.delivery.errors == [{"code": "MODEL_INVALID_INPUT", "message": "bad arg"}]
    assert statuses(db, request_id) == ("FAILED", "PENDING")
    # Its holder releases it (stopping): anyone may deliver it at once, as the first try.
    assert queue.release(db, "s1", [request_id], now=at(3)) == {request_id}
    [delivery] = deliveries.claim_deliveries(db, "s2", limit=5, now=at(3))
    assert delivery.attempt == 1
    deliveries.record_delivery(db, "s2", request_id, delivered=False, now=at(4))
    assert statuses(db, request_id) == ("FAILED", "FAILED")


def test_queued_requests_expire_and_are_never_claimed_once_due(db: Database) -> None:
    quiet = enqueue(db, 0, max_time_in_queue_seconds=10)
    hooked = enqueue(db, 0, max_time_in_queue_seconds=20, webhook_endpoint="https://h.example/w")
    running = enqueue(db, 0, max_time_in_queue_seconds=10, priority=0)
    with db.write() as session:  # `running` is ahead of the others
        session.execute(update(AsyncRequest).where(AsyncRequest.id != running).values(priority=1))
    assert [c.request_id for c in queue.claim(db, "s1", limit=1, now=at(1))] == [running]
    assert queue.expire_due(db, now=at(9.9)) == []
    # Past its time, `quiet` is not claimed even before an expiry pass has run.
    assert [c.request_id for c in queue.claim(db, "s1", limit=5, now=at(10))] == [hooked]
    queue.release(db, "s1", [hooked], now=at(10))
    with db.write() as session:
        session.execute(
            update(AsyncRequest).where(AsyncRequest.id == hooked).values(status="QUEUED")
        )
    assert queue.expire_due(db, now=at(10)) == [quiet]
    view = requests.status(db, ACTOR, quiet)
    assert (view.status, view.webhook_status, view.status_at) == (
        "EXPIRED",
        "NO_WEBHOOK_PROVIDED",
        at(10),
    )
    assert [e.code for e in view.errors] == ["MODEL_UNAVAILABLE"]
    assert "10 s" in view.errors[0].message
    assert queue.expire_due(db, now=at(25)) == [hooked]
    assert statuses(db, hooked) == ("EXPIRED", "PENDING")
    [delivery] = deliveries.claim_deliveries(db, "s2", limit=5, now=at(25))
    assert (delivery.request_id, delivery.outcome) == (hooked, d.RequestStatus.EXPIRED)
    assert delivery.errors[0]["code"] == "MODEL_UNAVAILABLE"
    assert statuses(db, running) == ("IN_PROGRESS", "NO_WEBHOOK_PROVIDED")


def test_only_queued_requests_can_be_canceled(db: Database) -> None:
    hooked = enqueue(db, 0, webhook_endpoint="https://h.example/w")
    plain = enqueue(db, 1)
    started = enqueue(db, 2)
    queue.claim(db, "s0", limit=0, now=at(3))
    with db.write() as session:
        session.execute(update(AsyncRequest).where(AsyncRequest.id != started).values(priority=2))
    queue.claim(db, "s1", limit=1, now=at(3))
    answer = requests.cancel(db, INVOKER, hooked, now=at(4))
    assert answer.model_dump() == {
        "request_id": hooked,
        "canceled": True,
        "message": "the request was canceled",
    }
    assert requests.status(db, ACTOR, hooked).status_at == at(4)
    assert statuses(db, hooked) == ("CANCELED", "CANCELED")
    assert requests.cancel(db, ACTOR, plain, now=at(4)).canceled
    assert statuses(db, plain) == ("CANCELED", "NO_WEBHOOK_PROVIDED")
    again = requests.cancel(db, ACTOR, hooked, now=at(5))
    assert not again.canceled
    assert again.message == "the request is CANCELED: only QUEUED requests can be canceled"
    busy = requests.cancel(db, ACTOR, started, now=at(5))
    assert (busy.canceled, "IN_PROGRESS" in busy.message) == (False, True)
    assert queue.claim(db, "s1", limit=5, now=at(6)) == []
    assert queue.expire_due(db, now=at(10_000)) == []
    assert deliveries.claim_deliveries(db, "s1", limit=5, now=at(10_000)) == []


def test_queue_status_counts_what_will_run_on_the_deployment(db: Database) -> None:
    for n in range(3):
        enqueue(db, n)
    direct = enqueue(db, 3, target=DEPLOYMENT, deployment_id="dep2")
    enqueue(db, 4, target=DEPLOYMENT, deployment_id="dep2")
    queue.claim(db, "s1", limit=1, now=at(5))
    production = requests.queue_status(
        db, ACTOR, chain_id="chain001", deployment_id="dep1", target=PRODUCTION
    )
    assert production.model_dump() == {
        "model_id": "chain001",
        "deployment_id": "dep1",
        "num_queued_requests": 2,
        "num_in_progress_requests": 1,
    }
    dep2 = requests.queue_status(
        db, ACTOR, chain_id="chain001", deployment_id="dep2", target=DEPLOYMENT
    )
    assert (dep2.num_queued_requests, dep2.num_in_progress_requests) == (2, 0)
    requests.cancel(db, ACTOR, direct, now=at(6))
    dep2 = requests.queue_status(
        db, ACTOR, chain_id="chain001", deployment_id="dep2", target=DEPLOYMENT
    )
    assert dep2.num_queued_requests == 1
    # Another workspace counts nothing of this one.
    theirs = requests.queue_status(
        db, OTHER, chain_id="chain001", deployment_id="dep1", target=PRODUCTION
    )
    assert (theirs.num_queued_requests, theirs.num_in_progress_requests) == (0, 0)
    assert requests.depths(db) == {
        "dep1": requests.Depth(queued=2, in_progress=1),
        "dep2": requests.Depth(queued=1, in_progress=0),
    }


def test_after_a_promotion_queued_requests_run_on_the_new_deployment(db: Database) -> None:
    first = enqueue(db, 0)
    second = enqueue(db, 1)
    pinned = enqueue(db, 2, target=DEPLOYMENT, deployment_id="dep1")
    with db.write() as session:
        session.execute(
            update(Environment).where(Environment.id == "env1").values(current_deployment_id="dep3")
        )
    [claimed] = queue.claim(db, "s1", limit=1, now=at(3))
    assert (claimed.request_id, claimed.deployment_id) == (first, "dep3")
    # The rest of the environment's queue moved with it; a request for one deployment did not.
    assert row(db, second).deployment_id == "dep3"
    assert row(db, pinned).deployment_id == "dep1"
    moved = requests.queue_status(
        db, ACTOR, chain_id="chain001", deployment_id="dep3", target=PRODUCTION
    )
    assert (moved.num_queued_requests, moved.num_in_progress_requests) == (1, 1)
    # The development target follows the newest development deployment.
    dev = enqueue(db, 4, target=d.AsyncTarget("development"), deployment_id="dev1")
    with db.write() as session:
        session.add(_deployment("dev2", is_development=True, created_at=at(100)))
    claimed_dev = [c for c in queue.claim(db, "s1", limit=5, now=at(5)) if c.request_id == dev]
    assert claimed_dev[0].deployment_id == "dev2"
    assert claimed_dev[0].target == d.AsyncTarget("development")


def test_the_per_deployment_cap_holds_and_does_not_starve_other_deployments(
    db: Database,
) -> None:
    crowd = [enqueue(db, n, priority=0) for n in range(5)]
    lone = enqueue(db, 10, target=DEPLOYMENT, deployment_id="dep2", priority=2)
    taken = queue.claim(db, "s1", limit=10, per_deployment_cap=2, now=at(20))
    assert [c.request_id for c in taken] == [*crowd[:2], lone]
    # Both deployments at (or under) their cap over every holder.
    assert queue.claim(db, "s2", limit=10, per_deployment_cap=2, now=at(21)) == []
    queue.record_result(db, "s1", crowd[0], None, now=at(22))
    [next_one] = queue.claim(db, "s2", limit=10, per_deployment_cap=2, now=at(23))
    assert next_one.request_id == crowd[2]
    # Lapsed leases free their slots: the requests are taken over (ahead of the queued ones,
    # which are younger), within the cap.
    later = queue.claim(db, "s3", limit=10, per_deployment_cap=2, now=at(23 + queue.LEASE_SECONDS))
    assert [c.request_id for c in later] == [crowd[1], crowd[2], lone]
    assert all(c.taken_over for c in later)


def test_a_request_that_keeps_losing_its_server_fails(db: Database) -> None:
    request_id = enqueue(db, webhook_endpoint="https://h.example/w")
    for n in range(d.MAX_LOST_LEASES + 1):
        [c] = queue.claim(db, f"s{n}", limit=1, lease_seconds=10, now=at(n * 10))
        assert c.taken_over == (n > 0)
    assert queue.claim(db, "last", limit=1, now=at((d.MAX_LOST_LEASES + 1) * 10)) == []
    view = requests.status(db, ACTOR, request_id)
    assert (view.status, view.webhook_status) == ("FAILED", "PENDING")
    assert view.errors[0].code == "INTERNAL_SERVER_ERROR"
    [delivery] = deliveries.claim_deliveries(db, "last", limit=1, now=at(1000))
    assert delivery.outcome == d.RequestStatus.FAILED


def test_release_hands_requests_back_at_once_without_spending_an_attempt(db: Database) -> None:
    request_id = enqueue(db)
    queue.claim(db, "s1", limit=1, now=at(1))
    assert queue.release(db, "s2", [request_id], now=at(2)) == set()
    assert queue.release(db, "s1", [request_id], now=at(2)) == {request_id}
    [again] = queue.claim(db, "s2", limit=1, now=at(2))
    assert (again.attempt, again.taken_over) == (1, False)
    assert queue.renew(db, "s2", [], now=at(3)) == set()


def test_the_workspace_limit_counts_queued_and_in_progress_requests(db: Database) -> None:
    ids = [
        requests.enqueue(
            db,
            ACTOR,
            chain_id="chain001",
            deployment_id="dep1",
            target=PRODUCTION,
            spec=d.check({"model_input": {}}),
            now=at(n),
            workspace_limit=3,
        ).request_id
        for n in range(3)
    ]
    with pytest.raises(RateLimited, match="3 queued or in-progress") as info:
        requests.enqueue(
            db,
            ACTOR,
            chain_id="chain001",
            deployment_id="dep1",
            target=PRODUCTION,
            spec=d.check({"model_input": {}}),
            now=at(4),
            workspace_limit=3,
        )
    assert info.value.status_code == 429
    assert info.value.retry_after > 0
    # Another workspace has its own limit.
    enqueue(db, 4, actor=OTHER, chain_id="chain002", deployment_id="dep1")
    queue.claim(db, "s1", limit=1, now=at(5))  # still open: in progress
    with pytest.raises(RateLimited):
        requests.enqueue(
            db,
            ACTOR,
            chain_id="chain001",
            deployment_id="dep1",
            target=PRODUCTION,
            spec=d.check({"model_input": {}}),
            now=at(6),
            workspace_limit=3,
        )
    requests.cancel(db, ACTOR, ids[2], now=at(7))
    requests.enqueue(
        db,
        ACTOR,
        chain_id="chain001",
        deployment_id="dep1",
        target=PRODUCTION,
        spec=d.check({"model_input": {}}),
        now=at(8),
        workspace_limit=3,
    )


def test_results_are_recorded_in_batches_and_only_for_what_the_holder_holds(
    db: Database,
) -> None:
    mine = [enqueue(db, n) for n in range(3)]
    hooked = enqueue(db, 3, webhook_endpoint="https://h.example/w")
    queue.claim(db, "s1", limit=10, lease_seconds=10, now=at(4))
    [lost] = [c for c in queue.claim(db, "s2", limit=10, now=at(14)) if c.request_id == mine[0]]
    answers = queue.record_results(
        db,
        "s1",
        {mine[0]: 0, mine[1]: 1, mine[2]: 2, hooked: {"h": 1}, "unknown": 9},
        ran_on={mine[1]: "dep2"},
        now=at(15),
    )
    assert lost.request_id == mine[0]
    assert answers[mine[0]] == answers["unknown"] == queue.NOT_HELD
    # s2 took every request over at 14 (s1's leases ended then): none of s1's reports count.
    assert not any(a.held for a in answers.values())
    assert queue.release(db, "s2", [*mine, hooked], now=at(16)) == {*mine, hooked}
    queue.claim(db, "s1", limit=10, now=at(16))
    answers = queue.record_results(
        db, "s1", {mine[1]: 1, mine[2]: 2, hooked: {"h": 1}}, ran_on={mine[1]: "dep2"}, now=at(17)
    )
    assert answers[mine[1]] == answers[mine[2]] == queue.Recorded(held=True)
    delivery = answers[hooked].delivery
    assert delivery is not None and delivery.output == {"h": 1}
    assert requests.status(db, ACTOR, mine[1]).deployment_id == "dep2"
    assert statuses(db, mine[2]) == ("SUCCEEDED", "NO_WEBHOOK_PROVIDED")
    assert statuses(db, mine[0]) == ("IN_PROGRESS", "NO_WEBHOOK_PROVIDED")
