"""Two `chainyard serve` processes on one PostgreSQL database: both serve the API and inference,
exactly one runs the control loops (by a lease in the database), and killing it hands them over
within 10 s, never to both at once."""

from __future__ import annotations

import json
import pathlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO, LiveServer, _free_port, wait_for
from tests.support import postgres

HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _health(server: LiveServer) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{server.url}/healthz", timeout=1)
    except httpx.HTTPError:
        return None
    body: dict[str, Any] = response.json() if response.status_code == 200 else {}
    return body or None


@pytest.fixture
def pair(
    postgres_admin_url: str, tmp_path: pathlib.Path
) -> Iterator[tuple[LiveServer, LiveServer]]:
    database_url = postgres.create_database(postgres_admin_url, f"ha_{int(time.time() * 1000)}")
    # One data dir for both (a shared filesystem between machines): source archives and the
    # secrets key live there.
    data_dir = tmp_path / "data"
    servers = [
        LiveServer(
            data_dir=data_dir,
            port=_free_port(),
            log=tmp_path / f"server-{name}.log",
            env={"CHAINYARD_DATABASE_URL": database_url, "CHAINYARD_SERVER_ID": name},
        )
        for name in ("a", "b")
    ]
    try:
        servers[0].start()
        wait_for(lambda: (_health(servers[0]) or {}).get("leader"), what="a to lead")
        servers[1].start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def test_one_leader_both_serve_and_a_killed_leader_hands_over(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    assert (_health(b) or {}).get("leader") is False
    result = a.push(HELLO, "--name", "ha", "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    chain_id = json.loads(result.stdout.strip().splitlines()[-1])["chain_id"]

    # Both servers answer inference: b through the replicas a publishes.
    for server in (a, b):
        with server.client() as client:

            def answers(c: httpx.Client = client) -> bool:
                r = c.post(f"/chains/{chain_id}/production/run_remote", json={"max_value": 2})
                return r.status_code == 200

            wait_for(answers, timeout=60, what=f"inference through {server.url}")
        with server.client() as client:
            assert client.get(f"/v1/chains/{chain_id}").status_code == 200

    # Watch both servers' roles from now on: never two leaders at once.
    both: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if all((_health(s) or {}).get("leader") for s in (a, b)):
                both.append(time.monotonic())
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert a.process is not None
        a.process.send_signal(signal.SIGKILL)
        a.process.wait()
        a.process = None
        killed = time.monotonic()
        wait_for(lambda: (_health(b) or {}).get("leader"), timeout=20, what="b to take over")
        handover = time.monotonic() - killed
        with b.client() as client:

            def served() -> bool:
                r = client.post(f"/chains/{chain_id}/production/run_remote", json={"max_value": 1})
                return r.status_code == 200

            wait_for(served, timeout=120, what="inference after the handover")
            env = client.get(f"/v1/chains/{chain_id}/environments/production").json()
            assert env["current_deployment"]["status"] == "ACTIVE"
    finally:
        stop.set()
        watcher.join()
    assert handover <= 10.0, f"the control loops moved after {handover:.1f} s"
    assert both == []
