"""The chain `chainyard init` scaffolds runs as its next steps say: locally with `python FILE`,
and on a real server once pushed (a published push into production; the development push and
its `/development/run_remote` are tested with `push --watch`). One server, on the local runtime:
the scaffold is plain truss_chains, which the other e2e modules already run on Ray."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from chainyard.cli import init as scaffold
from tests.e2e.conftest import CHAINYARD, LiveServer, _free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("init")
    live = LiveServer(data_dir=root / "data", port=_free_port(), log=root / "server.log")
    live.start()
    yield live
    live.stop()


def init_chain(directory: pathlib.Path) -> pathlib.Path:
    """`chainyard init DIR` as a user runs it, in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINYARD_")}
    result = subprocess.run(
        [*CHAINYARD, "init", str(directory)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    chain_file = directory / scaffold.DEFAULT_FILE
    assert chain_file.is_file()
    return chain_file


def test_the_scaffold_runs_locally(tmp_path: pathlib.Path) -> None:
    chain_file = init_chain(tmp_path / "local-run")
    result = subprocess.run(
        [sys.executable, str(chain_file)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == scaffold.SAMPLE_ANSWER


def test_the_scaffold_serves_once_pushed(server: LiveServer, tmp_path: pathlib.Path) -> None:
    chain_file = init_chain(tmp_path / "init-e2e")
    result = server.push(chain_file, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    pushed = json.loads(result.stdout.strip().splitlines()[-1])
    assert pushed["status"] == "ACTIVE"
    chain_id = pushed["chain_id"]
    with server.client() as client:
        chain = client.get(f"/v1/chains/{chain_id}")
        assert chain.status_code == 200, chain.text
        # Named after its directory, so that two scaffolds do not deploy into one chain.
        assert chain.json()["name"] == "init-e2e"
        answer = client.post(
            f"/chains/{chain_id}/production/run_remote",
            content=scaffold.SAMPLE_BODY,
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == scaffold.SAMPLE_ANSWER
