"""The local runtime's corners: streaming, sync chainlets, readiness from is_healthy, crash and
restart, secrets per chainlet, GPU types that cannot be placed, and waking from zero."""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer, wait_for
from tests.support import replica_processes

FEATURES = pathlib.Path(__file__).parent / "chains" / "features.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def features(live_server: LiveServer) -> dict[str, Any]:
    with live_server.client() as client:
        client.post("/v1/secrets", json={"name": "shout_suffix", "value": "!"}).raise_for_status()
    result = live_server.push(FEATURES, "--promote")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    with live_server.client() as client:
        path = f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
        ids["path"] = path

        def upper_started() -> Any:
            deployment = client.get(path).json()
            return deployment if deployment["status"] == "DEPLOYING" else None

        wait_for(upper_started, what="the deployment to start its replicas")
        # Upper's is_healthy says no until the file exists: the deployment must not go ACTIVE.
        time.sleep(2.0)
        assert client.get(path).json()["status"] == "DEPLOYING"
        data_dir = live_server.data_dir / "chainlet-data" / ids["chain_deployment_id"] / "Upper"
        wait_for(data_dir.exists, what="the chainlet's data dir")
        (data_dir / "healthy").write_text("yes")
        wait_for(lambda: client.get(path).json()["status"] == "ACTIVE", what="ACTIVE")
    return ids


def stream(server: LiveServer, chain_id: str, text: str) -> httpx.Response:
    with server.client() as client:
        return client.post(f"/chains/{chain_id}/production/run_remote", json={"text": text})


def test_streaming_entrypoint_with_sync_dependency_and_own_secrets(
    live_server: LiveServer, features: dict[str, Any]
) -> None:
    response = stream(live_server, features["chain_id"], "hello chains")
    assert response.status_code == 200, response.text
    assert response.text == "sees-secret=False;HELLO!;CHAINS!;"


def test_a_crashed_replica_is_replaced(live_server: LiveServer, features: dict[str, Any]) -> None:
    # The stream has started when the dependency dies, so the answer is cut short.
    try:
        crashed = stream(live_server, features["chain_id"], "crash").text
    except httpx.RemoteProtocolError:
        crashed = ""
    assert "CRASH" not in crashed
    with live_server.client() as client:
        path = features["path"]

        def upper() -> dict[str, Any]:
            deployment = client.get(path).json()
            chainlet: dict[str, Any] = next(
                c for c in deployment["chainlets"] if c["name"] == "Upper"
            )
            return chainlet

        logs_path = f"{path}/chainlets/{upper()['id']}/logs"
        wait_for(
            lambda: any(
                "exited with code 7" in line["message"]
                for line in client.get(logs_path).json()["logs"]
            ),
            what="the crash in Upper's logs",
        )
        wait_for(
            lambda: upper()["status"] == "ACTIVE" and upper()["active_replica_count"] == 1,
            what="Upper to be replaced",
        )
    assert stream(live_server, features["chain_id"], "again").text.endswith("AGAIN!;")


def test_gpu_instance_type_without_gpu_fails_and_keeps_serving(
    live_server: LiveServer, features: dict[str, Any]
) -> None:
    chain_id = features["chain_id"]
    # This machine has no GPU; the test session's Ray cluster has an A10G but no H100.
    gpu_type = "H100" if live_server.runtime == "ray" else "A10Gx4x16"
    with live_server.client() as client:
        response = client.post(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
            json={"updates": [{"chainlet_name": "Tokens", "instance_type_id": gpu_type}]},
        )
        assert response.status_code == 200, response.text
        new_id = response.json()["chain_deployment"]["id"]
        failed = wait_for(
            lambda: (
                (d := client.get(f"/v1/chains/{chain_id}/deployments/{new_id}").json())["status"]
                == "DEPLOY_FAILED"
                and d
            ),
            what="the GPU deployment to fail",
        )
        tokens = next(c for c in failed["chainlets"] if c["name"] == "Tokens")
        logs = client.get(
            f"/v1/chains/{chain_id}/deployments/{new_id}/chainlets/{tokens['id']}/logs"
        ).json()["logs"]
        assert any("cannot be scheduled" in line["message"] for line in logs)
        env = client.get(f"/v1/chains/{chain_id}/environments/production").json()
        assert env["current_deployment"]["id"] == features["chain_deployment_id"]
        assert env["candidate_deployment"] is None
    assert stream(live_server, chain_id, "still").text.endswith("STILL!;")


