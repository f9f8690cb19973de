"""The webhook stage of async requests (docs/async-inference.md): taking the outcomes that are
due for delivery, with a lease as for predict calls (services/async_queue.py), and recording how
each delivery went. Sending is webhooks/delivery.py's business; when to try again after a failed
try is the caller's (it passes `retry_at`), so one policy decides it.

A delivery is due when the predict stage has ended with a webhook to call (`outcome` set,
webhook PENDING) and `webhook_next_at` has passed. `record_result` and `record_failure` hand the
first delivery straight to the runner that ran the request; expiries, retries after a failed
try, and deliveries whose holder died are found by `claim_deliveries`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from chainyard.domain import async_requests as d
from chainyard.services.async_queue import LEASE_SECONDS, Delivery, delivery_of
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.base import utcnow
from chainyard.store.db import Database

W = d.WebhookStatus
MAX_WEBHOOK_ERROR = 2000


def claim_deliveries(
    db: Database,
    holder: str,
    *,
    limit: int,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """Takes up to `limit` due deliveries, oldest due first, each held by `holder` until now +
    `lease_seconds` (a delivery whose holder's lease ran out is taken over and sent again:
    receivers may see a result twice, and tell by its request id)."""
    if limit <= 0:
        return []
    when = utcnow() if now is None else now
    until = when + dt.timedelta(seconds=lease_seconds)
    with db.write() as session:
        rows = session.scalars(
            select(AsyncRequest)
            .where(
                AsyncRequest.webhook_status == W.PENDING.value,
                AsyncRequest.webhook_next_at <= when,
                AsyncRequest.outcome.is_not(None),
                or_(AsyncRequest.lease_until.is_(None), AsyncRequest.lease_until <= when),
            )
            .order_by(AsyncRequest.webhook_next_at, AsyncRequest.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        out: list[Delivery] = []
        for row in rows:
            row.lease_holder = holder
            row.lease_until = until
            row.webhook_attempts += 1
            out.append(delivery_of(row))
        return out


def record_delivery(
    db: Database,
    holder: str,
    request_id: str,
    *,
    delivered: bool,
    error: str | None = None,
    retry_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """How a delivery that `holder` holds went. Delivered: the request takes its outcome's
    status (SUCCEEDED, FAILED, EXPIRED), webhook SUCCEEDED, and the output is dropped. Not
    delivered, with `retry_at`: it is due again then (webhook still PENDING). Not delivered,
    without: the last try failed: webhook FAILED, and a success becomes WEBHOOK_FAILED (a
    failure or expiry keeps its status). `error`: why it failed, kept for operators.
    Answers False, changing nothing, when `holder` no longer holds it."""
    when = utcnow() if now is None else now
    with db.write() as session:
        row = session.scalar(
            select(AsyncRequest).where(AsyncRequest.id == request_id).with_for_update()
        )
        if (
            row is None
            or row.lease_holder != holder
            or row.outcome is None
            or row.webhook_status != W.PENDING.value
        ):
            return False
        row.lease_holder = None
        row.lease_until = None
        if error is not None:
            row.webhook_error = error[:MAX_WEBHOOK_ERROR]
        if not delivered and retry_at is not None:
            row.webhook_next_at = retry_at
            return True
        move = d.webhook_done(d.RequestStatus(row.outcome), delivered)
        if not d.may_move(d.RequestStatus(row.status), move.status):
            raise ValueError(f"async request {row.id}: {row.status} cannot become {move.status}")
        row.status = move.status.value
        row.webhook_status = move.webhook_status.value
        row.status_at = when
        row.outcome = None
        row.result = None
        row.webhook_next_at = None
        return True
