"""Autoscaling on real replicas: a burst scales up and every request succeeds; an idle chainlet
with min_replica 0 goes to zero and the next request wakes it; the PATCH makes no deployment."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import threading
import time
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer, wait_for

SLOW = pathlib.Path(__file__).parent / "chains" / "slow.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slow(live_server: LiveServer) -> dict[str, str]:
    result = live_server.push(SLOW, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def chainlet(server: LiveServer, ids: dict[str, str]) -> dict[str, Any]:
    with server.client() as client:
        deployment = client.get(
            f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
        ).json()
    result: dict[str, Any] = deployment["chainlets"][0]
    return result


def deployments_count(server: LiveServer, chain_id: str) -> int:
    with server.client() as client:
        return len(client.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"])


def patch_autoscaling(server: LiveServer, chain_id: str, settings: dict[str, int]) -> str:
    with server.client() as client:
        response = client.patch(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
            json={"updates": [{"chainlet_name": "Slow", "autoscaling_settings": settings}]},
        )
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def call(server: LiveServer, chain_id: str, n: int) -> int:
    with server.client() as client:
        response = client.post(f"/chains/{chain_id}/production/run_remote", json={"n": n})
    return response.status_code


def test_burst_scales_up_and_idle_goes_to_zero_and_wakes(
    live_server: LiveServer, slow: dict[str, str]
) -> None:
    chain_id = slow["chain_id"]
    before = deployments_count(live_server, chain_id)
    status = patch_autoscaling(
        live_server,
        chain_id,
        {
            "min_replica": 0,
            "max_replica": 4,
            "concurrency_target": 1,
            "autoscaling_window": 10,
            "scale_down_delay": 1,
        },
    )
    assert status == "ACCEPTED"
    assert deployments_count(live_server, chain_id) == before  # no new deployment

    # 8 clients, each sending requests back to back for a while.
    def client_loop(i: int) -> list[int]:
        return [call(live_server, chain_id, i * 100 + k) for k in range(8)]

    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(chainlet(live_server, slow)["active_replica_count"])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = [code for codes in pool.map(client_loop, range(8)) for code in codes]
    finally:
        done.set()
        watcher.join()
    assert results == [200] * 64
    assert max(seen) > 1, seen
    # Idle: after the window and the delay the chainlet scales down to zero.
    scaled = wait_for(
        lambda: (c := chainlet(live_server, slow))["status"] == "SCALED_TO_ZERO" and c,
        timeout=90,
        what="the idle chainlet to scale to zero",
    )
    assert scaled["active_replica_count"] == 0
    # The next request is held while a replica starts, then served.
    assert call(live_server, chain_id, 1) == 200
    assert chainlet(live_server, slow)["active_replica_count"] == 1


def test_the_burst_brought_up_more_than_one_replica(
    live_server: LiveServer, slow: dict[str, str]
) -> None:
    # Replica starts are in the chainlet's logs: more than one replica served during the burst.
    info = chainlet(live_server, slow)
    with live_server.client() as client:
        path = (
            f"/v1/chains/{slow['chain_id']}/deployments/{slow['chain_deployment_id']}"
            f"/chainlets/{info['id']}/logs"
        )
        logs = client.get(path, params={"limit": 1000}).json()["logs"]
    replicas = {line["replica"] for line in logs if line["message"].endswith(" serving")}
    assert len(replicas) > 2  # the first replica, at least one more for the burst, the wake


def test_metrics_describe_the_traffic_and_the_scaling(
    live_server: LiveServer, slow: dict[str, str]
) -> None:
    info = chainlet(live_server, slow)
    with live_server.client() as client:
        text = client.get("/metrics").text
    label = f'chainlet_id="{info["id"]}"'

    def value(prefix: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(prefix) and label in line]
        assert lines, f"no {prefix} for {label}"
        return float(lines[0].rsplit(" ", 1)[1])

    assert value("chainyard_requests_total") >= 65
    assert value("chainyard_request_duration_seconds_count") >= 65
    assert value("chainyard_cold_start_seconds_count") >= 2
    assert value("chainyard_replicas_ready") >= 1
    assert "chainyard_autoscaler_decisions_total" in text
    assert "chainyard_reconciler_tick_seconds_count" in text
