"""A deployment that runs nothing more (deactivated, deleted) leaves no process behind; one scaled
to zero keeps its host, so that waking it only forks a replica."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.e2e.conftest import REPO, LiveServer, host_processes, wait_for

HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = pytest.mark.slow


def _hosts(data_dir: pathlib.Path) -> set[int]:
    """Host processes (not the replicas they fork, whose parent is a host)."""
    everything = set(host_processes(data_dir))
    hosts = set()
    for pid in everything:
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) not in everything:
            hosts.add(pid)
    return hosts


# Host processes are the local runtime's: no Ray server is started for this module.
@pytest.mark.parametrize("live_server", ["local"], indirect=True)
def test_deactivated_and_deleted_deployments_leave_no_host(live_server: LiveServer) -> None:
    pushed = []
    for _ in range(2):
        result = live_server.push(HELLO, "--name", "released", "--promote", "--wait")
        assert result.returncode == 0, result.stderr[-3000:]
        pushed.append(json.loads(result.stdout.strip().splitlines()[-1]))
    chain_id, deployment_id = pushed[0]["chain_id"], pushed[0]["chain_deployment_id"]
    with live_server.client() as client:
        deployment_path = f"/v1/chains/{chain_id}/deployments/{deployment_id}"
        # The replaced deployment is scaled to zero and keeps its host, ready to wake.
        wait_for(
            lambda: client.get(deployment_path).json()["status"] == "SCALED_TO_ZERO",
            what="the first deployment at zero",
        )
        before = _hosts(live_server.data_dir)
        assert len(before) == 2
        assert client.post(f"{deployment_path}/deactivate").status_code == 200
        wait_for(
            lambda: client.get(deployment_path).json()["status"] == "INACTIVE",
            what="the deployment to stop",
        )
        wait_for(
            lambda: len(_hosts(live_server.data_dir)) < len(before),
            timeout=30,
            what="its host process to go",
        )
        answer = client.post(f"/chains/{chain_id}/production/run_remote", json={"max_value": 2})
        assert answer.status_code == 200, answer.text
        running = _hosts(live_server.data_dir)
        assert running
        assert client.delete(f"/v1/chains/{chain_id}").status_code == 200
        wait_for(
            lambda: not (_hosts(live_server.data_dir) & running),
            timeout=30,
            what="the deleted chain's host to go",
        )
