"""The async runner of one server process (docs/async-inference.md, "The runner").

Every server runs one, leader or not: claims are exclusive (a lease per request), so runners on
several servers share the queue without stepping on each other. One task, the pump, does all the
store work in turns (async_runner/reports.py: record what came back, expire, claim), each a
single hop to a worker thread; the calls (async_runner/calls.py) and webhook deliveries
(async_runner/deliveries.py) run as tasks on the loop and leave their reports for the next turn.
Turns follow each other at least FLUSH_SECONDS apart while reports come in, so that under load
each records a batch; idle, the pump claims every POLL_SECONDS (backing off to POLL_MAX_SECONDS
while nothing is found), at once when woken by an enqueue.

Another task renews the leases of everything held (calls, deliveries, reports not yet recorded)
every third of a lease; what the store no longer gives this runner (its lease ran out and
another server took it, or it was finished elsewhere) is dropped: its call is cancelled and its
report forgotten. A third drops the work whose lease is about to run out unrenewed (the store is
away): another server may take it from then on, and a request runs on one server at a time.

The runner claims only while its gateway answers (a ping on the internal route with the secret):
a gateway that is not listening yet, or no longer, is no reason to fail requests. A call that
finds it gone gives its request back without spending an attempt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from typing import Any

from chainyard.async_runner import reports
from chainyard.async_runner.calls import Caller, CallResult, Failure, Output, Unreachable
from chainyard.async_runner.deliveries import DeliveryReport, Webhooks
from chainyard.async_runner.settings import RunnerSettings
from chainyard.async_runner.wake import Coalesced
from chainyard.domain.async_requests import ErrorCode
from chainyard.services import async_queue
from chainyard.services.async_queue import Claimed, Delivery
from chainyard.services.context import Core
from chainyard.webhooks.delivery import RetryPolicy, Sender
from chainyard.webhooks.targets import TargetPolicy, own_addresses

log = logging.getLogger("chainyard.async")

# Least time between two turns while reports come in: they are recorded in batches.
FLUSH_SECONDS = 0.002
# Claims while idle: every POLL_SECONDS, doubling up to POLL_MAX_SECONDS while none is found.
POLL_SECONDS = 0.25
POLL_MAX_SECONDS = 2.0
EXPIRE_SECONDS = 1.0
# Due deliveries (retries, expiries, those of dead servers) are looked for this often, and at
# a retry's time.
DELIVERY_POLL_SECONDS = 1.0
DELIVERY_SLOTS = 64
# The gateway's ping while it does not answer.
PING_SECONDS = 0.1
PING_MAX_SECONDS = 1.0
# After a turn the store refused.
STORE_BACKOFF_SECONDS = 1.0
# A clean stop lets calls and deliveries in flight finish for this long; the rest are given back.
STOP_GRACE_SECONDS = 5.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_sender(settings: RunnerSettings) -> Sender:
    return Sender(
        TargetPolicy(
            allow_private=settings.allow_private_webhooks,
            own=own_addresses(settings.listen_host),
        ),
        RetryPolicy(attempts=settings.webhook_attempts, first_delay=settings.webhook_retry_seconds),
    )


class Runner:
    def __init__(
        self,
        core: Core,
        settings: RunnerSettings,
        *,
        sender: Sender | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.core = core
        self.settings = settings
        self.holder = f"{settings.server_id}/{secrets.token_hex(6)}"
        self.caller = Caller(
            settings.gateway_url, settings.secret, run_seconds=settings.run_seconds
        )
        self.sender = sender or make_sender(settings)
        self.webhooks = Webhooks(core, self.sender)
        # Whether the server is stopping (its gateway no longer takes requests).
        self.stopping = stopping
        # Counted for the metrics (async_runner/metrics.py).
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.deliveries: collections.Counter[str] = collections.Counter()
        self.observe_wait: Callable[[float], None] = lambda _seconds: None
        # Store turns made, and the time they took in all.
        self.turns = 0
        self.turn_seconds = 0.0
        # Called from any thread when a request was enqueued.
        self.enqueued = Coalesced(self.wake)
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._pending = reports.Pending()
        # Every request whose lease this runner renews; those being recorded by a turn.
        self._held: set[str] = set()
        # Until when (loop time) each held request's lease is known to hold: past it, another
        # server may have taken it, so its work stops even where a renewal could not tell.
        self._valid: dict[str, float] = {}
        self._in_turn: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poke: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._claim_wanted = True
        self._poll = POLL_SECONDS
        self._next_claim = 0.0
        self._next_expire = 0.0
        self._next_delivery = 0.0
        self._gateway_ok = False
        self._ping_wait = PING_SECONDS
        self._next_ping = 0.0
        self._last_turn = float("-inf")
        self._store_ok_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._poke = asyncio.Event()
        self.enqueued.bind(self._loop)
        self._tasks = [
            self._loop.create_task(self._pump(), name="chainyard-async-pump"),
            self._loop.create_task(self._renewals(), name="chainyard-async-leases"),
            self._loop.create_task(self._fence(), name="chainyard-async-fence"),
        ]
        log.info("async runner %s started", self.holder)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Claims nothing more; lets what runs finish for `grace` seconds, records it, and gives
        back the rest (claimable at once by another server, no attempt spent)."""
        if self._loop is None:
            await self._close_clients()
            return
        self._closing = True
        self._nudge()
        deadline = self._loop.time() + grace
        while (self._calls or self._sending) and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
        unfinished = {**self._calls, **self._sending}
        for task in unfinished.values():
            task.cancel()
        await asyncio.gather(*unfinished.values(), return_exceptions=True)
        self._pending.releases |= set(unfinished) & self._held
        self._nudge()
        try:
            await asyncio.wait_for(asyncio.shield(self._tasks[0]), 10.0)
        except Exception:
            log.warning(
                "async runner %s: stopped before its last reports were recorded", self.holder
            )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_clients()
        log.info("async runner stopped: %s", self.snapshot())

    async def _close_clients(self) -> None:
        self.caller.close()
        with contextlib.suppress(Exception):
            await self.sender.aclose()

    def wake(self) -> None:
        """A request was enqueued: claim now (on the loop's thread; `enqueued` from any)."""
        self._claim_wanted = True
        self._nudge()

    def _nudge(self) -> None:
        if self._poke is not None:
            self._poke.set()

    # -- the pump -------------------------------------------------------------------------------

    @property
    def _can_claim(self) -> bool:
        return self._gateway_ok and not self._closing and not self.stopping()

    def _free(self) -> int:
        return self.settings.concurrency - len(self._calls)

    def _due(self, now: float) -> float:
        """When the next turn is due with no report pending."""
        due = [self._next_expire] if not self._closing else []
        if self._can_claim and self._free() > 0:
            due.append(now if self._claim_wanted else self._next_claim)
        if not self._closing and len(self._sending) < DELIVERY_SLOTS:
            due.append(self._next_delivery)
        if not self._gateway_ok and not self._closing:
            due.append(self._next_ping)
        return max(min(due, default=now + POLL_MAX_SECONDS), self._store_ok_at)

    async def _until_next_turn(self) -> None:
        assert self._loop is not None and self._poke is not None
        while True:
            now = self._loop.time()
            if self._pending and now >= self._store_ok_at:
                wait = self._last_turn + FLUSH_SECONDS - now
                if wait > 0:
                    await asyncio.sleep(wait)
                return
            self._poke.clear()
            due = self._due(now)
            if due <= now:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(due - now):
                    await self._poke.wait()
            if self._closing and not self._busy():
                return

    def _busy(self) -> bool:
        return bool(self._pending or self._calls or self._sending)

    async def _pump(self) -> None:
        assert self._loop is not None
        while True:
            if self._closing and not self._busy():
                return
            try:
                await self._until_next_turn()
                if self._closing and not self._busy():
                    return
                await self._ping_if_due()
                work = self._plan(self._loop.time())
                if work is None:
                    continue
                self._in_turn = work.reports.ids()
                started = self._loop.time()
                try:
                    done = await asyncio.to_thread(
                        reports.turn,
                        self.core.db,
                        self.holder,
                        work,
                        lease_seconds=self.settings.lease_seconds,
                        per_deployment=self.settings.per_deployment,
                    )
                finally:
                    self._in_turn = set()
                    self.turns += 1
                    self.turn_seconds += self._loop.time() - started
                self._apply(work, done)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("async runner: a turn failed")
                await asyncio.sleep(STORE_BACKOFF_SECONDS)

    async def _ping_if_due(self) -> None:
        assert self._loop is not None
        if self._gateway_ok or self._closing or self._loop.time() < self._next_ping:
            return
        if await self.caller.ping():
            log.info("async runner %s: the gateway answers; claiming", self.holder)
            self._gateway_ok = True
            self._claim_wanted = True
            self._ping_wait = PING_SECONDS
        else:
            self._next_ping = self._loop.time() + self._ping_wait
            self._ping_wait = min(self._ping_wait * 2, PING_MAX_SECONDS)

    def _plan(self, now: float) -> reports.Turn | None:
        work = reports.Turn(self._pending.take())
        if not self._closing and now >= self._next_expire:
            work.expire = True
            self._next_expire = now + EXPIRE_SECONDS
        finished = bool(work.reports.results or work.reports.failures)
        if (
            self._can_claim
            and self._free() > 0
            and (self._claim_wanted or finished or now >= self._next_claim)
        ):
            # At most one deployment's share per turn: a claim reads (and locks) as many rows
            # as it may take, and with one deployment's backlog all but its free share would be
            # read for nothing. Several deployments' backlogs fill up over consecutive turns.
            work.claim_limit = min(self._free(), self.settings.per_deployment)
            self._claim_wanted = False
        if not self._closing and now >= self._next_delivery:
            work.delivery_limit = max(DELIVERY_SLOTS - len(self._sending), 0)
            self._next_delivery = now + DELIVERY_POLL_SECONDS
        if not (work.reports or work.expire or work.claim_limit or work.delivery_limit):
            return None
        return work

    def _apply(self, work: reports.Turn, done: reports.Done) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self._last_turn = now
        if done.failed:
            self._store_ok_at = now + STORE_BACKOFF_SECONDS
        if done.unrecorded:
            self._pending.merge(done.unrecorded)
        sent = work.reports
        for request_id, recorded in done.recorded.items():
            if not recorded.held:
                self.outcomes["lost"] += 1
                self._let_go(request_id)
                continue
            if request_id in sent.results:
                self.outcomes["succeeded"] += 1
            elif recorded.retry_at is not None:
                self.outcomes["retried"] += 1
                self._claim_at(recorded.retry_at)
            else:
                self.outcomes["failed"] += 1
            if recorded.delivery is not None:
                self._start_delivery(recorded.delivery)
            else:
                self._let_go(request_id)
        for request_id in sent.releases - done.unrecorded.releases:
            self.outcomes["released"] += 1
            self._let_go(request_id)
        for request_id, taken in done.delivered.items():
            report = sent.deliveries[request_id]
            if taken:
                self.deliveries[report.outcome] += 1
                if report.retry_at is not None:
                    self._deliver_at(report.retry_at)
            if request_id not in self._sending:
                self._let_go(request_id)
        if done.expired:
            self.outcomes["expired"] += len(done.expired)
        self._claimed(work.claim_limit, done.claimed, now)
        for delivery in done.deliveries:
            self._start_delivery(delivery)
        if work.delivery_limit and len(done.deliveries) >= work.delivery_limit:
            self._next_delivery = now

    def _claimed(self, limit: int, claimed: list[Claimed], now: float) -> None:
        if limit <= 0:
            return
        when = _utcnow()
        for request in claimed:
            if request.attempt == 1 and not request.taken_over:
                self.observe_wait(max((when - request.created_at).total_seconds(), 0.0))
            self._start_call(request)
        if len(claimed) >= limit:
            self._claim_wanted = True  # more may be waiting
            self._poll = POLL_SECONDS
        elif claimed:
            self._poll = POLL_SECONDS
            self._next_claim = now + self._poll
        else:
            self._next_claim = now + self._poll
            self._poll = min(self._poll * 2, POLL_MAX_SECONDS)

    def _claim_at(self, when: dt.datetime) -> None:
        assert self._loop is not None
        at = self._loop.time() + max((when - _utcnow()).total_seconds(), 0.0)
        self._next_claim = min(self._next_claim, at)

    def _deliver_at(self, when: dt.datetime) -> None:
        assert self._loop is not None
        at = self._loop.time() + max((when - _utcnow()).total_seconds(), 0.0)
        self._next_delivery = min(self._next_delivery, at)

    # -- calls and deliveries -------------------------------------------------------------------

    def _hold(self, key: str, lease_until: dt.datetime) -> None:
        assert self._loop is not None
        self._held.add(key)
        self._valid[key] = self._loop.time() + (lease_until - _utcnow()).total_seconds()

    def _let_go(self, key: str) -> None:
        self._held.discard(key)
        self._valid.pop(key, None)

    def _start_call(self, request: Claimed) -> None:
        assert self._loop is not None
        self._hold(request.request_id, request.lease_until)
        if self._closing:
            # Claimed by a turn that began before the stop: given back, not started.
            self._pending.releases.add(request.request_id)
            return
        self._calls[request.request_id] = self._loop.create_task(self._call(request))

    async def _call(self, request: Claimed) -> None:
        key = request.request_id
        try:
            try:
                result: CallResult = await self.caller.call(request)
            except Exception as exc:
                log.exception("async runner: the call of request %s failed", key)
                result = Failure(
                    ErrorCode.INTERNAL_SERVER_ERROR, f"the async runner failed: {exc}", True
                )
        finally:
            self._calls.pop(key, None)
        if key not in self._held:
            return  # dropped meanwhile (its lease was lost)
        if isinstance(result, Output):
            self._pending.results[key] = result.value
        elif isinstance(result, Failure):
            self._pending.failures[key] = result
        else:
            self._gateway_gone(result)
            self._pending.releases.add(key)
        self._nudge()

    def _gateway_gone(self, why: Unreachable) -> None:
        if self._gateway_ok:
            level = logging.INFO if self._closing or self.stopping() else logging.WARNING
            log.log(level, "async runner %s: the gateway went away (%s)", self.holder, why.reason)
        self._gateway_ok = False
        self._ping_wait = PING_SECONDS
        if self._loop is not None:
            self._next_ping = self._loop.time() + PING_SECONDS

    def _start_delivery(self, delivery: Delivery) -> None:
        assert self._loop is not None
        self._hold(delivery.request_id, delivery.lease_until)
        if self._closing:
            self._pending.releases.add(delivery.request_id)
            return
        self._sending[delivery.request_id] = self._loop.create_task(self._deliver(delivery))

    async def _deliver(self, delivery: Delivery) -> None:
        key = delivery.request_id
        try:
            try:
                report = await self.webhooks.attempt(delivery)
            except Exception as exc:
                log.exception("async runner: the webhook of request %s failed", key)
                report = self._failed_attempt(delivery, f"the async runner failed: {exc}")
        finally:
            self._sending.pop(key, None)
        if key in self._held:
            self._pending.deliveries[key] = report
            self._nudge()

    def _failed_attempt(self, delivery: Delivery, error: str) -> DeliveryReport:
        policy = self.sender.retry
        if delivery.attempt >= policy.attempts:
            return DeliveryReport(delivery.request_id, False, error, None, "failed")
        retry_at = _utcnow() + dt.timedelta(seconds=policy.delay_after(delivery.attempt))
        return DeliveryReport(delivery.request_id, False, error, retry_at, "failed_attempt")

    # -- leases ---------------------------------------------------------------------------------

    async def _renewals(self) -> None:
        assert self._loop is not None
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            held = sorted(self._held)
            if not held:
                continue
            sent = self._loop.time()
            try:
                kept = await asyncio.to_thread(
                    async_queue.renew,
                    self.core.db,
                    self.holder,
                    held,
                    lease_seconds=self.settings.lease_seconds,
                )
            except Exception as exc:
                log.warning("async runner: could not renew its leases: %s", exc)
                continue
            for key in kept & self._held:
                self._valid[key] = max(self._valid.get(key, sent), sent + lease)
            self._drop((set(held) - kept) & self._held - self._in_turn)

    async def _fence(self) -> None:
        """Stops the work of requests whose lease ran out without a renewal (the store was
        away, the renewals fell behind): another server may run them by now, and a request
        runs on one server at a time."""
        assert self._loop is not None
        lease = self.settings.lease_seconds
        # Stop a little early: the servers' clocks agree within a fraction of a lease.
        margin = min(1.0, lease / 10)
        while True:
            await asyncio.sleep(min(1.0, lease / 6))
            now = self._loop.time()
            late = {key for key, until in self._valid.items() if until - margin <= now}
            self._drop(late & self._held - self._in_turn, why="its lease ran out unrenewed")

    def _drop(self, lost: set[str], why: str = "another server took it") -> None:
        """Forgets requests whose lease this runner lost: another server runs them now."""
        if not lost:
            return
        log.warning("async runner %s dropped %d request(s): %s", self.holder, len(lost), why)
        self.outcomes["lost"] += len(lost)
        for key in lost:
            self._let_go(key)
        self._pending.drop(lost)
        for key in lost:
            for tasks in (self._calls, self._sending):
                task = tasks.pop(key, None)
                if task is not None:
                    task.cancel()

    # -- for tests and status ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "calls": len(self._calls),
            "deliveries": len(self._sending),
            "held": len(self._held),
            "gateway": self._gateway_ok,
            "turns": self.turns,
            "turn_seconds": round(self.turn_seconds, 3),
        }
