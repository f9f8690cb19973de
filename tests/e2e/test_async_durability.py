"""Async requests survive their servers (docs/async-inference.md): a `chainyard serve` SIGKILLed
mid-drain and started again loses none of 200 acknowledged requests, and two servers on one
PostgreSQL database drain a backlog together without ever running one request twice at once.

Both use the probe chain (chains/async_probe.py), whose run log records every run's start and
end, also of runs whose results never got out, and a webhook receiver on loopback.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import pathlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.conftest import LiveServer, _free_port, wait_for
from tests.support import postgres
from tests.support.async_calls import AsyncCalls, by_request, runs
from tests.support.webhook_receiver import Receiver

PROBE = pathlib.Path(__file__).parent / "chains" / "async_probe.py"
# Short leases: a dead server's requests are taken over a few seconds after it died.
LEASE_SECONDS = 2
ASYNC_ENV = {
    "CHAINYARD_ALLOW_PRIVATE_WEBHOOKS": "1",
    "CHAINYARD_ASYNC_LEASE_SECONDS": str(LEASE_SECONDS),
    "CHAINYARD_WEBHOOK_RETRY_SECONDS": "0.5",
}

pytestmark = pytest.mark.slow


def _push(server: LiveServer, scratch: pathlib.Path) -> tuple[dict[str, str], pathlib.Path]:
    """The probe chain in production; its ids and the run log's path."""
    result = server.push(PROBE, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids, server.shared_dir(ids["chain_deployment_id"], scratch) / "runs.log"


def _kill_whole_server(server: LiveServer) -> None:
    """SIGKILL to the controller and every process under it (workers, replica hosts,
    replicas) at once, as a machine losing power would leave them."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    everyone = [root, *root.children(recursive=True)]
    for process in everyone:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(everyone, timeout=30)
    server.process.wait()
    server.process = None


def _overlaps(log: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """Requests (by tag) with two runs at the same time, or a run that never ended (which,
    without a kill, means it is still running beside the next)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for tag, tag_runs in runs(log).items():
        for before, after in itertools.pairwise(tag_runs):
            if before["end"] is None or before["end"] > after["start"]:
                found[tag] = tag_runs
    return found


@pytest.mark.timeout(900)
def test_sigkill_mid_drain_loses_none_of_200_requests(tmp_path: pathlib.Path) -> None:
    server = LiveServer(
        data_dir=tmp_path / "data", port=_free_port(), log=tmp_path / "server.log", env=ASYNC_ENV
    )
    server.start()
    try:
        ids, log = _push(server, tmp_path)
        with Receiver().running_in_thread() as receiver:
            with server.client() as client:
                calls = AsyncCalls(client, ids["chain_id"])
                request_ids = [
                    calls.enqueue(
                        {"tag": f"k{i}", "sleep": 0.5, "log": str(log)},
                        webhook=receiver.url("/hook"),
                    )
                    for i in range(200)
                ]
            wait_for(
                lambda: len(by_request(receiver.received)) >= 10,
                timeout=120,
                what="the drain to be under way",
            )
            _kill_whole_server(server)
            delivered_before = len(by_request(receiver.received))
            assert delivered_before < len(request_ids), "the drain ended before the kill"

            server.start()
            wait_for(
                lambda: set(request_ids) <= set(by_request(receiver.received)),
                timeout=600,
                what="every request's webhook",
            )
            with server.client() as client:
                finished = AsyncCalls(client, ids["chain_id"]).wait_all(request_ids, timeout=120)
        outcomes = {(s["status"], s["webhook_status"]) for s in finished.values()}
        assert outcomes == {("SUCCEEDED", "SUCCEEDED")}, outcomes
        # Each ran to its end at least once; those cut off by the kill ran again.
        ran = runs(log)
        assert all(any(r["end"] is not None for r in ran[f"k{i}"]) for i in range(200))
        again = sum(1 for i in range(200) if len(ran[f"k{i}"]) > 1)
        print(f"killed with {delivered_before} of 200 delivered; {again} ran again")
    finally:
        server.stop()


@pytest.fixture
def pair(
    postgres_admin_url: str, tmp_path: pathlib.Path
) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    database_url = postgres.create_database(
        postgres_admin_url, f"async_ha_{int(time.time() * 1000)}"
    )
    # One data dir for both, as in test_ha.py: the chain's run log is under it too.
    data_dir = tmp_path / "data"
    servers = [
        LiveServer(
            data_dir=data_dir,
            port=_free_port(),
            log=tmp_path / f"server-{name}.log",
            env={
                **ASYNC_ENV,
                "CHAINYARD_DATABASE_URL": database_url,
                "CHAINYARD_SERVER_ID": name,
            },
        )
        for name in ("a", "b")
    ]
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1], database_url
    finally:
        for server in servers:
            server.stop()


class HolderWatch:
    """Samples the queue's lease holders in the database while a backlog drains: which servers
    took part."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.holders: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT DISTINCT lease_holder FROM async_requests "
                    "WHERE lease_holder IS NOT NULL"
                ).fetchall()
                self.holders.update(row[0] for row in rows)
                time.sleep(0.05)

    def __enter__(self) -> HolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_two_servers_on_postgres_never_run_one_request_twice_at_once(
    pair: tuple[LiveServer, LiveServer, str], tmp_path: pathlib.Path
) -> None:
    a, b, database_url = pair
    ids, log = _push(a, tmp_path)
    chain_id = ids["chain_id"]
    # b serves the chain too (through the replicas a's control loops run).
    with b.client() as client:

        def answers(c: httpx.Client = client) -> bool:
            r = c.post(f"/chains/{chain_id}/production/run_remote", json={"tag": "warm"})
            return r.status_code == 200

        wait_for(answers, timeout=60, what="inference through b")

    count = 120
    with (
        Receiver().running_in_thread() as receiver,
        HolderWatch(database_url) as watch,
        a.client() as client_a,
        b.client() as client_b,
    ):
        calls = [AsyncCalls(client_a, chain_id), AsyncCalls(client_b, chain_id)]
        # Every 12th request runs longer than a lease: its server must renew it meanwhile, or
        # the other server would take it over and run it a second time beside the first.
        request_ids = [
            calls[i % 2].enqueue(
                {
                    "tag": f"r{i}",
                    "sleep": 3 * LEASE_SECONDS if i % 12 == 0 else 0.05,
                    "log": str(log),
                },
                webhook=receiver.url("/hook"),
            )
            for i in range(count)
        ]
        wait_for(
            lambda: set(request_ids) <= set(by_request(receiver.received)),
            timeout=300,
            what="every request's webhook",
        )
        finished = calls[1].wait_all(request_ids, timeout=60)
    outcomes = {(s["status"], s["webhook_status"]) for s in finished.values()}
    assert outcomes == {("SUCCEEDED", "SUCCEEDED")}, outcomes
    ran = runs(log)
    assert {f"r{i}" for i in range(count)} <= set(ran)
    assert _overlaps(log) == {}
    # Both servers' runners took requests.
    assert len(watch.holders) >= 2, watch.holders
    again = sum(1 for tag_runs in ran.values() if len(tag_runs) > 1)
    print(f"holders {sorted(watch.holders)}; {again} requests ran more than once")
