"""Async requests as the routes see them (docs/async-inference.md): enqueue, status, cancel and
queue status, each in one transaction, scoped to the caller's workspace, and the depths the
dashboard shows. The runner's side (claims, leases, reports) is services/async_queue.py; the
statuses follow `domain.async_requests`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import cast

from sqlalchemy import CursorResult, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from chainyard.domain import async_requests as d
from chainyard.domain.errors import Forbidden, NotFound, RateLimited
from chainyard.domain.ids import new_id
from chainyard.schemas.async_requests import (
    AsyncQueueStatusResponse,
    AsyncRequestError,
    AsyncRequestStatusResponse,
    AsyncRunRemoteResponse,
    CancelAsyncRequestResponse,
)
from chainyard.services import lookups
from chainyard.services.context import Actor
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.base import utcnow
from chainyard.store.chains import ChainDeployment
from chainyard.store.db import Database, after_commit
from chainyard.store.environments import Environment

R = d.RequestStatus
W = d.WebhookStatus

# Request ids are long: a busy queue makes millions, and an 8-character id would collide.
REQUEST_ID_LENGTH = 20
# While the workspace limit is full, how long a client should wait before trying again.
LIMIT_RETRY_AFTER_SECONDS = 5.0


def _need_invoke(actor: Actor) -> None:
    if not actor.can_invoke:
        raise Forbidden(f"an API key of type {actor.key_type} may not call chains")


def enqueue(
    db: Database,
    actor: Actor,
    *,
    chain_id: str,
    deployment_id: str,
    target: d.AsyncTarget,
    spec: d.AsyncRequestSpec,
    now: dt.datetime | None = None,
    workspace_limit: int = d.WORKSPACE_LIMIT,
    on_enqueued: Callable[[], None] | None = None,
) -> AsyncRunRemoteResponse:
    """Stores a checked request (`domain.async_requests.parse_body`) as QUEUED and answers its
    id; once this returns, the row is committed and the request will run (the 201 may be sent).

    `chain_id` and `deployment_id` are what `services.inference.resolve` found for this actor
    and target: this function trusts them. Raises RateLimited (429) when the workspace already
    holds `workspace_limit` QUEUED or IN_PROGRESS requests; on PostgreSQL, concurrent enqueues
    may pass the limit by as many requests as run at once. `on_enqueued` runs after the commit
    (to wake the runner)."""
    _need_invoke(actor)
    when = utcnow() if now is None else now
    request_id = new_id(REQUEST_ID_LENGTH)
    with db.write() as session:
        if _workspace_full(session, actor.workspace_id, workspace_limit):
            raise RateLimited(
                f"the workspace holds {workspace_limit} queued or in-progress async requests, "
                "its limit; retry once some have run",
                retry_after=LIMIT_RETRY_AFTER_SECONDS,
            )
        session.add(
            AsyncRequest(
                id=request_id,
                workspace_id=actor.workspace_id,
                chain_id=chain_id,
                target=target.kind,
                environment=target.environment,
                deployment_id=deployment_id,
                model_input=spec.model_input,
                webhook_endpoint=spec.webhook_endpoint,
                priority=spec.priority,
                created_at=when,
                expires_at=when + dt.timedelta(seconds=spec.max_time_in_queue_seconds),
                retry=spec.retry.to_json(),
                status=R.QUEUED.value,
                webhook_status=d.initial_webhook_status(spec.webhook_endpoint is not None).value,
                status_at=when,
                attempts=0,
                lost_leases=0,
                next_attempt_at=when,
                errors=[],
                webhook_attempts=0,
            )
        )
        if on_enqueued is not None:
            after_commit(session, on_enqueued)
    return AsyncRunRemoteResponse(request_id=request_id)


def _workspace_full(session: Session, workspace_id: str, limit: int) -> bool:
    # Whether a limit-th open row exists: reads at most `limit` entries of the workspace index
    # (selecting only its columns, so that the index alone can answer), and no more than there
    # are open requests; a count would read them all every time.
    probe = (
        select(AsyncRequest.status)
        .where(
            AsyncRequest.workspace_id == workspace_id,
            AsyncRequest.status.in_([R.QUEUED.value, R.IN_PROGRESS.value]),
        )
        .offset(max(limit - 1, 0))
        .limit(1)
    )
    return session.execute(probe).first() is not None


def _owned(session: Session, actor: Actor, request_id: str) -> AsyncRequest:
    row = session.get(AsyncRequest, request_id)
    if row is None or row.workspace_id != actor.workspace_id:
        raise NotFound(f"async request '{request_id}' not found", code="ASYNC_REQUEST_NOT_FOUND")
    return row


def status(db: Database, actor: Actor, request_id: str) -> AsyncRequestStatusResponse:
    """`GET /async_request/{request_id}`. Another workspace's request is a 404, as a missing
    one."""
    _need_invoke(actor)
    with db.read() as session:
        return status_view(_owned(session, actor, request_id))


def status_view(row: AsyncRequest) -> AsyncRequestStatusResponse:
    return AsyncRequestStatusResponse(
        request_id=row.id,
        chain_id=row.chain_id,
        deployment_id=row.deployment_id,
        status=R(row.status).value,
        webhook_status=W(row.webhook_status).value,
        created_at=row.created_at,
        status_at=row.status_at,
        errors=[AsyncRequestError.model_validate(e) for e in row.errors],
    )


def cancel(
    db: Database, actor: Actor, request_id: str, *, now: dt.datetime | None = None
) -> CancelAsyncRequestResponse:
    """`DELETE /async_request/{request_id}`: a QUEUED request becomes CANCELED (its webhook, if
    it has one, CANCELED too: nothing is delivered); any other status is answered with
    `canceled: false` and why. One conditional update, so a claim and a cancel never both win.
    """
    _need_invoke(actor)
    when = utcnow() if now is None else now
    with db.write() as session:
        moved = cast(
            CursorResult[tuple[()]],
            session.execute(
                update(AsyncRequest)
                .where(
                    AsyncRequest.id == request_id,
                    AsyncRequest.workspace_id == actor.workspace_id,
                    AsyncRequest.status == R.QUEUED.value,
                )
                .values(
                    status=R.CANCELED.value,
                    webhook_status=case(
                        (AsyncRequest.webhook_endpoint.is_(None), W.NO_WEBHOOK_PROVIDED.value),
                        else_=W.CANCELED.value,
                    ),
                    status_at=when,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        if moved.rowcount == 1:
            return CancelAsyncRequestResponse(
                request_id=request_id, canceled=True, message="the request was canceled"
            )
        row = _owned(session, actor, request_id)
        return CancelAsyncRequestResponse(
            request_id=request_id,
            canceled=False,
            message=f"the request is {row.status}: only QUEUED requests can be canceled",
        )


def queue_status(
    db: Database, actor: Actor, *, chain_id: str, deployment_id: str, target: d.AsyncTarget
) -> AsyncQueueStatusResponse:
    """`async_queue_status` of a target that `services.inference.resolve` resolved to
    `deployment_id`. Queued: the QUEUED requests that will run there, i.e. those asked of the
    same target (an environment's, queued before a promotion, run on its new deployment) and
    those stored for that deployment. In progress: the IN_PROGRESS requests on the deployment
    (a success whose webhook is being delivered included, as its status says)."""
    _need_invoke(actor)
    same_target = (
        AsyncRequest.deployment_id == deployment_id
        if target.kind == d.DEPLOYMENT
        else and_(
            AsyncRequest.chain_id == chain_id,
            AsyncRequest.target == target.kind,
            AsyncRequest.environment.is_(None)
            if target.environment is None
            else AsyncRequest.environment == target.environment,
        )
    )
    with db.read() as session:
        queued = session.scalar(
            select(func.count())
            .select_from(AsyncRequest)
            .where(
                AsyncRequest.workspace_id == actor.workspace_id,
                AsyncRequest.status == R.QUEUED.value,
                or_(AsyncRequest.deployment_id == deployment_id, same_target),
            )
        )
        running = session.scalar(
            select(func.count())
            .select_from(AsyncRequest)
            .where(
                AsyncRequest.workspace_id == actor.workspace_id,
                AsyncRequest.deployment_id == deployment_id,
                AsyncRequest.status == R.IN_PROGRESS.value,
            )
        )
    return AsyncQueueStatusResponse(
        model_id=chain_id,
        deployment_id=deployment_id,
        num_queued_requests=int(queued or 0),
        num_in_progress_requests=int(running or 0),
    )


@dataclasses.dataclass(frozen=True)
class Depth:
    queued: int = 0
    in_progress: int = 0


def depths(db: Database) -> dict[str, Depth]:
    """QUEUED and IN_PROGRESS requests per deployment id, for metrics, the dashboard and the
    autoscaler's demand (queued requests wake a deployment at zero)."""
    with db.read() as session:
        rows = session.execute(
            select(AsyncRequest.deployment_id, AsyncRequest.status, func.count())
            .where(AsyncRequest.status.in_([R.QUEUED.value, R.IN_PROGRESS.value]))
            .group_by(AsyncRequest.deployment_id, AsyncRequest.status)
        ).all()
    out: dict[str, Depth] = {}
    for deployment_id, row_status, n in rows:
        got = out.get(deployment_id, Depth())
        if row_status == R.QUEUED.value:
            got = dataclasses.replace(got, queued=int(n))
        else:
            got = dataclasses.replace(got, in_progress=int(n))
        out[deployment_id] = got
    return out


def depths_for_chain(db: Database, actor: Actor, chain_id: str) -> dict[str, Depth]:
    """The open requests of one chain of the actor's workspace per deployment, for the
    dashboard: management keys only; another workspace's chain is a 404. Counted where they will
    run: a QUEUED request asked of an environment (or of the development deployment) counts on
    that target's current deployment, as `queue_status` and the claim see it, so a promotion
    moves its backlog with it; IN_PROGRESS requests count on the deployment that runs them."""
    if not actor.can_manage:
        raise Forbidden(
            f"an API key of type {actor.key_type} may not use the management API",
            code="PERMISSION_DENIED",
        )
    with db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        rows = session.execute(
            select(
                AsyncRequest.deployment_id,
                AsyncRequest.status,
                AsyncRequest.target,
                AsyncRequest.environment,
                func.count(),
            )
            .where(
                AsyncRequest.chain_id == chain.id,
                AsyncRequest.status.in_([R.QUEUED.value, R.IN_PROGRESS.value]),
            )
            .group_by(
                AsyncRequest.deployment_id,
                AsyncRequest.status,
                AsyncRequest.target,
                AsyncRequest.environment,
            )
        ).all()
        current = _current_targets(session, chain.id) if rows else {}
    out: dict[str, Depth] = {}
    for deployment_id, row_status, target, environment, n in rows:
        if row_status == R.QUEUED.value:
            # No current deployment (an emptied environment): the claim leaves it where it is.
            where = current.get((target, environment)) or deployment_id
            got = out.get(where, Depth())
            out[where] = dataclasses.replace(got, queued=got.queued + int(n))
        else:
            got = out.get(deployment_id, Depth())
            out[deployment_id] = dataclasses.replace(got, in_progress=got.in_progress + int(n))
    return out


def _current_targets(session: Session, chain_id: str) -> dict[tuple[str, str | None], str | None]:
    """(target kind, environment) -> the deployment a request asked of it runs on now."""
    found: dict[tuple[str, str | None], str | None] = {
        (d.ENVIRONMENT, name): deployment_id
        for name, deployment_id in session.execute(
            select(Environment.name, Environment.current_deployment_id).where(
                Environment.chain_id == chain_id
            )
        ).all()
    }
    found[(d.DEVELOPMENT, None)] = session.scalar(
        select(ChainDeployment.id)
        .where(ChainDeployment.chain_id == chain_id, ChainDeployment.is_development.is_(True))
        .order_by(ChainDeployment.created_at.desc(), ChainDeployment.id.desc())
        .limit(1)
    )
    return found
