"""The async request queue (docs/async-inference.md): one row per `async_run_remote` request,
from its acceptance to the delivery of its result. `services/async_queue.py` owns every change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chainyard.store.base import Base, UTCDateTime


class AsyncRequest(Base):
    __tablename__ = "async_requests"
    __table_args__ = (
        # The claim: the next QUEUED requests in (priority, created_at) order, read in index
        # order; and the IN_PROGRESS ones (a handful per deployment) whose lease ran out.
        Index("ix_async_requests_claim", "status", "priority", "created_at"),
        # Expiry: the QUEUED requests whose time in the queue is up.
        Index("ix_async_requests_expiry", "status", "expires_at"),
        # Queue status and the per-deployment cap on requests in flight.
        Index("ix_async_requests_deployment", "deployment_id", "status"),
        # The workspace limit on open requests.
        Index("ix_async_requests_workspace", "workspace_id", "status"),
        # Webhook deliveries that are due.
        Index("ix_async_requests_webhook", "webhook_status", "webhook_next_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # A deleted chain takes its requests with it (their status is then a 404, as the chain's).
    chain_id: Mapped[str] = mapped_column(ForeignKey("chains.id", ondelete="CASCADE"), index=True)
    # The target as asked: "environment" (with `environment`), "development" or "deployment".
    target: Mapped[str] = mapped_column(String(20))
    environment: Mapped[str | None] = mapped_column(String(100))
    # The deployment it runs on: resolved at enqueue, again when a server claims it (a promotion
    # meanwhile moves it to the new deployment). No foreign key: a request outlives the
    # deployment it ran on, and its status still names it.
    deployment_id: Mapped[str] = mapped_column(String(16))
    model_input: Mapped[dict[str, Any]] = mapped_column(JSON)
    webhook_endpoint: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # created_at + max_time_in_queue_seconds: a request still QUEUED then is EXPIRED.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # domain.async_requests.RetryConfig, defaults filled in.
    retry: Mapped[dict[str, Any]] = mapped_column(JSON)
    # domain.async_requests.RequestStatus / WebhookStatus, as the status endpoint shows them.
    status: Mapped[str] = mapped_column(String(20))
    webhook_status: Mapped[str] = mapped_column(String(20))
    status_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # How the predict stage ended (SUCCEEDED, FAILED, EXPIRED) while its webhook is delivered;
    # NULL before it ends, and once the webhook stage is over.
    outcome: Mapped[str | None] = mapped_column(String(20))
    # Predict attempts started and not lost (the retry config counts these), and attempts lost
    # with their server (domain.async_requests.MAX_LOST_LEASES bounds them).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lost_leases: Mapped[int] = mapped_column(Integer, default=0)
    # When the predict stage may be taken next (a retry waits here).
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # The server holding the request (its predict call or its webhook delivery), and until when.
    lease_holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # AsyncRequestError entries: {"code", "message"}.
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # The chain's output until its webhook has it; never kept once delivered (Baseten stores no
    # outputs), and never stored for a request without a webhook.
    result: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_next_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Why the last delivery failed (for operators; not part of the status answer).
    webhook_error: Mapped[str | None] = mapped_column(Text)
