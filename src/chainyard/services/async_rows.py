"""The async queue's rows as the runner's side reads and changes them (services/async_queue.py
holds the use cases and their transactions): what a claim takes, how a request's predict stage
ends, and the batch paths that a busy runner runs several times a second.

The batch paths (claiming, recording results) read plain columns with statements built once and
write with one executemany per set of changed columns, rather than loading ORM objects and
flushing them: at a few thousand requests a second the ORM's bookkeeping was most of the
runner's cost. The rarer changes (a failure, an expiry, a release) keep the ORM's rows; both
go through `ending`, the one account of how a request's predict stage ends.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Integer, Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from chainyard.domain import async_requests as d
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.base import UTCDateTime
from chainyard.store.chains import ChainDeployment
from chainyard.store.environments import Environment

R = d.RequestStatus
T = cast(Table, AsyncRequest.__table__)


@dataclasses.dataclass(frozen=True)
class Claimed:
    """A request a runner now holds for its predict call (see `async_queue.claim`)."""

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


# -- how a request's predict stage ends -----------------------------------------------------------


def ending(
    row: Any,
    move: d.Move,
    err: dict[str, str] | None,
    now: dt.datetime,
    *,
    output: Any = None,
    holder: str | None = None,
    lease_until: dt.datetime | None = None,
) -> tuple[dict[str, Any], Delivery | None]:
    """What ending the predict stage of `row` (an AsyncRequest, or a read of its columns) with
    `move` changes: the new column values; and, with a webhook and a `holder`, the delivery that
    is then due, held by `holder` (it delivers at once; without a holder, by nobody)."""
    if not d.may_move(d.RequestStatus(row.status), move.status):
        raise ValueError(f"async request {row.id}: {row.status} cannot become {move.status}")
    values: dict[str, Any] = {}
    if move.status.value != row.status or move.webhook_status.value != row.webhook_status:
        values["status_at"] = now
    values["status"] = move.status.value
    values["webhook_status"] = move.webhook_status.value
    values["outcome"] = None if move.outcome is None else move.outcome.value
    if err is not None:
        values["errors"] = [*row.errors, err]
    if move.outcome is None or row.webhook_endpoint is None:
        values.update(result=None, lease_holder=None, lease_until=None)
        return values, None
    values.update(
        result=output,
        webhook_next_at=now,
        lease_holder=holder,
        lease_until=lease_until if holder is not None else None,
    )
    if holder is None or lease_until is None:
        return values, None
    values["webhook_attempts"] = row.webhook_attempts + 1
    return values, delivery(row, values)


def end(
    row: AsyncRequest,
    move: d.Move,
    err: dict[str, str] | None,
    now: dt.datetime,
    *,
    output: Any = None,
    holder: str | None = None,
    lease_until: dt.datetime | None = None,
) -> Delivery | None:
    """`ending`, applied to an ORM row."""
    values, due = ending(row, move, err, now, output=output, holder=holder, lease_until=lease_until)
    for name, value in values.items():
        setattr(row, name, value)
    return due


def delivery(row: Any, changed: Mapping[str, Any] | None = None) -> Delivery:
    """The delivery of `row` (with its `changed` columns) that its holder is to make."""
    changed = changed or {}

    def get(name: str) -> Any:
        return changed[name] if name in changed else getattr(row, name)

    assert get("outcome") is not None and get("webhook_endpoint") is not None
    assert get("lease_until") is not None
    return Delivery(
        request_id=get("id"),
        workspace_id=get("workspace_id"),
        chain_id=get("chain_id"),
        deployment_id=get("deployment_id"),
        webhook_endpoint=get("webhook_endpoint"),
        outcome=d.RequestStatus(get("outcome")),
        output=get("result"),
        errors=list(get("errors")),
        attempt=get("webhook_attempts"),
        lease_until=get("lease_until"),
    )


def holds_predict(row: Any, holder: str) -> bool:
    """Whether `holder` holds `row`'s predict call (not its delivery, not a finished one)."""
    return bool(
        row.lease_holder == holder and row.status == R.IN_PROGRESS.value and row.outcome is None
    )


