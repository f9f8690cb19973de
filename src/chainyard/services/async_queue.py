"""The async request queue, the runner's side (docs/async-inference.md, "The queue in the
store"): each server's runner takes requests with a lease and reports what happened (`claim`,
`renew`, `release`, `record_result`, `record_failure`, `expire_due`, and `record_and_claim`, a
busy runner's turn; the webhook stage is services/async_deliveries.py), each call one
transaction. The row-level work, and the batch paths that read columns and write with
executemany, are services/async_rows.py. The routes' side (enqueue, status, cancel, queue status)
is services/async_requests.py; the statuses follow `domain.async_requests`.

Leases: a runner names itself with a `holder` string (unique per server process, e.g. its
cluster member id). A request held by one holder is never handed to another until the lease
has run out (`lease_until` passed); after that, the next claim takes it over (its server died or
stalled) and runs it again: requests run at least once. Every report checks that its holder
still holds the request, and a report from a holder that lost it changes nothing (its result
is dropped: the new holder runs the request again). Times are compared with the servers'
clocks (`now`, UTC), which are assumed to agree within a fraction of a lease.

Exactly one holder at a time, also with concurrent claimers: on PostgreSQL a claim takes a
transaction-scoped advisory lock first, so that claims run one after another (two claims never
count the same free slots of a deployment, nor move the same queued rows to a new deployment
and wait on each other), and locks the rows it reads with FOR UPDATE SKIP LOCKED, passing over
a row that a report, a cancel or an expiry is changing. A claim is a few short statements, so
one at a time is no bottleneck: each takes a batch. On SQLite a write transaction holds the
database's write lock from its start (store/db.py), which orders claims the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from chainyard.domain import async_requests as d
from chainyard.services.async_rows import (
    NOT_HELD,
    Claimed,
    Delivery,
    Recorded,
    claim_in,
    delivery,
    end,
    holds_predict,
    record_results_in,
)
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.base import utcnow
from chainyard.store.db import Database

R = d.RequestStatus
W = d.WebhookStatus

# A claimer that dies holds its requests this long; a running request renews well before.
LEASE_SECONDS = 30.0
# Any constant: the key of the advisory lock that serializes claims on PostgreSQL.
_CLAIM_LOCK_KEY = 0x6379_6171


__all__ = [
    "LEASE_SECONDS",
    "NOT_HELD",
    "Claimed",
    "Delivery",
    "Recorded",
    "claim",
    "delivery_of",
    "expire_due",
    "record_and_claim",
    "record_failure",
    "record_result",
    "record_results",
    "release",
    "renew",
]


def _now(now: dt.datetime | None) -> dt.datetime:
    return utcnow() if now is None else now


def _lease(now: dt.datetime, seconds: float) -> dt.datetime:
    return now + dt.timedelta(seconds=seconds)


# -- the runner's side: the predict stage ---------------------------------------------------------


# -- the runner's side: the predict stage ---------------------------------------------------------


def claim(
    db: Database,
    holder: str,
    *,
    limit: int,
    lease_seconds: float = LEASE_SECONDS,
    per_deployment_cap: int | None = None,
    now: dt.datetime | None = None,
) -> list[Claimed]:
    """Takes up to `limit` requests for their predict call, in (priority, created_at) order:
    QUEUED ones not yet expired, and IN_PROGRESS ones that are due and free (a retry whose
    wait is over, or a request whose holder's lease ran out: taken over). Each becomes
    IN_PROGRESS, held by `holder` until now + `lease_seconds`; renew while it runs.

    `per_deployment_cap`: at most that many requests of one deployment held at once, over
    every server (those already running count). A request asked of an environment or of the
    development deployment is moved to the target's current deployment first (a promotion or a
    new development push since it was queued), with the other queued requests of that target.
    A request that lost its holder more than MAX_LOST_LEASES times is not run again: it fails
    (INTERNAL_SERVER_ERROR), and is not returned."""
    if limit <= 0:
        return []
    when = _now(now)
    with db.write() as session:
        return _claim(session, holder, limit, when, lease_seconds, per_deployment_cap)


def _claim(
    session: Session,
    holder: str,
    limit: int,
    now: dt.datetime,
    lease_seconds: float,
    per_deployment_cap: int | None,
) -> list[Claimed]:
    if session.get_bind().dialect.name != "sqlite":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK_KEY})
    return claim_in(
        session,
        holder,
        limit=limit,
        now=now,
        until=_lease(now, lease_seconds),
        per_deployment_cap=per_deployment_cap,
    )


def renew(
    db: Database,
    holder: str,
    request_ids: Sequence[str],
    *,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> set[str]:
    """Extends `holder`'s leases to now + `lease_seconds` (predict calls and webhook
    deliveries alike). Answers the ids it still holds: a request missing from the answer was
    taken over, canceled or finished meanwhile, and its work should be dropped."""
    if not request_ids:
        return set()
    when = _now(now)
    with db.write() as session:
        kept = session.scalars(
            update(AsyncRequest)
            .where(AsyncRequest.id.in_(list(request_ids)), AsyncRequest.lease_holder == holder)
            .values(lease_until=_lease(when, lease_seconds))
            .returning(AsyncRequest.id)
            .execution_options(synchronize_session=False)
        ).all()
    return set(kept)


def release(
    db: Database, holder: str, request_ids: Sequence[str], *, now: dt.datetime | None = None
) -> set[str]:
    """Gives back requests `holder` holds but has not worked on (a server stopping cleanly):
    they may be taken at once, by any server, and the attempt (or delivery) does not count.
    Answers the ids released."""
    if not request_ids:
        return set()
    when = _now(now)
    released: set[str] = set()
    with db.write() as session:
        rows = session.scalars(
            select(AsyncRequest)
            .where(AsyncRequest.id.in_(list(request_ids)), AsyncRequest.lease_holder == holder)
            .with_for_update()
        ).all()
        for row in rows:
            if row.outcome is None and row.status == R.IN_PROGRESS.value:
                row.attempts = max(row.attempts - 1, 0)
                row.next_attempt_at = when
            elif row.outcome is not None:
                row.webhook_attempts = max(row.webhook_attempts - 1, 0)
                row.webhook_next_at = when
            row.lease_holder = None
            row.lease_until = None
            released.add(row.id)
    return released


def _held_predicts(
    session: Session, holder: str, request_ids: Iterable[str]
) -> dict[str, AsyncRequest]:
    """The requests among `request_ids` whose predict call `holder` holds, locked (in id order,
    so that two transactions lock in the same order)."""
    rows = session.scalars(
        select(AsyncRequest)
        .where(AsyncRequest.id.in_(sorted(set(request_ids))))
        .order_by(AsyncRequest.id)
        .with_for_update()
    ).all()
    return {row.id: row for row in rows if holds_predict(row, holder)}


def record_result(
    db: Database,
    holder: str,
    request_id: str,
    output: Any,
    *,
    deployment_id: str | None = None,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> Recorded:
    """The predict call of a request `holder` holds returned `output` (JSON).

    Without a webhook: SUCCEEDED (NO_WEBHOOK_PROVIDED), the output is not kept. With one: the
    status stays IN_PROGRESS, webhook PENDING, the output is kept for the webhook, and
    `Recorded.delivery` is the delivery, held by `holder` for `lease_seconds`: deliver it and
    report with `async_deliveries.record_delivery` (or `release` it). `deployment_id`: the
    deployment that actually ran it, when the runner knows better than the claim."""
    ran_on = None if deployment_id is None else {request_id: deployment_id}
    return record_results(
        db, holder, {request_id: output}, ran_on=ran_on, lease_seconds=lease_seconds, now=now
    )[request_id]


def record_results(
    db: Database,
    holder: str,
    outputs: Mapping[str, Any],
    *,
    ran_on: Mapping[str, str] | None = None,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> dict[str, Recorded]:
    """`record_result` for many requests (request id -> output) in one transaction: what a
    busy runner does with the results that came in since its last report. `ran_on`: request id
    -> the deployment that ran it, where known. Answers a `Recorded` per request id."""
    when = _now(now)
    with db.write() as session:
        return record_results_in(
            session,
            holder,
            outputs,
            ran_on=ran_on,
            now=when,
            until=_lease(when, lease_seconds),
        )


def record_and_claim(
    db: Database,
    holder: str,
    outputs: Mapping[str, Any],
    *,
    limit: int,
    lease_seconds: float = LEASE_SECONDS,
    per_deployment_cap: int | None = None,
    now: dt.datetime | None = None,
) -> tuple[dict[str, Recorded], list[Claimed]]:
    """`record_results`, then `claim` of up to `limit` requests, in one transaction: a busy
    runner's turn, whose results free the slots (of the per-deployment cap) it claims again."""
    when = _now(now)
    with db.write() as session:
        recorded = record_results_in(
            session, holder, outputs, ran_on=None, now=when, until=_lease(when, lease_seconds)
        )
        claimed = (
            _claim(session, holder, limit, when, lease_seconds, per_deployment_cap)
            if limit > 0
            else []
        )
    return recorded, claimed


