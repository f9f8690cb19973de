"""`chainyard serve` as a controller and worker processes (workers/): every worker serves, the
whole server's figures and limits hold whichever worker a request reaches, a change made through
one worker holds at the others before its answer leaves, and a worker that dies is replaced."""

from __future__ import annotations

import json
import pathlib
import re
import signal
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.e2e.conftest import KEY, LiveServer, _free_port, wait_for

pytestmark = pytest.mark.slow

WORKERS = 2

CHAIN = """
import truss_chains as chains


@chains.mark_entrypoint("counted")
class Counted(chains.ChainletBase):
    async def run_remote(self, n: int) -> int:
        return n + 1
"""


def _server(root: pathlib.Path, **env: str) -> Iterator[LiveServer]:
    server = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        env=env,
        workers=WORKERS,
    )
    if env.get("CHAINYARD_RUNTIME"):
        server.runtime = env["CHAINYARD_RUNTIME"]
    server.start()
    try:
        yield server
    finally:
        process = server.process
        assert process is not None
        workers = _worker_processes(process.pid)
        server.stop()
        # Stopping the server stops every worker.
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers left running: {alive}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from _server(tmp_path_factory.mktemp("workers"))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # One request per second for the whole server, bursts of one.
    yield from _server(
        tmp_path_factory.mktemp("limited"), CHAINYARD_RUNTIME="simulated", CHAINYARD_RATE_LIMIT="1"
    )


def _worker_processes(pid: int) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(pid).children()
        if "chainyard.workers.worker" in " ".join(p.cmdline())
    ]


def _one_client_per_worker(server: LiveServer, key: str = KEY) -> dict[int, httpx.Client]:
    """Keep-alive clients, one whose connection a worker accepted for each worker: the kernel
    hands each new connection to whichever worker accepts first."""
    clients: dict[int, httpx.Client] = {}
    for _ in range(200):
        client = server.client(key)
        worker = client.get("/healthz").json()["worker"]
        if worker in clients:
            client.close()
        else:
            clients[worker] = client
        if len(clients) == WORKERS:
            return clients
    for client in clients.values():
        client.close()
    raise AssertionError(f"only workers {sorted(clients)} took connections")


def _requests_total(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return sum(
        float(m.group(1))
        for m in re.finditer(r'^chainyard_requests_total\{chainlet_id="[^"]+"\} (\S+)$', text, re.M)
    )


def test_every_worker_serves_and_metrics_count_the_whole_server(
    server: LiveServer, tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "chain.py"
    source.write_text(CHAIN)
    pushed = server.push(source, "--name", "counted", "--wait", "--promote", "-o", "json")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    chain_id = json.loads(pushed.stdout.strip().splitlines()[-1])["chain_id"]
    clients = _one_client_per_worker(server)
    try:
        health = clients[0].get("/healthz").json()
        assert health["workers"] == WORKERS and health["leader"] is True
        before = _requests_total(clients[0])
        run = f"/chains/{chain_id}/production/run_remote"
        for worker, client in clients.items():
            for n in range(3 + worker):
                assert client.post(run, json={"n": n}).json() == n + 1
        # Read through either worker: the controller adds up every worker's count.
        for client in clients.values():
            assert _requests_total(client) - before == sum(3 + w for w in clients)
        text = clients[1].get("/metrics").text
        assert re.search(r"^chainyard_replicas_ready\{chainlet_id=\"[^\"]+\"\} 1\.0$", text, re.M)
    finally:
        for client in clients.values():
            client.close()


def test_a_key_deleted_through_one_worker_is_refused_by_the_other_at_once(
    server: LiveServer,
) -> None:
    with server.client() as admin:
        created = admin.post("/v1/api_keys", json={"type": "WORKSPACE_MANAGE_ALL"})
        assert created.status_code == 200, created.text
    raw = created.json()["api_key"]
    clients = _one_client_per_worker(server, raw)
    try:
        # Both workers now remember the key (authentication cache).
        for client in clients.values():
            assert client.get("/v1/chains").status_code == 200
        deleted = clients[1].delete(f"/v1/api_keys/{raw.partition('.')[0]}")
        assert deleted.status_code == 200, deleted.text
        assert clients[0].get("/v1/chains").status_code == 401
    finally:
        for client in clients.values():
            client.close()


def test_the_rate_limit_holds_for_the_whole_server(limited: LiveServer) -> None:
    clients = _one_client_per_worker(limited)
    try:
        refused = 0
        for _ in range(3):
            time.sleep(1.1)  # the bucket refills to its one token
            assert clients[0].get("/v1/chains").status_code == 200
            # The same bucket, reached through the other worker, is empty now.
            refused += clients[1].get("/v1/chains").status_code == 429
        assert refused >= 2
    finally:
        for client in clients.values():
            client.close()


def test_a_worker_that_dies_is_replaced(limited: LiveServer) -> None:
    assert limited.process is not None
    workers = _worker_processes(limited.process.pid)
    assert len(workers) == WORKERS
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)

    def replaced() -> bool:
        now = _worker_processes(limited.process.pid)  # type: ignore[union-attr]
        return len(now) == WORKERS and victim.pid not in {p.pid for p in now}

    wait_for(replaced, timeout=30, what="a new worker")
    # Both serve again (the new one once it has the controller's view).
    clients = _one_client_per_worker(limited)
    for client in clients.values():
        client.close()


def test_stopping_the_server_finishes_the_requests_it_holds(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """SIGTERM to the controller: the workers stop taking connections but answer what they hold,
    before the replicas stop; then every worker is gone."""
    import concurrent.futures

    root = tmp_path_factory.mktemp("stopping")
    server = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        workers=WORKERS,
    )
    server.start()
    try:
        chain = pathlib.Path(__file__).parent / "chains" / "slow.py"
        pushed = server.push(chain, "--name", "slow", "--wait", "--promote", "-o", "json")
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        chain_id = json.loads(pushed.stdout.strip().splitlines()[-1])["chain_id"]
        run = f"{server.url}/chains/{chain_id}/production/run_remote"
        headers = {"Authorization": f"Api-Key {KEY}"}
        assert httpx.post(run, json={"n": 0}, headers=headers, timeout=60).status_code == 200
        assert server.process is not None
        workers = _worker_processes(server.process.pid)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            calls = [
                pool.submit(httpx.post, run, json={"n": n}, headers=headers, timeout=60)
                for n in range(4)
            ]
            time.sleep(0.2)  # the calls are in: one runs, the others wait for the replica
            server.process.send_signal(signal.SIGTERM)
            answers = [c.result() for c in calls]
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        assert sorted(a.json()["n"] for a in answers) == [0, 1, 2, 3]
        assert server.process.wait(60) == 0
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers left running: {alive}"
    finally:
        server.stop()