_UPDATE_BY_ID = update(T).where(T.c.id == bindparam("_id"))


def write(session: Session, changes: Sequence[Mapping[str, Any]]) -> None:
    """Writes changed columns of rows by id (key `_id`), one executemany per set of columns."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    connection = session.connection()
    for group in groups.values():
        connection.execute(_UPDATE_BY_ID, list(group))


# -- claims ----------------------------------------------------------------------------------------

# Every request in its predict stage past its first claim, in light columns: those a live lease
# holds are what the per-deployment cap counts, the others (a retry waiting for its time, a
# request whose holder's lease ran out) are taken again once due. A handful per deployment.
_IN_PROGRESS = select(
    T.c.id,
    T.c.deployment_id,
    T.c.priority,
    T.c.created_at,
    T.c.lease_holder,
    T.c.lease_until,
    T.c.next_attempt_at,
).where(T.c.status == R.IN_PROGRESS.value, T.c.outcome.is_(None))
_CANDIDATE_COLUMNS = [
    T.c[name]
    for name in (
        "id",
        "workspace_id",
        "chain_id",
        "target",
        "environment",
        "deployment_id",
        "model_input",
        "webhook_endpoint",
        "priority",
        "created_at",
        "expires_at",
        "retry",
        "status",
        "attempts",
        "lost_leases",
        "lease_holder",
    )
]
_ORDER = (T.c.priority, T.c.created_at, T.c.id)
# The next QUEUED requests, read along the claim index; the IN_PROGRESS ones that are free again
# are found among those `_IN_PROGRESS` read (rather than with an OR here, which would sort every
# queued row), and read whole only when there are some.
_QUEUED = (
    select(*_CANDIDATE_COLUMNS)
    .where(
        T.c.status == R.QUEUED.value,
        # Not a range on the expiry index (status, expires_at), which SQLite's planner would
        # otherwise pick, sorting every queued row for each claim: wrapped, the comparison is
        # checked row by row along the claim index, whose order is the claim's.
        func.coalesce(T.c.expires_at, T.c.created_at) > bindparam("now", type_=UTCDateTime()),
        T.c.deployment_id.not_in(bindparam("full", expanding=True)),
    )
    .order_by(*_ORDER)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
_FREE_AGAIN = (
    select(*_CANDIDATE_COLUMNS)
    .where(
        T.c.id.in_(bindparam("ids", expanding=True)),
        # Again, in the lock: a report may have changed them since they were read.
        T.c.status == R.IN_PROGRESS.value,
        T.c.outcome.is_(None),
        T.c.next_attempt_at <= bindparam("now"),
        or_(T.c.lease_until.is_(None), T.c.lease_until <= bindparam("now")),
    )
    .with_for_update(skip_locked=True)
)


def claim_in(
    session: Session,
    holder: str,
    *,
    limit: int,
    now: dt.datetime,
    until: dt.datetime,
    per_deployment_cap: int | None,
) -> list[Claimed]:
    """`async_queue.claim` within a transaction (on PostgreSQL, one that holds the claim lock)."""
    connection = session.connection()
    running: collections.Counter[str] = collections.Counter()
    free_again: list[Any] = []
    for r in connection.execute(_IN_PROGRESS):
        if r.lease_holder is not None and r.lease_until is not None and r.lease_until > now:
            running[r.deployment_id] += 1
        elif r.next_attempt_at <= now:
            free_again.append(r)
    cap = per_deployment_cap
    full = sorted(dep for dep, n in running.items() if cap is not None and n >= cap)
    params = {"now": now, "full": full, "limit": limit}
    rows = [dict(r._mapping) for r in connection.execute(_QUEUED, params)]
    free_again = sorted(
        (r for r in free_again if r.deployment_id not in full),
        key=lambda r: (r.priority, r.created_at, r.id),
    )[:limit]
    if free_again:
        again = {"now": now, "ids": [r.id for r in free_again]}
        rows.extend(dict(r._mapping) for r in connection.execute(_FREE_AGAIN, again))
    rows.sort(key=lambda r: (r["priority"], r["created_at"], r["id"]))
    _follow_targets(session, rows)
    taken: list[Claimed] = []
    changes: list[dict[str, Any]] = []
    for row in rows:
        if len(taken) >= limit:
            break
        if cap is not None and running[row["deployment_id"]] >= cap:
            continue
        claimed = _take(session, row, holder, now, until, changes)
        if claimed is not None:
            taken.append(claimed)
            running[row["deployment_id"]] += 1
    write(session, changes)
    return taken


_E = cast(Table, Environment.__table__)
_D = cast(Table, ChainDeployment.__table__)
_ENVIRONMENT_CURRENT = select(_E.c.current_deployment_id).where(
    _E.c.chain_id == bindparam("chain"), _E.c.name == bindparam("env")
)
_DEVELOPMENT_CURRENT = (
    select(_D.c.id)
    .where(_D.c.chain_id == bindparam("chain"), _D.c.is_development.is_(True))
    .order_by(_D.c.created_at.desc(), _D.c.id.desc())
    .limit(1)
)


def _follow_targets(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Moves requests asked of an environment or of the development deployment to the target's
    current deployment, with every other QUEUED request of the same target."""
    wanted: dict[tuple[str, str, str | None], str | None] = {}
    for row in rows:
        if row["target"] != d.DEPLOYMENT:
            wanted.setdefault((row["chain_id"], row["target"], row["environment"]), None)
    connection = session.connection()
    for chain_id, kind, environment in list(wanted):
        query = _ENVIRONMENT_CURRENT if kind == d.ENVIRONMENT else _DEVELOPMENT_CURRENT
        current = connection.execute(query, {"chain": chain_id, "env": environment}).scalar()
        wanted[(chain_id, kind, environment)] = current
    moved: set[tuple[str, str, str | None]] = set()
    for row in rows:
        key = (row["chain_id"], row["target"], row["environment"])
        current = wanted.get(key)
        # No current deployment (an environment emptied, a development deployment deleted):
        # it stays where it was, and its call says what is wrong.
        if current is None or current == row["deployment_id"]:
            continue
        if key not in moved:
            moved.add(key)
            session.execute(
                update(AsyncRequest)
                .where(
                    AsyncRequest.status == R.QUEUED.value,
                    AsyncRequest.chain_id == row["chain_id"],
                    AsyncRequest.target == row["target"],
                    AsyncRequest.environment.is_(None)
                    if row["environment"] is None
                    else AsyncRequest.environment == row["environment"],
                    AsyncRequest.deployment_id != current,
                )
                .values(deployment_id=current)
                .execution_options(synchronize_session=False)
            )
        # Written with the claim: an IN_PROGRESS retry moves too.
        row["deployment_id"] = current
        row["moved"] = True