def delivery_of(row: AsyncRequest) -> Delivery:
    return delivery(row)


def record_failure(
    db: Database,
    holder: str,
    request_id: str,
    code: d.ErrorCode | str,
    message: str,
    *,
    retryable: bool = True,
    deployment_id: str | None = None,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> Recorded:
    """The predict call of a request `holder` holds failed with `code` (an AsyncRequestError
    code) and `message`.

    If `retryable` and the request's retry config allows another attempt, it is released to be
    claimed again after the backoff (`RetryConfig.delay_ms` of the attempts so far): the status
    stays IN_PROGRESS, `Recorded.retry_at` says when. Otherwise it is FAILED with this error in
    `errors`; with a webhook, `Recorded.delivery` is the failure's delivery, held by `holder`
    (as for `record_result`)."""
    when = _now(now)
    err = d.error(code, message)
    with db.write() as session:
        row = _held_predicts(session, holder, [request_id]).get(request_id)
        if row is None:
            return NOT_HELD
        if deployment_id is not None:
            row.deployment_id = deployment_id
        retry = d.RetryConfig.from_json(row.retry)
        if retryable and retry.allows_another(row.attempts):
            at = when + dt.timedelta(milliseconds=retry.delay_ms(row.attempts))
            row.next_attempt_at = at
            row.lease_holder = None
            row.lease_until = None
            return Recorded(held=True, retry_at=at)
        due = end(
            row,
            d.failed(row.webhook_endpoint is not None),
            err,
            when,
            holder=holder,
            lease_until=_lease(when, lease_seconds),
        )
        return Recorded(held=True, delivery=due)


def expire_due(db: Database, *, limit: int = 500, now: dt.datetime | None = None) -> list[str]:
    """Moves up to `limit` QUEUED requests whose `max_time_in_queue_seconds` has passed to
    EXPIRED, with one MODEL_UNAVAILABLE error that says so; a webhook, if any, is then due
    (`async_deliveries.claim_deliveries` finds it). Answers their ids; call again while it
    answers `limit` of them."""
    when = _now(now)
    with db.write() as session:
        rows = session.scalars(
            select(AsyncRequest)
            .where(AsyncRequest.status == R.QUEUED.value, AsyncRequest.expires_at <= when)
            .order_by(AsyncRequest.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            waited = round((row.expires_at - row.created_at).total_seconds())
            end(row, d.expired(row.webhook_endpoint is not None), d.expiry_error(waited), when)
        return [row.id for row in rows]
