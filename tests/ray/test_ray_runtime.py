"""The Ray runtime on a real two-node Ray cluster: placement by instance type (a GPU chainlet lands
on the node with the GPU and sees it), work that no node can take, and the loss of a node."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer, _free_port, wait_for
from tests.support.ray_cluster import RayCluster

PLACEMENT = pathlib.Path(__file__).parent / "chains" / "placement.py"
# Long enough to ride out a node restart, short enough for the unschedulable test.
UNSCHEDULABLE_TIMEOUT = 15.0

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(
    ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("ray")
    live = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        runtime="ray",
        ray=ray_cluster,
        ray_unschedulable_timeout=UNSCHEDULABLE_TIMEOUT,
    )
    live.start()
    yield live
    live.stop()


def update_instance_types(server: LiveServer, chain_id: str, types: dict[str, str]) -> str:
    with server.client() as client:
        response = client.post(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
            json={
                "updates": [
                    {"chainlet_name": name, "instance_type_id": it} for name, it in types.items()
                ]
            },
        )
    assert response.status_code == 200, response.text
    new_id: str = response.json()["chain_deployment"]["id"]
    return new_id


def deployment(server: LiveServer, chain_id: str, deployment_id: str) -> dict[str, Any]:
    with server.client() as client:
        result: dict[str, Any] = client.get(
            f"/v1/chains/{chain_id}/deployments/{deployment_id}"
        ).json()
    return result


def chainlet(server: LiveServer, chain_id: str, deployment_id: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in deployment(server, chain_id, deployment_id)["chainlets"] if c["name"] == name
    )
    return found


def logs(server: LiveServer, chain_id: str, deployment_id: str, name: str) -> list[str]:
    chainlet_id = chainlet(server, chain_id, deployment_id, name)["id"]
    with server.client() as client:
        lines = client.get(
            f"/v1/chains/{chain_id}/deployments/{deployment_id}/chainlets/{chainlet_id}/logs",
            params={"limit": 1000},
        ).json()["logs"]
    return [line["message"] for line in lines]


def current(server: LiveServer, chain_id: str) -> dict[str, Any]:
    with server.client() as client:
        env: dict[str, Any] = client.get(f"/v1/chains/{chain_id}/environments/production").json()
    return env


def call(server: LiveServer, chain_id: str, *, with_gpu: bool = True) -> Any:
    with server.client() as client:
        response = client.post(
            f"/chains/{chain_id}/production/run_remote", json={"with_gpu": with_gpu}
        )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def placed(server: LiveServer) -> dict[str, str]:
    """The chain, deployed on CPU types, then its `Accelerated` moved to an A10G type and its
    entrypoint to 4 vCPUs by the instance-type update, which deploys and promotes a copy."""
    result = server.push(PLACEMENT, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    chain_id, first = ids["chain_id"], ids["chain_deployment_id"]
    new_id = update_instance_types(
        server, chain_id, {"Accelerated": "A10Gx4x16", "Placement": "4x16"}
    )
    wait_for(
        lambda: (
            (env := current(server, chain_id))["current_deployment"]["id"] == new_id
            and env["candidate_deployment"] is None
        ),
        what="the GPU deployment to be promoted",
    )
    # The first deployment's replicas are gone, so the cluster holds only the promoted ones.
    wait_for(
        lambda: deployment(server, chain_id, first)["status"] == "SCALED_TO_ZERO",
        what="the first deployment to scale to zero",
    )
    return {"chain_id": chain_id, "first": first, "gpu": new_id}


def test_gpu_chainlet_runs_on_the_gpu_node_and_sees_its_gpu(
    server: LiveServer, ray_cluster: RayCluster, placed: dict[str, str]
) -> None:
    answer = call(server, placed["chain_id"])
    gpu_raylets = {str(pid) for pid in ray_cluster.gpu_node.raylet_pids()}
    head_raylets = {str(pid) for pid in ray_cluster.head.raylet_pids()}
    assert answer["gpu"]["raylet"] in gpu_raylets, (answer, gpu_raylets)
    assert answer["gpu"]["gpus"] == "0"
    # The CPU chainlet runs on the head: Ray keeps CPU work off GPU nodes while others have room.
    assert answer["entry"]["raylet"] in head_raylets, (answer, head_raylets)
    assert not answer["entry"]["gpus"]
    types = {
        c["name"]: c["instance_type_name"]
        for c in deployment(server, placed["chain_id"], placed["gpu"])["chainlets"]
    }
    assert types["Accelerated"].startswith("A10G")
    messages = logs(server, placed["chain_id"], placed["gpu"], "Accelerated")
    assert any("placed on Ray node" in m and "GPUs 0" in m for m in messages), messages


def test_instance_type_no_node_has_fails_and_the_environment_keeps_serving(
    server: LiveServer, placed: dict[str, str]
) -> None:
    chain_id = placed["chain_id"]
    new_id = update_instance_types(server, chain_id, {"Accelerated": "H100"})
    # While it waits, the chainlet's logs say why.
    wait_for(
        lambda: any(
            "cannot be scheduled" in m for m in logs(server, chain_id, new_id, "Accelerated")
        ),
        what="the reason in the logs",
    )
    assert chainlet(server, chain_id, new_id, "Accelerated")["status"] == "DEPLOYING"
    assert call(server, chain_id)["gpu"]["gpus"] == "0"
    failed = wait_for(
        lambda: (d := deployment(server, chain_id, new_id))["status"] == "DEPLOY_FAILED" and d,
        what="the unschedulable deployment to fail",
    )
    accelerated = next(c for c in failed["chainlets"] if c["name"] == "Accelerated")
    assert accelerated["status"] == "DEPLOY_FAILED"
    messages = logs(server, chain_id, new_id, "Accelerated")
    assert any("H100" in m and "no node of the Ray cluster" in m for m in messages), messages
    assert any(f"gave up after {UNSCHEDULABLE_TIMEOUT:g} s" in m for m in messages), messages
    env = current(server, chain_id)
    assert env["current_deployment"]["id"] == placed["gpu"]
    assert env["candidate_deployment"] is None
    assert call(server, chain_id)["gpu"]["gpus"] == "0"


def test_replicas_on_a_lost_node_come_back_when_it_returns(
    server: LiveServer, ray_cluster: RayCluster, placed: dict[str, str]
) -> None:
    chain_id, deployment_id = placed["chain_id"], placed["gpu"]
    # Three 4-vCPU entrypoint replicas: two fill the head, the third goes to the GPU node.
    with server.client() as client:
        response = client.patch(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
            json={
                "updates": [
                    {
                        "chainlet_name": "Placement",
                        "autoscaling_settings": {"min_replica": 3, "max_replica": 3},
                    }
                ]
            },
        )
        assert response.status_code == 200, response.text
    wait_for(
        lambda: chainlet(server, chain_id, deployment_id, "Placement")["active_replica_count"] == 3,
        what="three entrypoint replicas",
    )
    entry_on = {call(server, chain_id, with_gpu=False)["entry"]["raylet"] for _ in range(12)}
    assert entry_on  # which replica answers is the gateway's choice; all are on live nodes

    try:
        ray_cluster.gpu_node.stop()
        wait_for(
            lambda: (
                chainlet(server, chain_id, deployment_id, "Accelerated")["active_replica_count"]
                == 0
            ),
            what="the lost GPU replica to be noticed",
        )
        # The environment serves on with the replicas that remain.
        head_raylets = {str(pid) for pid in ray_cluster.head.raylet_pids()}
        for _ in range(10):
            assert call(server, chain_id, with_gpu=False)["entry"]["raylet"] in head_raylets
        messages = logs(server, chain_id, deployment_id, "Accelerated")
        assert any("failed" in m for m in messages), messages
    finally:
        # Later tests of the session use the whole cluster.
        ray_cluster.start_gpu_node()
    wait_for(
        lambda: (
            (c := chainlet(server, chain_id, deployment_id, "Accelerated"))["status"] == "ACTIVE"
            and c["active_replica_count"] == 1
        ),
        timeout=180,
        what="the GPU replica to come back on the returned node",
    )
    answer = call(server, chain_id)
    assert answer["gpu"]["raylet"] in {str(p) for p in ray_cluster.gpu_node.raylet_pids()}
    assert answer["gpu"]["gpus"] == "0"
    wait_for(
        lambda: chainlet(server, chain_id, deployment_id, "Placement")["active_replica_count"] == 3,
        timeout=180,
        what="the third entrypoint replica to come back",
    )