def test_wake_and_requests_hold_while_scaling_from_zero(
    live_server: LiveServer, features: dict[str, Any]
) -> None:
    chain_id = features["chain_id"]
    with live_server.client() as client:
        deployment_id = features["chain_deployment_id"]
        # An old deployment, scaled to zero, is woken by a request to it.
        response = client.post(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
            json={"updates": [{"chainlet_name": "Tokens", "instance_type_id": "2x8"}]},
        )
        assert response.status_code == 200, response.text
        new_id = response.json()["chain_deployment"]["id"]
        data_dir = live_server.data_dir / "chainlet-data" / new_id / "Upper"
        wait_for(data_dir.exists, what="the new deployment's data dir")
        (data_dir / "healthy").write_text("yes")
        wait_for(
            lambda: (
                client.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}").json()["status"]
                == "SCALED_TO_ZERO"
            ),
            what="the old deployment to scale to zero",
        )
        old = client.post(
            f"/chains/{chain_id}/deployment/{deployment_id}/run_remote", json={"text": "wake"}
        )
        assert old.status_code == 200, old.text
        assert old.text.endswith("WAKE!;")
        woken = client.post(f"/chains/{chain_id}/deployment/{deployment_id}/wake")
        assert woken.status_code == 202


def test_instance_type_becomes_process_limits(
    live_server: LiveServer, features: dict[str, Any]
) -> None:
    if live_server.runtime != "local":
        pytest.skip("Ray places replicas by resources; it does not pin CPUs")
    # Every features replica runs on 1x2 or 2x8: the address-space cap follows the memory figure
    # and the CPU affinity follows the vCPU count (capped by this machine's CPUs).
    caps = {(2048 * 2 + 1024) * 2**20, (8192 * 2 + 1024) * 2**20}
    machine_cpus = len(os.sched_getaffinity(0))
    pids = replica_processes.replica_pids(live_server.data_dir)
    assert pids
    for pid in pids:
        limits = pathlib.Path(f"/proc/{pid}/limits").read_text()
        line = next(entry for entry in limits.splitlines() if entry.startswith("Max address space"))
        assert int(line.split()[3]) in caps
        assert 1 <= len(os.sched_getaffinity(pid)) <= min(2, machine_cpus)


def test_oversubscription_is_allowed_and_logged(
    live_server: LiveServer, features: dict[str, Any]
) -> None:
    if live_server.runtime != "local":
        pytest.skip("on Ray, a type no node fits is unschedulable (tests/ray)")
    chain_id = features["chain_id"]
    big = "16x64"  # more CPUs than this machine has: it runs anyway, and says so
    with live_server.client() as client:
        response = client.post(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
            json={"updates": [{"chainlet_name": "Upper", "instance_type_id": big}]},
        )
        assert response.status_code == 200, response.text
        new_id = response.json()["chain_deployment"]["id"]
        data_dir = live_server.data_dir / "chainlet-data" / new_id / "Upper"
        wait_for(data_dir.exists, what="the new deployment's data dir")
        (data_dir / "healthy").write_text("yes")
        path = f"/v1/chains/{chain_id}/deployments/{new_id}"
        deployment = wait_for(
            lambda: (d := client.get(path).json())["status"] == "ACTIVE" and d,
            what="the oversubscribed deployment to become ACTIVE",
        )
        upper = next(c for c in deployment["chainlets"] if c["name"] == "Upper")
        logs = client.get(f"{path}/chainlets/{upper['id']}/logs").json()["logs"]
        assert any("oversubscribed" in line["message"] for line in logs)
