"""The async runner in a real `chainyard serve` (controller and worker) on a real chain: a queued
request wakes a deployment at zero through the autoscaler's demand alone (a server without a
runner); a server with one runs what is queued through its gateway, and delivers the result to a
webhook on loopback, signed with the workspace's secret.

Requests come in through the public route (`async_run_remote`), whose enqueue wakes the
controller's runner over the worker's channel."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from chainyard.store import models  # noqa: F401  (every table: the foreign keys resolve)
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.db import Database, sqlite_url
from chainyard.webhooks import signing
from tests.e2e.conftest import LiveServer, _free_port, wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.slow

CHAIN = """
import truss_chains as chains


@chains.mark_entrypoint("echo")
class Echo(chains.ChainletBase):
    async def run_remote(self, n: int) -> dict[str, int]:
        return {"n": n, "doubled": 2 * n}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("async")
    server = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        # First without a runner: nothing but the autoscaler acts on the queue.
        env={
            "CHAINYARD_ASYNC_RUNNER": "0",
            "CHAINYARD_ALLOW_PRIVATE_WEBHOOKS": "1",
            "CHAINYARD_ASYNC_LEASE_SECONDS": "5",
        },
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def echo(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    chain_file = tmp_path_factory.mktemp("chain") / "echo.py"
    chain_file.write_text(CHAIN)
    result = server.push(chain_file, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


@pytest.fixture(scope="module")
def store(server: LiveServer) -> Iterator[Database]:
    db = Database(sqlite_url(server.data_dir))
    yield db
    db.dispose()


def enqueue(server: LiveServer, ids: dict[str, str], n: int, **fields: Any) -> str:
    with server.client() as client:
        response = client.post(
            f"/chains/{ids['chain_id']}/production/async_run_remote",
            json={"model_input": {"n": n}, **fields},
        )
    assert response.status_code == 201, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status(server: LiveServer, ids: dict[str, str], request_id: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/chains/{ids['chain_id']}/async_request/{request_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored(store: Database, request_id: str) -> AsyncRequest:
    with store.read() as session:
        found = session.get(AsyncRequest, request_id)
        assert found is not None
        return found


def chainlet(server: LiveServer, ids: dict[str, str]) -> dict[str, Any]:
    with server.client() as client:
        deployment = client.get(
            f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
        ).json()
    result: dict[str, Any] = deployment["chainlets"][0]
    return result


def test_a_queued_request_wakes_a_deployment_at_zero_through_the_autoscaler(
    server: LiveServer, echo: dict[str, str], store: Database
) -> None:
    with server.client() as client:
        response = client.patch(
            f"/v1/chains/{echo['chain_id']}/environments/production/chainlet_settings"
            "/autoscaling_settings",
            json={
                "updates": [
                    {
                        "chainlet_name": "Echo",
                        "autoscaling_settings": {
                            "min_replica": 0,
                            "autoscaling_window": 10,
                            "scale_down_delay": 1,
                        },
                    }
                ]
            },
        )
    assert response.status_code == 200, response.text
    wait_for(
        lambda: chainlet(server, echo)["status"] == "SCALED_TO_ZERO",
        timeout=90,
        what="the idle chainlet to scale to zero",
    )
    request_id = enqueue(server, echo, 20)
    # No runner and no call: the queued request is the only demand, and it wakes the chainlet.
    woken = wait_for(
        lambda: (c := chainlet(server, echo))["active_replica_count"] >= 1 and c,
        timeout=120,
        what="the queued request to wake the chainlet",
    )
    assert woken["status"] in ("ACTIVE", "WAKING_UP")
    assert status(server, echo, request_id)["status"] == "QUEUED"
    with server.client() as client:
        queue = client.get(f"/chains/{echo['chain_id']}/production/async_queue_status").json()
    assert (queue["num_queued_requests"], queue["num_in_progress_requests"]) == (1, 0)
    # It waits for a server with a runner (the next test's).
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert (
        f'chainyard_async_requests{{deployment_id="{echo["chain_deployment_id"]}",'
        'status="QUEUED"} 1.0'
    ) in metrics


def test_a_runner_runs_the_queue_and_delivers_signed_results(
    server: LiveServer, echo: dict[str, str], store: Database
) -> None:
    left_queued = stored(store, next(iter(_queued(store))))
    server.stop()
    server.env["CHAINYARD_ASYNC_RUNNER"] = "1"
    server.start()
    wait_for(
        lambda: status(server, echo, left_queued.id)["status"] == "SUCCEEDED",
        timeout=120,
        what="the request queued before the restart to run",
    )
    with server.client() as client:
        created = client.post("/v1/webhook_secrets")
        assert created.status_code == 200, created.text
        secret = created.json()["secret"]
    with Receiver().running_in_thread() as receiver:
        hooked = enqueue(server, echo, 21, webhook_endpoint=receiver.url("/results?x=1"))
        wait_for(
            lambda: status(server, echo, hooked)["webhook_status"] == "SUCCEEDED",
            timeout=120,
            what="the webhook to be delivered",
        )
        [sent] = receiver.received
    row = stored(store, hooked)
    assert (row.status, row.attempts, row.result) == ("SUCCEEDED", 1, None)
    assert sent.path == "/results?x=1"
    assert signing.verify(sent.body, sent.headers["x-baseten-signature"], [secret])
    body = json.loads(sent.body)
    assert body == {
        "request_id": hooked,
        "chain_id": echo["chain_id"],
        "deployment_id": echo["chain_deployment_id"],
        "type": "async_request_completed",
        "time": body["time"],
        "data": {"n": 21, "doubled": 42},
        "errors": [],
    }
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert 'chainyard_async_outcomes_total{outcome="succeeded"} 2.0' in metrics
    assert 'chainyard_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics
    assert "chainyard_async_wait_seconds_count 2.0" in metrics


def _queued(store: Database) -> list[str]:
    with store.read() as session:
        return list(session.scalars(select(AsyncRequest.id).where(AsyncRequest.status == "QUEUED")))


def test_the_log_names_the_runner(server: LiveServer) -> None:
    text = pathlib.Path(server.log).read_text()
    assert "async runner" in text and "the gateway answers; claiming" in text
