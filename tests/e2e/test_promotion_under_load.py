"""A promotion (the instance-type update) while 8 clients keep calling fails no request: a
blue-green switch, and a gradual one (rolling deploy with a traffic ramp)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.e2e.conftest import REPO, LiveServer, wait_for

HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = pytest.mark.slow


GRADUAL = {
    "rolling_deploy": True,
    "rolling_deploy_config": {"max_surge_percent": 50, "max_unavailable_percent": 0},
    "ramp_up_while_promoting": True,
    "ramp_up_duration_seconds": 2,
}


@pytest.mark.parametrize("promotion", [None, GRADUAL], ids=["blue-green", "gradual"])
def test_instance_type_update_under_load_fails_no_request(
    live_server: LiveServer, promotion: dict[str, Any] | None
) -> None:
    name = "loaded" if promotion is None else "loaded-gradual"
    result = live_server.push(HELLO, "--name", name, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    chain_id = ids["chain_id"]
    if promotion is not None:
        with live_server.client() as client:
            response = client.patch(
                f"/v1/chains/{chain_id}/environments/production",
                json={"promotion_settings": promotion},
            )
            assert response.status_code == 200, response.text
    stop = threading.Event()
    codes: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client_loop() -> None:
        with live_server.client() as client:
            while not stop.is_set():
                response = client.post(
                    f"/chains/{chain_id}/production/run_remote", json={"max_value": 2}
                )
                with lock:
                    codes.append(response.status_code)
                    if response.status_code != 200:
                        failures.append(response.text[:300])

    threads = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(codes) >= 50, what="traffic to flow")
        with live_server.client() as client:
            response = client.post(
                f"/v1/chains/{chain_id}/environments/production/chainlet_settings/"
                "instance_types/update",
                json={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
            )
            assert response.status_code == 200, response.text
            new_id = response.json()["chain_deployment"]["id"]
            old_id = ids["chain_deployment_id"]

            def switched_and_drained() -> bool:
                env: dict[str, Any] = client.get(
                    f"/v1/chains/{chain_id}/environments/production"
                ).json()
                old = client.get(f"/v1/chains/{chain_id}/deployments/{old_id}").json()
                return bool(
                    env["current_deployment"]["id"] == new_id and old["status"] == "SCALED_TO_ZERO"
                )

            wait_for(switched_and_drained, what="the promotion and the old deployment's cleanup")
        served_before = len(codes)
        wait_for(lambda: len(codes) >= served_before + 50, what="traffic on the new deployment")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(codes) > 100 and set(codes) == {200}
