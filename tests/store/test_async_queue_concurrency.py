"""Two servers claiming from one queue at the same time (threads, each with its own engine, as
two processes would have), on SQLite and PostgreSQL: a request is never held by both, a
per-deployment cap is never exceeded, and a dead server's requests go to exactly one taker."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chainyard.domain import async_requests as d
from chainyard.services import async_queue as queue
from chainyard.services import async_requests as requests
from chainyard.services.context import Actor
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.db import Database
from chainyard.store.workspaces import Workspace

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ACTOR = Actor("ws000001", "one", key_type="WORKSPACE_MANAGE_ALL", key_prefix="k1")
HOUR = 3600.0


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        session.add(Workspace(id="ws000001", name="one"))
        session.flush()
        session.add(Chain(id="chain001", workspace_id="ws000001", name="c1"))
        session.flush()
        for dep in ("dep1", "dep2"):
            session.add(
                ChainDeployment(
                    id=dep, chain_id="chain001", name=dep, status="ACTIVE", entrypoint="A"
                )
            )
    yield database
    database.dispose()


def fill(db: Database, n: int, deployment_id: str = "dep1") -> list[str]:
    return [
        requests.enqueue(
            db,
            ACTOR,
            chain_id="chain001",
            deployment_id=deployment_id,
            target=d.AsyncTarget("deployment"),
            spec=d.check({"model_input": {"i": i}, "priority": i % 3}),
            now=at(0),
        ).request_id
        for i in range(n)
    ]


def two_servers(url: str, work: Callable[[Database, str], None]) -> None:
    """Runs `work(db, holder)` for servers "a" and "b" at once, each on its own engine."""
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def server(holder: str) -> None:
        own = Database(url)
        try:
            start.wait()
            work(own, holder)
        except BaseException as exc:
            failures.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=server, args=(h,)) for h in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_two_claimers_never_hold_one_request_at_once(db: Database) -> None:
    ids = set(fill(db, 60))
    lock = threading.Lock()
    held: dict[str, str] = {}
    claims: list[tuple[str, str]] = []

    def work(own: Database, holder: str) -> None:
        idle = 0
        while idle < 3:
            batch = queue.claim(own, holder, limit=4, lease_seconds=HOUR, now=at(1))
            idle = 0 if batch else idle + 1
            with lock:
                for c in batch:
                    # Nobody else holds what this server was just given.
                    assert c.request_id not in held, (c.request_id, held[c.request_id])
                    held[c.request_id] = holder
                    claims.append((c.request_id, holder))
            for c in batch:
                with lock:
                    del held[c.request_id]
                assert queue.record_result(own, holder, c.request_id, {"by": holder}, now=at(2))

    two_servers(db.url, work)
    counted = collections.Counter(request_id for request_id, _ in claims)
    assert set(counted) == ids
    assert set(counted.values()) == {1}
    for request_id in ids:
        assert requests.status(db, ACTOR, request_id).status == "SUCCEEDED"


def test_concurrent_claims_keep_the_per_deployment_cap(db: Database) -> None:
    fill(db, 20, "dep1")
    fill(db, 3, "dep2")
    lock = threading.Lock()
    got: list[queue.Claimed] = []

    def work(own: Database, holder: str) -> None:
        for _ in range(10):
            batch = queue.claim(
                own, holder, limit=2, lease_seconds=HOUR, per_deployment_cap=4, now=at(1)
            )
            with lock:
                got.extend(batch)

    two_servers(db.url, work)
    per_deployment = collections.Counter(c.deployment_id for c in got)
    assert per_deployment == {"dep1": 4, "dep2": 3}
    assert len({c.request_id for c in got}) == len(got)


def test_a_dead_servers_requests_go_to_exactly_one_taker(db: Database) -> None:
    ids = set(fill(db, 30))
    dead = queue.claim(db, "dead", limit=100, lease_seconds=10, now=at(1))
    assert {c.request_id for c in dead} == ids
    lock = threading.Lock()
    taken: list[tuple[str, str, Any]] = []

    def work(own: Database, holder: str) -> None:
        for _ in range(10):
            batch = queue.claim(own, holder, limit=3, lease_seconds=HOUR, now=at(100))
            with lock:
                taken.extend((c.request_id, holder, c.taken_over) for c in batch)

    two_servers(db.url, work)
    counted = collections.Counter(request_id for request_id, _, _ in taken)
    assert set(counted) == ids
    assert set(counted.values()) == {1}
    assert all(over for _, _, over in taken)
    # Whoever took a request is the one whose report counts.
    for request_id, holder, _ in taken:
        other = "b" if holder == "a" else "a"
        assert not queue.record_result(db, other, request_id, None, now=at(101)).held
        assert queue.record_result(db, holder, request_id, None, now=at(101)).held
