"""The runner's store work, batched: one `turn` (in a worker thread) records every result,
failure, release and delivery that came in since the last one, expires what is due, and claims
new requests and deliveries. The results and the claim share one transaction
(`record_and_claim`), whatever their number; the rest are one short transaction each, and rare
under load (failures, deliveries).

A step that fails (the store is away) hands its reports back to be tried at the next turn: the
requests are still held, and their leases are renewed meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from chainyard.async_runner.calls import Failure
from chainyard.async_runner.deliveries import DeliveryReport
from chainyard.domain.errors import Unavailable
from chainyard.services import async_deliveries, async_queue
from chainyard.services.async_queue import Claimed, Delivery, Recorded
from chainyard.store.db import Database

log = logging.getLogger("chainyard.async")

# Expiries per transaction, and transactions per turn (the rest wait for the next turn).
EXPIRE_BATCH = 500
EXPIRE_ROUNDS = 4


@dataclasses.dataclass
class Pending:
    """Reports waiting for the next turn."""

    results: dict[str, Any] = dataclasses.field(default_factory=dict)
    failures: dict[str, Failure] = dataclasses.field(default_factory=dict)
    releases: set[str] = dataclasses.field(default_factory=set)
    deliveries: dict[str, DeliveryReport] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.results or self.failures or self.releases or self.deliveries)

    def ids(self) -> set[str]:
        return set(self.results) | set(self.failures) | self.releases | set(self.deliveries)

    def take(self) -> Pending:
        """Everything pending, leaving this empty."""
        taken = Pending(self.results, self.failures, self.releases, self.deliveries)
        self.results, self.failures, self.releases, self.deliveries = {}, {}, set(), {}
        return taken

    def merge(self, other: Pending) -> None:
        """Puts back reports a failed turn could not record (newer ones win)."""
        self.results = {**other.results, **self.results}
        self.failures = {**other.failures, **self.failures}
        self.releases |= other.releases
        self.deliveries = {**other.deliveries, **self.deliveries}

    def drop(self, request_ids: set[str]) -> None:
        """Forgets the reports of requests this runner no longer holds."""
        for key in request_ids:
            self.results.pop(key, None)
            self.failures.pop(key, None)
            self.releases.discard(key)
            self.deliveries.pop(key, None)


@dataclasses.dataclass
class Turn:
    reports: Pending
    expire: bool = False
    claim_limit: int = 0
    delivery_limit: int = 0


@dataclasses.dataclass
class Done:
    recorded: dict[str, Recorded] = dataclasses.field(default_factory=dict)
    # Delivery reports the store took (False: the runner no longer held that delivery).
    delivered: dict[str, bool] = dataclasses.field(default_factory=dict)
    released: set[str] = dataclasses.field(default_factory=set)
    expired: list[str] = dataclasses.field(default_factory=list)
    claimed: list[Claimed] = dataclasses.field(default_factory=list)
    deliveries: list[Delivery] = dataclasses.field(default_factory=list)
    # Reports to try again at the next turn.
    unrecorded: Pending = dataclasses.field(default_factory=Pending)
    failed: bool = False


def turn(
    db: Database,
    holder: str,
    work: Turn,
    *,
    lease_seconds: float,
    per_deployment: int,
) -> Done:
    """One turn's store work (blocking: run it in a worker thread)."""
    done = Done()
    reports = work.reports

    def step(what: str, put_back: Pending | None = None) -> _Step:
        return _Step(done, what, put_back)

    for request_id, failure in reports.failures.items():
        with step("record a failure", Pending(failures={request_id: failure})):
            done.recorded[request_id] = async_queue.record_failure(
                db,
                holder,
                request_id,
                failure.code,
                failure.message,
                retryable=failure.retryable,
                lease_seconds=lease_seconds,
            )
    if reports.releases:
        with step("release requests", Pending(releases=reports.releases)):
            done.released = async_queue.release(db, holder, sorted(reports.releases))
    for request_id, report in reports.deliveries.items():
        with step("record a delivery", Pending(deliveries={request_id: report})):
            done.delivered[request_id] = async_deliveries.record_delivery(
                db,
                holder,
                request_id,
                delivered=report.delivered,
                error=report.error,
                retry_at=report.retry_at,
            )
    if work.expire:
        with step("expire requests"):
            for _ in range(EXPIRE_ROUNDS):
                expired = async_queue.expire_due(db, limit=EXPIRE_BATCH)
                done.expired.extend(expired)
                if len(expired) < EXPIRE_BATCH:
                    break
    if reports.results or work.claim_limit > 0:
        # One transaction: the results free their deployments' slots, which the claim takes.
        with step("record results and claim", Pending(results=reports.results)):
            recorded, done.claimed = async_queue.record_and_claim(
                db,
                holder,
                reports.results,
                limit=work.claim_limit,
                lease_seconds=lease_seconds,
                per_deployment_cap=per_deployment,
            )
            done.recorded.update(recorded)
    if work.delivery_limit > 0:
        with step("claim deliveries"):
            done.deliveries = async_deliveries.claim_deliveries(
                db, holder, limit=work.delivery_limit, lease_seconds=lease_seconds
            )
    return done


class _Step:
    """Runs one step of a turn: an error is logged, and the step's reports are kept for the next
    turn, while the other steps go on."""

    def __init__(self, done: Done, what: str, put_back: Pending | None) -> None:
        self.done = done
        self.what = what
        self.put_back = put_back

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        self.done.failed = True
        if isinstance(exc, Unavailable | SQLAlchemyError | OSError):
            log.warning("async runner: could not %s: %s", self.what, exc)
            if self.put_back is not None:
                self.done.unrecorded.merge(self.put_back)
        else:
            # Not the store being away: trying again would fail again. The request is left to
            # its lease (taken over, then given up after MAX_LOST_LEASES).
            log.exception("async runner: could not %s", self.what)
        return True