def _take(
    session: Session,
    row: dict[str, Any],
    holder: str,
    now: dt.datetime,
    until: dt.datetime,
    changes: list[dict[str, Any]],
) -> Claimed | None:
    """Takes a candidate; its changes go to `changes`, written together by the claim."""
    taken_over = row["status"] == R.IN_PROGRESS.value and row["lease_holder"] is not None
    change: dict[str, Any] = {"_id": row["id"]}
    if row.get("moved"):
        change["deployment_id"] = row["deployment_id"]
    if taken_over:
        change["lost_leases"] = row["lost_leases"] + 1
        if change["lost_leases"] > d.MAX_LOST_LEASES:
            _give_up(session, row, change["lost_leases"], now)
            return None
        attempt = row["attempts"]
    else:
        attempt = change["attempts"] = row["attempts"] + 1
    if row["status"] != R.IN_PROGRESS.value:
        change["status"] = R.IN_PROGRESS.value
        change["status_at"] = now
    change["lease_holder"] = holder
    change["lease_until"] = until
    changes.append(change)
    return Claimed(
        request_id=row["id"],
        workspace_id=row["workspace_id"],
        chain_id=row["chain_id"],
        target=d.AsyncTarget(row["target"], row["environment"]),
        deployment_id=row["deployment_id"],
        model_input=row["model_input"],
        webhook_endpoint=row["webhook_endpoint"],
        priority=row["priority"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        retry=d.RetryConfig.from_json(row["retry"]),
        attempt=attempt,
        taken_over=taken_over,
        lease_until=until,
    )


def _give_up(session: Session, row: Mapping[str, Any], lost_leases: int, now: dt.datetime) -> None:
    """A request that lost its server once too often fails (rare: the ORM's row will do)."""
    lost = session.get(AsyncRequest, row["id"])
    assert lost is not None
    lost.lost_leases = lost_leases
    lost.deployment_id = row["deployment_id"]
    end(
        lost,
        d.failed(lost.webhook_endpoint is not None),
        d.error(
            d.ErrorCode.INTERNAL_SERVER_ERROR,
            f"the request lost its server {lost_leases} times while it ran; it is not run again",
        ),
        now,
    )


# -- results ---------------------------------------------------------------------------------------

# What recording a result reads of a request (`ending` and `delivery` read these).
_RESULT_ROWS = (
    select(
        *(
            T.c[name]
            for name in (
                "id",
                "workspace_id",
                "chain_id",
                "deployment_id",
                "webhook_endpoint",
                "status",
                "webhook_status",
                "outcome",
                "errors",
                "lease_holder",
                "webhook_attempts",
            )
        )
    )
    .where(T.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(T.c.id)
    .with_for_update()
)


# `ending(row, d.succeeded(False), ...)` of a request without a webhook that `holder` holds.
_SUCCEED_PLAIN = (
    update(T)
    .where(
        T.c.id.in_(bindparam("ids", expanding=True)),
        T.c.lease_holder == bindparam("holder"),
        T.c.status == R.IN_PROGRESS.value,
        T.c.outcome.is_(None),
        T.c.webhook_endpoint.is_(None),
    )
    .values(
        status=R.SUCCEEDED.value,
        webhook_status=d.WebhookStatus.NO_WEBHOOK_PROVIDED.value,
        status_at=bindparam("now", type_=UTCDateTime()),
        outcome=None,
        result=None,
        lease_holder=None,
        lease_until=None,
    )
    .returning(T.c.id)
)


def record_results_in(
    session: Session,
    holder: str,
    outputs: Mapping[str, Any],
    *,
    ran_on: Mapping[str, str] | None,
    now: dt.datetime,
    until: dt.datetime,
) -> dict[str, Recorded]:
    """`async_queue.record_results` within a transaction."""
    answers = dict.fromkeys(outputs, NOT_HELD)
    connection = session.connection()
    # Most requests have no webhook: their success is the same change for all, one statement.
    plain = sorted(set(outputs) - set(ran_on or ()))
    if plain:
        done = connection.execute(_SUCCEED_PLAIN, {"ids": plain, "holder": holder, "now": now})
        for (request_id,) in done:
            answers[request_id] = Recorded(held=True)
    rest = sorted(i for i in outputs if answers[i] is NOT_HELD)
    if not rest:
        return answers
    # Locked in id order, so that two transactions lock in the same order.
    rows = connection.execute(_RESULT_ROWS, {"ids": rest})
    changes: list[dict[str, Any]] = []
    for row in rows:
        if not holds_predict(row, holder):
            continue
        values, due = ending(
            row,
            d.succeeded(row.webhook_endpoint is not None),
            None,
            now,
            output=outputs[row.id],
            holder=holder,
            lease_until=until,
        )
        deployment = (ran_on or {}).get(row.id)
        if deployment is not None:
            values["deployment_id"] = deployment
            if due is not None:
                due = dataclasses.replace(due, deployment_id=deployment)
        changes.append({"_id": row.id, **values})
        answers[row.id] = Recorded(held=True, delivery=due)
    write(session, changes)
    return answers
