"""The async runner (async_runner/loop.py) against a real store (SQLite and PostgreSQL) and a
stand-in for the server's gateway on loopback: results recorded in batches, the spec's codes and
retries, the per-deployment cap, leases lost to another server, a gateway that is away, a clean
stop, signed webhooks with their retries, expiry; and the queue's share of the autoscaler's
demand."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import pathlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import update

from chainyard.async_runner import reports
from chainyard.async_runner.depths import QueueDepths, with_queue
from chainyard.async_runner.loop import Runner
from chainyard.async_runner.settings import RunnerSettings
from chainyard.async_runner.wake import Coalesced
from chainyard.config import ServerConfig
from chainyard.domain import async_requests as d
from chainyard.server import build_core
from chainyard.services import async_queue, async_requests, webhook_secrets
from chainyard.services.context import Actor, Core
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.base import utcnow
from chainyard.store.chains import Chain, ChainDeployment, Chainlet
from chainyard.store.environments import Environment
from chainyard.store.workspaces import Workspace
from chainyard.webhooks import signing
from tests.support.webhook_receiver import Receiver, free_port

SECRET = "runner-secret"
ACTOR = Actor("ws000001", "one", key_type="WORKSPACE_MANAGE_ALL")
PRODUCTION = d.AsyncTarget("environment", "production")
FAST_RETRY = {"max_attempts": 3, "initial_delay_ms": 0, "max_delay_ms": 0}


def _deployment(deployment_id: str, entrypoint: str) -> list[Any]:
    return [
        ChainDeployment(
            id=deployment_id,
            chain_id="chain001",
            name=deployment_id,
            status="ACTIVE",
            entrypoint="Entry",
            created_at=utcnow(),
        ),
        Chainlet(
            id=entrypoint,
            chain_deployment_id=deployment_id,
            name="Entry",
            position=0,
            is_entrypoint=True,
            instance_type_id="CPU",
            status="ACTIVE",
        ),
    ]


@pytest.fixture
def core(tmp_path: pathlib.Path, database_url: str) -> Iterator[Core]:
    core = build_core(ServerConfig(data_dir=tmp_path / "data", database_url=database_url))
    with core.db.write() as session:
        session.add(Workspace(id="ws000001", name="one"))
        session.flush()
        session.add(Chain(id="chain001", workspace_id="ws000001", name="c1"))
        session.flush()
        for row in [*_deployment("dep1", "entry1"), *_deployment("dep2", "entry2")]:
            session.add(row)
            session.flush()
        session.add(
            Environment(
                id="env1", chain_id="chain001", name="production", current_deployment_id="dep1"
            )
        )
    yield core
    core.db.dispose()


def enqueue(
    core: Core,
    model_input: dict[str, Any],
    *,
    deployment_id: str = "dep1",
    now: dt.datetime | None = None,
    **fields: Any,
) -> str:
    spec = d.check({"model_input": model_input, **fields})
    target = PRODUCTION if deployment_id == "dep1" else d.AsyncTarget("deployment")
    answer = async_requests.enqueue(
        core.db,
        ACTOR,
        chain_id="chain001",
        deployment_id=deployment_id,
        target=target,
        spec=spec,
        now=now,
    )
    return answer.request_id


def row(core: Core, request_id: str) -> AsyncRequest:
    with core.db.read() as session:
        found = session.get(AsyncRequest, request_id)
        assert found is not None
        return found


def statuses(core: Core, *request_ids: str) -> list[tuple[str, str]]:
    return [(r.status, r.webhook_status) for r in (row(core, i) for i in request_ids)]


async def until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


Answer = Callable[[str, dict[str, Any]], Awaitable[tuple[int, Any]]]


async def ok(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"echo": body, "on": deployment_id}


class Gateway:
    """Stands in for the server's gateway: its internal async route (with the secret) answers
    what `answer` says; `calls` lists (deployment id, input) as they came."""

    def __init__(self, answer: Answer = ok, *, port: int = 0) -> None:
        self.answer = answer
        self.port = port
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return web.json_response({"error": "no"}, status=401)
        if request.path == "/internal/async/ping":
            return web.Response(status=204)
        deployment_id = request.match_info["deployment"]
        body = await request.json()
        self.calls.append((deployment_id, body))
        status, answer = await self.answer(deployment_id, body)
        if status == 0:  # hang up, as a server that goes away does
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response(answer, status=status)

    async def __aenter__(self) -> Gateway:
        app = web.Application()
        app.router.add_post("/internal/async/deployments/{deployment}/run_remote", self._handle)
        app.router.add_get("/internal/async/ping", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def settings(url: str, **kw: Any) -> RunnerSettings:
    base: dict[str, Any] = {
        "server_id": "test",
        "gateway_url": url,
        "secret": SECRET,
        "webhook_retry_seconds": 0.0,
        "allow_private_webhooks": True,
    }
    return RunnerSettings(**{**base, **kw})


@contextlib.asynccontextmanager
async def running(core: Core, url: str, **kw: Any) -> AsyncIterator[Runner]:
    runner = Runner(core, settings(url, **kw))
    runner.start()
    try:
        yield runner
    finally:
        await runner.stop(grace=0.5)


def test_queued_requests_run_through_the_gateway_and_are_recorded_in_batches(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    recording = reports.async_queue.record_and_claim

    def counted(*args: Any, **kw: Any) -> Any:
        if args[2]:
            batches.append(len(args[2]))
        return recording(*args, **kw)

    monkeypatch.setattr(reports.async_queue, "record_and_claim", counted)
    ids = [enqueue(core, {"n": i}) for i in range(40)]
    release = asyncio.Event

    async def scenario() -> Gateway:
        go = release()

        async def held(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
            # The answers come together, as from a busy chain: they are recorded together.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(go.wait(), 0.2)
            return await ok(deployment_id, body)

        async with Gateway(held) as gateway, running(core, gateway.url) as runner:
            await until(
                lambda: all(
                    s == ("SUCCEEDED", "NO_WEBHOOK_PROVIDED") for s in statuses(core, *ids)
                ),
                "every request to succeed",
            )
            await until(lambda: runner.outcomes["succeeded"] == 40, "the runner's count")
        return gateway

    gateway = asyncio.run(scenario())
    assert sorted(body["n"] for _, body in gateway.calls) == list(range(40))
    assert {deployment for deployment, _ in gateway.calls} == {"dep1"}
    assert sum(batches) == 40 and max(batches) > 1
    # Baseten keeps no output of a request without a webhook.
    assert all(row(core, i).result is None for i in ids)


def test_failures_take_the_spec_codes_and_what_may_help_is_retried(core: Core) -> None:
    tries: collections.Counter[int] = collections.Counter()

    async def answer(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        tries[body["n"]] += 1
        if body["n"] == 1:
            return 400, {"error": "n must be even", "error_code": "client_error"}
        if body["n"] == 2 and tries[2] == 1:
            return 500, {"error": "ZeroDivisionError: boom", "error_code": "application_error"}
        if body["n"] == 3:
            return 503, {"error": "no replica became ready", "error_code": "model_not_ready"}
        return await ok(deployment_id, body)

    invalid = enqueue(core, {"n": 1}, inference_retry_config=FAST_RETRY)
    flaky = enqueue(core, {"n": 2}, inference_retry_config=FAST_RETRY)
    asleep = enqueue(core, {"n": 3}, inference_retry_config=FAST_RETRY)

    async def scenario() -> dict[str, int]:
        async with Gateway(answer) as gateway, running(core, gateway.url) as runner:
            await until(
                lambda: all(
                    s[0] in ("SUCCEEDED", "FAILED") for s in statuses(core, invalid, flaky, asleep)
                ),
                "every request to end",
            )
            await until(lambda: sum(runner.outcomes.values()) == 6, "the runner's counts")
            return dict(runner.outcomes)

    outcomes = asyncio.run(scenario())
    assert statuses(core, invalid, flaky, asleep) == [
        ("FAILED", "NO_WEBHOOK_PROVIDED"),
        ("SUCCEEDED", "NO_WEBHOOK_PROVIDED"),
        ("FAILED", "NO_WEBHOOK_PROVIDED"),
    ]
    # An invalid input is not tried again; a chain's error is, and so is a chain not ready,
    # until the retry config's attempts run out.
    assert dict(tries) == {1: 1, 2: 2, 3: 3}
    assert row(core, invalid).errors == [
        {"code": "MODEL_INVALID_INPUT", "message": "n must be even"}
    ]
    assert row(core, asleep).errors == [
        {"code": "MODEL_NOT_READY", "message": "no replica became ready"}
    ]
    assert row(core, flaky).errors == [] and row(core, flaky).attempts == 2
    assert outcomes == {"succeeded": 1, "failed": 2, "retried": 3}


def test_the_per_deployment_cap_holds_and_leaves_other_deployments_their_turn(
    core: Core,
) -> None:
    backlog = [enqueue(core, {"n": i}) for i in range(10)]
    other = enqueue(core, {"n": 100}, deployment_id="dep2")

    async def scenario() -> None:
        go = asyncio.Event()

        async def held(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
            if deployment_id == "dep1":
                await go.wait()
            return await ok(deployment_id, body)

        async with Gateway(held) as gateway, running(core, gateway.url, per_deployment=4):
            await until(lambda: statuses(core, other)[0][0] == "SUCCEEDED", "dep2's request")
            await until(lambda: len(gateway.calls) == 5, "dep1's first four")
            await asyncio.sleep(0.3)  # the runner claims again meanwhile; the cap holds
            running_now = [s for s in statuses(core, *backlog) if s[0] == "IN_PROGRESS"]
            assert len(running_now) == 4 and len(gateway.calls) == 5
            go.set()
            await until(
                lambda: all(s[0] == "SUCCEEDED" for s in statuses(core, *backlog)), "the backlog"
            )

    asyncio.run(scenario())


def test_a_request_taken_over_by_another_server_is_dropped_not_reported(core: Core) -> None:
    request_id = enqueue(core, {"n": 1})

    async def scenario() -> dict[str, int]:
        go = asyncio.Event()

        async def held(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
            await go.wait()
            return await ok(deployment_id, body)

        async with (
            Gateway(held) as gateway,
            running(core, gateway.url, lease_seconds=1.5) as runner,
        ):
            await until(lambda: gateway.calls, "the call")
            # Another server took it over (as when this one's lease ran out).
            with core.db.write() as session:
                session.execute(
                    update(AsyncRequest)
                    .where(AsyncRequest.id == request_id)
                    .values(lease_holder="thief", lease_until=utcnow() + dt.timedelta(hours=1))
                )
            await until(lambda: runner.outcomes["lost"] == 1, "the lost lease to be noticed")
            assert runner.snapshot()["calls"] == 0  # the call was dropped
            recorded = async_queue.record_result(core.db, "thief", request_id, {"by": "thief"})
            assert recorded.held
            go.set()
            await asyncio.sleep(0.2)
            return dict(runner.outcomes)

    outcomes = asyncio.run(scenario())
    assert statuses(core, request_id) == [("SUCCEEDED", "NO_WEBHOOK_PROVIDED")]
    assert outcomes == {"lost": 1}


def test_work_whose_lease_could_not_be_renewed_stops_in_time(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = enqueue(core, {"n": 1})

    def store_away(*args: Any, **kw: Any) -> set[str]:
        raise OSError("the store is away")

    monkeypatch.setattr("chainyard.async_runner.loop.async_queue.renew", store_away)

    async def scenario() -> None:
        go = asyncio.Event()

        async def held(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
            await go.wait()
            return await ok(deployment_id, body)

        async with (
            Gateway(held) as gateway,
            running(core, gateway.url, lease_seconds=1.5) as runner,
        ):
            await until(lambda: gateway.calls, "the call")
            # Unrenewed, the lease runs out: another server may take the request from then
            # on, so this one stops first.
            await until(lambda: runner.outcomes["lost"] == 1, "the call to stop")
            assert runner.snapshot()["calls"] == 0
            go.set()
            # Once the lease is over, taken over (here by the same runner) and run again.
            await until(lambda: statuses(core, request_id)[0][0] == "SUCCEEDED", "the rerun")
            assert len(gateway.calls) == 2

    asyncio.run(scenario())
    assert row(core, request_id).lost_leases == 1


def test_a_gateway_that_is_away_costs_no_attempt(core: Core) -> None:
    first = enqueue(core, {"n": 1})
    port = free_port()
    hung_up: list[int] = []

    async def once_gone(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        # Twice: the client sends a request once more when a kept-alive connection was closed
        # under it (chainyard/http_client.py); on a new connection, it is gone.
        if len(hung_up) < 2:
            hung_up.append(body["n"])
            return 0, None
        return await ok(deployment_id, body)

    async def scenario() -> None:
        async with running(core, f"http://127.0.0.1:{port}") as runner:
            # Nobody listens yet: nothing is claimed.
            await asyncio.sleep(0.5)
            assert statuses(core, first) == [("QUEUED", "NO_WEBHOOK_PROVIDED")]
            async with Gateway(once_gone, port=port):
                await until(lambda: statuses(core, first)[0][0] == "SUCCEEDED", "the request")
            assert runner.outcomes["released"] == 1

    asyncio.run(scenario())
    # Given back when the gateway hung up, then run: one attempt spent.
    assert hung_up == [1, 1] and row(core, first).attempts == 1


def test_a_clean_stop_gives_back_what_has_not_finished(core: Core) -> None:
    request_id = enqueue(core, {"n": 1})

    async def scenario() -> None:
        done = asyncio.Event()

        async def slow(deployment_id: str, body: dict[str, Any]) -> tuple[int, Any]:
            await done.wait()
            return 200, {}

        async with Gateway(slow) as gateway:
            runner = Runner(core, settings(gateway.url))
            runner.start()
            await until(lambda: gateway.calls, "the call")
            await runner.stop(grace=0.1)
            done.set()

    asyncio.run(scenario())
    stored = row(core, request_id)
    # Claimable at once by any server, the attempt not spent.
    assert (stored.lease_holder, stored.attempts) == (None, 0)
    assert async_queue.claim(core.db, "next", limit=5)[0].request_id == request_id


def test_webhooks_are_signed_retried_and_their_last_failure_marked(core: Core) -> None:
    async def scenario() -> tuple[list[Any], list[Any], dict[str, int]]:
        async with Receiver(script=[500]) as flaky, Receiver(then=503) as broken:
            delivered = enqueue(core, {"n": 1}, webhook_endpoint=flaky.url())
            undelivered = enqueue(core, {"n": 2}, webhook_endpoint=broken.url())
            async with (
                Gateway() as gateway,
                running(core, gateway.url, webhook_attempts=2) as runner,
            ):
                await until(
                    lambda: (
                        statuses(core, delivered, undelivered)
                        == [("SUCCEEDED", "SUCCEEDED"), ("WEBHOOK_FAILED", "FAILED")]
                    ),
                    "both webhooks to end",
                )
                await until(lambda: sum(runner.deliveries.values()) == 4, "the counts")
                return flaky.received, broken.received, dict(runner.deliveries)

    good, bad, deliveries = asyncio.run(scenario())
    assert len(good) == 2 and len(bad) == 2
    assert deliveries == {"failed_attempt": 2, "delivered": 1, "failed": 1}
    secrets = webhook_secrets.signing_secrets(core, "ws000001")
    body = json.loads(good[-1].body)
    assert body["data"] == {"echo": {"n": 1}, "on": "dep1"} and body["errors"] == []
    assert body["type"] == "async_request_completed" and body["deployment_id"] == "dep1"
    for sent in good + bad:
        assert signing.verify(sent.body, sent.headers["x-baseten-signature"], secrets)
    assert good[-1].headers["x-baseten-request-id"] == body["request_id"]
    # The output is dropped once delivered, and never kept past the last try.
    assert row(core, body["request_id"]).result is None


def test_an_expired_request_is_expired_and_its_webhook_delivered(core: Core) -> None:
    async def scenario() -> list[Any]:
        async with Receiver() as receiver:
            old = utcnow() - dt.timedelta(seconds=60)
            request_id = enqueue(
                core,
                {"n": 1},
                now=old,
                max_time_in_queue_seconds=10,
                webhook_endpoint=receiver.url(),
            )
            async with Gateway() as gateway, running(core, gateway.url):
                await until(
                    lambda: statuses(core, request_id) == [("EXPIRED", "SUCCEEDED")], "expiry"
                )
            assert gateway.calls == []
            return receiver.received

    received = asyncio.run(scenario())
    body = json.loads(received[0].body)
    assert body["data"] is None and body["errors"][0]["code"] == "MODEL_UNAVAILABLE"


def test_queued_requests_count_toward_their_entrypoints_demand(core: Core) -> None:
    for i in range(20):
        enqueue(core, {"n": i})
    for i in range(3):
        enqueue(core, {"n": i}, deployment_id="dep2")

    async def scenario() -> dict[str, float]:
        depths = QueueDepths(core, per_deployment=16)
        demand = with_queue(lambda: {"entry1": 2.0, "other": 1.0}, depths)
        assert demand() == {"entry1": 2.0, "other": 1.0}  # read in the background
        await until(lambda: depths.latest, "the depths")
        return demand()

    # At most the cap's worth: more would scale up for requests that wait for the cap anyway.
    assert asyncio.run(scenario()) == {"entry1": 18.0, "other": 1.0, "entry2": 3.0}


def test_enqueues_from_many_threads_wake_the_runner_once_per_burst() -> None:
    async def scenario() -> int:
        fired: list[float] = []
        loop = asyncio.get_running_loop()
        wake = Coalesced(lambda: fired.append(loop.time()), interval=0.05)
        wake()  # before it is bound: dropped
        wake.bind(loop)

        def burst() -> None:
            for _ in range(200):
                wake()

        threads = [threading.Thread(target=burst) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        await asyncio.sleep(0.15)
        wake()
        await asyncio.sleep(0.15)
        return len(fired)

    # The burst fires once or twice (the interval may end mid-burst), the later call once more.
    assert 2 <= asyncio.run(scenario()) <= 3
