"""A second `chainyard serve` on a live server's data dir refuses to start and touches nothing:
the live server's replicas keep running, it keeps its lease and keeps serving (issue 16)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import CHAINYARD, KEY, REPO, LiveServer, _free_port, wait_for

HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[LiveServer]:
    live = LiveServer(data_dir=tmp_path / "data", port=_free_port(), log=tmp_path / "server.log")
    live.start()
    yield live
    live.stop()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINYARD_")}
    env["CHAINYARD_BOOTSTRAP_API_KEY"] = KEY
    return env


def _second_serve(data_dir: pathlib.Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHAINYARD, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )


def _answers(server: LiveServer, chain_id: str) -> bool:
    with server.client() as client:
        response = client.post(f"/chains/{chain_id}/production/run_remote", json={"max_value": 2})
    return response.status_code == 200 and "Hello World!" in response.json()


def _alive(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_second_server_on_a_live_data_dir_refuses_and_touches_nothing(
    server: LiveServer,
) -> None:
    pushed = server.push(HELLO, "--name", "locked", "--promote", "--wait")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    chain_id = json.loads(pushed.stdout.strip().splitlines()[-1])["chain_id"]
    wait_for(lambda: _answers(server, chain_id), timeout=60, what="the chain to answer")
    replicas = sorted(server.replica_processes())
    assert replicas, "the chain runs no replica process"
    run_files = sorted(p.name for p in (server.data_dir / "run").iterdir())
    assert server.process is not None

    # The same port (the same server id: it would take the live server's lease at once) and
    # another port: both refused before they touch the store, the lease or the runtime.
    for port in (server.port, _free_port()):
        second = _second_serve(server.data_dir, port)
        assert second.returncode == 2, second.stderr[-3000:]
        assert (
            f"data dir {server.data_dir.resolve()} is in use by another chainyard server "
            f"(pid {server.process.pid})"
        ) in second.stderr
        assert "Traceback" not in second.stderr

    assert all(_alive(pid) for pid in replicas), "a replica of the live server was killed"
    assert sorted(server.replica_processes()) == replicas
    assert sorted(p.name for p in (server.data_dir / "run").iterdir()) == run_files
    health = httpx.get(f"{server.url}/healthz", timeout=5).json()
    assert health["leader"] is True
    assert _answers(server, chain_id)

    # The admin CLI works on the store while the server runs (it needs no server lock).
    data_dir = str(server.data_dir)
    created = subprocess.run(
        [*CHAINYARD, "admin", "create-key", "--workspace", "default", "--data-dir", data_dir],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    with server.client(key) as client:
        assert client.get("/v1/chains").status_code == 200

    # Once the live server stops, the data dir is free again: a new server starts on it.
    server.stop()
    server.start()
    wait_for(lambda: _answers(server, chain_id), timeout=60, what="the restarted server")
