"""The async request queue, the runner's side (docs/async-inference.md, "The queue in the
store"): each server's runner takes requests with a lease and reports what happened (`claim`,
`renew`, `release`, `record_result`, `record_failure`, `expire_due`; the webhook stage is
services/async_deliveries.py), each call one transaction. The routes' side (enqueue, status,
cancel, queue status) is services/async_requests.py; the statuses follow
`domain.async_requests`.

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

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from chainyard.domain import async_requests as d
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.base import utcnow
from chainyard.store.chains import ChainDeployment
from chainyard.store.db import Database
from chainyard.store.environments import Environment

R = d.RequestStatus
W = d.WebhookStatus

# A claimer that dies holds its requests this long; a running request renews well before.
LEASE_SECONDS = 30.0
# Any constant: the key of the advisory lock that serializes claims on PostgreSQL.
_CLAIM_LOCK_KEY = 0x6379_6171


@dataclasses.dataclass(frozen=True)
class Claimed:
    """A request a runner now holds for its predict call (see `claim`)."""

    request_id: str
    workspace_id: str
    chain_id: str
    target: d.AsyncTarget
    # The deployment to call: the target's current one when claimed.
    deployment_id: str
    model_input: dict[str, Any]
    webhook_endpoint: str | None
    priority: int
    created_at: dt.datetime
    expires_at: dt.datetime
    retry: d.RetryConfig
    # This attempt's number (1 = the first); a takeover re-runs the lost attempt's number.
    attempt: int
    # Whether the request was taken over from a holder whose lease ran out.
    taken_over: bool
    lease_until: dt.datetime


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A result (or failure, or expiry) to deliver to a webhook, held by the runner."""

    request_id: str
    workspace_id: str
    chain_id: str
    deployment_id: str
    webhook_endpoint: str
    # SUCCEEDED, FAILED or EXPIRED: how the predict stage ended.
    outcome: d.RequestStatus
    # The chain's output (SUCCEEDED), else None.
    output: Any
    errors: list[dict[str, str]]
    # This delivery's number (1 = the first).
    attempt: int
    lease_until: dt.datetime


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What a report did. `held` False: the holder had lost the request, nothing changed.
    `retry_at`: a failed attempt that will be retried then. `delivery`: the outcome's webhook,
    now held by the same holder for the same lease, to deliver right away."""

    held: bool
    retry_at: dt.datetime | None = None
    delivery: Delivery | None = None


NOT_HELD = Recorded(held=False)


def _now(now: dt.datetime | None) -> dt.datetime:
    return utcnow() if now is None else now


def _lease(now: dt.datetime, seconds: float) -> dt.datetime:
    return now + dt.timedelta(seconds=seconds)


# -- the runner's side: the predict stage ---------------------------------------------------------


def _running_predicts(now: dt.datetime) -> Any:
    """Requests whose predict call a live lease holds (what the per-deployment cap counts)."""
    return and_(
        AsyncRequest.status == R.IN_PROGRESS.value,
        AsyncRequest.outcome.is_(None),
        AsyncRequest.lease_holder.is_not(None),
        AsyncRequest.lease_until > now,
    )


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
    until = _lease(when, lease_seconds)
    with db.write() as session:
        if not db.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK_KEY})
        running: dict[str, int] = {}
        if per_deployment_cap is not None:
            running = {
                dep: int(n)
                for dep, n in session.execute(
                    select(AsyncRequest.deployment_id, func.count())
                    .where(_running_predicts(when))
                    .group_by(AsyncRequest.deployment_id)
                ).all()
            }
        full = sorted(dep for dep, n in running.items() if n >= (per_deployment_cap or 0))
        candidates = _candidates(session, when, limit, full)
        _follow_targets(session, candidates)
        taken: list[Claimed] = []
        for row in candidates:
            if len(taken) >= limit:
                break
            busy = running.get(row.deployment_id, 0)
            if per_deployment_cap is not None and busy >= per_deployment_cap:
                continue
            claimed = _take(row, holder, when, until)
            if claimed is not None:
                taken.append(claimed)
                running[row.deployment_id] = busy + 1
        return taken


def _candidates(
    session: Session, now: dt.datetime, limit: int, full: Sequence[str]
) -> list[AsyncRequest]:
    order = (AsyncRequest.priority, AsyncRequest.created_at, AsyncRequest.id)
    # Two reads, each in its index's order, rather than one with an OR that would sort every
    # queued row: the QUEUED ones, and the few IN_PROGRESS ones that are free again.
    queued = select(AsyncRequest).where(
        AsyncRequest.status == R.QUEUED.value, AsyncRequest.expires_at > now
    )
    free_again = select(AsyncRequest).where(
        AsyncRequest.status == R.IN_PROGRESS.value,
        AsyncRequest.outcome.is_(None),
        AsyncRequest.next_attempt_at <= now,
        or_(AsyncRequest.lease_until.is_(None), AsyncRequest.lease_until <= now),
    )
    rows: list[AsyncRequest] = []
    for query in (queued, free_again):
        if full:
            query = query.where(AsyncRequest.deployment_id.not_in(full))
        query = query.order_by(*order).limit(limit).with_for_update(skip_locked=True)
        rows.extend(session.scalars(query))
    rows.sort(key=lambda r: (r.priority, r.created_at, r.id))
    return rows


def _follow_targets(session: Session, rows: Iterable[AsyncRequest]) -> None:
    """Moves requests asked of an environment or of the development deployment to the target's
    current deployment, with every other QUEUED request of the same target."""
    wanted: dict[tuple[str, str, str | None], str | None] = {}
    for row in rows:
        if row.target != d.DEPLOYMENT:
            wanted.setdefault((row.chain_id, row.target, row.environment), None)
    if not wanted:
        return
    for chain_id, kind, environment in list(wanted):
        if kind == d.ENVIRONMENT:
            current = session.scalar(
                select(Environment.current_deployment_id).where(
                    Environment.chain_id == chain_id, Environment.name == environment
                )
            )
        else:
            current = session.scalar(
                select(ChainDeployment.id)
                .where(
                    ChainDeployment.chain_id == chain_id,
                    ChainDeployment.is_development.is_(True),
                )
                .order_by(ChainDeployment.created_at.desc(), ChainDeployment.id.desc())
                .limit(1)
            )
        wanted[(chain_id, kind, environment)] = current
    moved: set[tuple[str, str, str | None]] = set()
    for row in rows:
        key = (row.chain_id, row.target, row.environment)
        current = wanted.get(key)
        # No current deployment (an environment emptied, a development deployment deleted):
        # it stays where it was, and its call says what is wrong.
        if current is None or current == row.deployment_id:
            continue
        if key not in moved:
            moved.add(key)
            session.execute(
                update(AsyncRequest)
                .where(
                    AsyncRequest.status == R.QUEUED.value,
                    AsyncRequest.chain_id == row.chain_id,
                    AsyncRequest.target == row.target,
                    AsyncRequest.environment.is_(None)
                    if row.environment is None
                    else AsyncRequest.environment == row.environment,
                    AsyncRequest.deployment_id != current,
                )
                .values(deployment_id=current)
                .execution_options(synchronize_session=False)
            )
        row.deployment_id = current


def _take(row: AsyncRequest, holder: str, now: dt.datetime, until: dt.datetime) -> Claimed | None:
    taken_over = row.status == R.IN_PROGRESS.value and row.lease_holder is not None
    if taken_over:
        row.lost_leases += 1
        if row.lost_leases > d.MAX_LOST_LEASES:
            _end(
                row,
                d.failed(row.webhook_endpoint is not None),
                d.error(
                    d.ErrorCode.INTERNAL_SERVER_ERROR,
                    f"the request lost its server {row.lost_leases} times while it ran; "
                    "it is not run again",
                ),
                now,
            )
            return None
    else:
        row.attempts += 1
    if row.status != R.IN_PROGRESS.value:
        row.status = R.IN_PROGRESS.value
        row.status_at = now
    row.lease_holder = holder
    row.lease_until = until
    return Claimed(
        request_id=row.id,
        workspace_id=row.workspace_id,
        chain_id=row.chain_id,
        target=d.AsyncTarget(row.target, row.environment),  # type: ignore[arg-type]
        deployment_id=row.deployment_id,
        model_input=row.model_input,
        webhook_endpoint=row.webhook_endpoint,
        priority=row.priority,
        created_at=row.created_at,
        expires_at=row.expires_at,
        retry=d.RetryConfig.from_json(row.retry),
        attempt=row.attempts,
        taken_over=taken_over,
        lease_until=until,
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
    return {
        row.id: row
        for row in rows
        if row.lease_holder == holder and row.status == R.IN_PROGRESS.value and row.outcome is None
    }


def _end(
    row: AsyncRequest,
    move: d.Move,
    err: dict[str, str] | None,
    now: dt.datetime,
    *,
    output: Any = None,
    holder: str | None = None,
    lease_until: dt.datetime | None = None,
) -> Delivery | None:
    """Ends the predict stage with `move`; with a webhook, the outcome is then due for
    delivery, held by `holder` if one is given (it delivers at once), else by nobody."""
    if not d.may_move(d.RequestStatus(row.status), move.status):
        raise ValueError(f"async request {row.id}: {row.status} cannot become {move.status}")
    if move.status.value != row.status or move.webhook_status.value != row.webhook_status:
        row.status_at = now
    row.status = move.status.value
    row.webhook_status = move.webhook_status.value
    row.outcome = None if move.outcome is None else move.outcome.value
    if err is not None:
        row.errors = [*row.errors, err]
    if move.outcome is None or row.webhook_endpoint is None:
        row.result = None
        row.lease_holder = None
        row.lease_until = None
        return None
    row.result = output
    row.webhook_next_at = now
    row.lease_holder = holder
    row.lease_until = lease_until if holder is not None else None
    if holder is None or lease_until is None:
        return None
    row.webhook_attempts += 1
    return delivery_of(row)


def delivery_of(row: AsyncRequest) -> Delivery:
    assert row.outcome is not None and row.webhook_endpoint is not None
    assert row.lease_until is not None
    return Delivery(
        request_id=row.id,
        workspace_id=row.workspace_id,
        chain_id=row.chain_id,
        deployment_id=row.deployment_id,
        webhook_endpoint=row.webhook_endpoint,
        outcome=d.RequestStatus(row.outcome),
        output=row.result,
        errors=list(row.errors),
        attempt=row.webhook_attempts,
        lease_until=row.lease_until,
    )


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
    until = _lease(when, lease_seconds)
    answers = dict.fromkeys(outputs, NOT_HELD)
    with db.write() as session:
        for request_id, row in _held_predicts(session, holder, outputs).items():
            if ran_on and request_id in ran_on:
                row.deployment_id = ran_on[request_id]
            delivery = _end(
                row,
                d.succeeded(row.webhook_endpoint is not None),
                None,
                when,
                output=outputs[request_id],
                holder=holder,
                lease_until=until,
            )
            answers[request_id] = Recorded(held=True, delivery=delivery)
    return answers


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
        delivery = _end(
            row,
            d.failed(row.webhook_endpoint is not None),
            err,
            when,
            holder=holder,
            lease_until=_lease(when, lease_seconds),
        )
        return Recorded(held=True, delivery=delivery)


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
            _end(row, d.expired(row.webhook_endpoint is not None), d.expiry_error(waited), when)
        return [row.id for row in rows]
