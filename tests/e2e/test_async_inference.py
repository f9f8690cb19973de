"""Async inference end to end (docs/async-inference.md): a real `chainyard serve` (controller and
a worker), the probe chain (chains/async_probe.py) and webhook receivers on loopback.

One server for the module, its async cap at one request per deployment so that a gated request
(the blocker) holds back everything after it: the tests that need a waiting backlog make one
that way, and release it by creating the gate file. Small webhook retry settings keep a failing
receiver's test short.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chainyard.webhooks import signing
from tests.e2e.conftest import LiveServer, _free_port, wait_for
from tests.support.async_calls import AsyncCalls, by_request, payloads, runs
from tests.support.webhook_receiver import Receiver

PROBE = pathlib.Path(__file__).parent / "chains" / "async_probe.py"
WEBHOOK_MAX_ATTEMPTS = 3

pytestmark = pytest.mark.slow

SERVER_ENV = {
    "CHAINYARD_ALLOW_PRIVATE_WEBHOOKS": "1",
    "CHAINYARD_ASYNC_CONCURRENCY_PER_DEPLOYMENT": "1",
    "CHAINYARD_WEBHOOK_MAX_ATTEMPTS": str(WEBHOOK_MAX_ATTEMPTS),
    "CHAINYARD_WEBHOOK_RETRY_SECONDS": "0.2",
    "CHAINYARD_ASYNC_LEASE_SECONDS": "5",
}


class Probe:
    """The pushed probe chain on the module's server: its ids, async calls, run log and
    receiver."""

    def __init__(
        self, server: LiveServer, ids: dict[str, str], shared: pathlib.Path, receiver: Receiver
    ) -> None:
        self.server = server
        self.chain_id = ids["chain_id"]
        self.deployment_id = ids["chain_deployment_id"]
        self.shared = shared
        self.log = shared / "runs.log"
        self.receiver = receiver
        self.client = server.client()
        self.calls = AsyncCalls(self.client, self.chain_id)

    def input(self, tag: str, **fields: Any) -> dict[str, Any]:
        return {"tag": tag, "log": str(self.log), **fields}

    def hook(self, name: str) -> str:
        return self.receiver.url(f"/hook/{name}")

    def delivered(self, name: str) -> list[dict[str, Any]]:
        return payloads(r for r in self.receiver.received if r.path == f"/hook/{name}")

    @contextlib.contextmanager
    def blocker(self) -> Iterator[str]:
        """A request that holds the deployment's one async slot until the block ends."""
        gate = self.shared / f"gate-{uuid.uuid4().hex[:8]}"
        tag = f"blocker-{gate.name}"
        request_id = self.calls.enqueue(self.input(tag, gate=str(gate)))
        self.calls.wait(request_id, lambda s: s["status"] == "IN_PROGRESS")
        wait_for(lambda: tag in runs(self.log), timeout=60, what="the blocker to run")
        try:
            yield request_id
        finally:
            gate.touch()
            self.calls.wait(request_id)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver().running_in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Probe]:
    root = tmp_path_factory.mktemp("async")
    server = LiveServer(
        data_dir=root / "data", port=_free_port(), log=root / "server.log", env=SERVER_ENV
    )
    server.start()
    try:
        result = server.push(PROBE, "--promote", "--wait")
        assert result.returncode == 0, result.stderr[-3000:]
        ids = json.loads(result.stdout.strip().splitlines()[-1])
        shared = server.shared_dir(ids["chain_deployment_id"], root)
        probe = Probe(server, ids, shared, receiver)
        yield probe
        probe.client.close()
    finally:
        server.stop()


def test_result_is_delivered_signed_with_basetens_payload(probe: Probe) -> None:
    created = probe.client.post("/v1/webhook_secrets")
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")

    request_id = probe.calls.enqueue(
        probe.input("signed", sleep=0.05), webhook=probe.hook("signed")
    )
    status = probe.calls.wait(request_id)
    assert (status["status"], status["webhook_status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert status["request_id"] == request_id
    assert status["chain_id"] == probe.chain_id
    assert status["deployment_id"] == probe.deployment_id
    assert status["errors"] == []
    assert status["status_at"] >= status["created_at"]
    # The bare path answers the same.
    bare = probe.client.get(f"/async_request/{request_id}")
    assert bare.status_code == 200, bare.text
    assert bare.json()["status"] == "SUCCEEDED"

    [received] = [r for r in probe.receiver.received if r.path == "/hook/signed"]
    assert received.headers["content-type"].startswith("application/json")
    assert received.headers["x-baseten-request-id"] == request_id
    assert signing.verify(received.body, received.headers["x-baseten-signature"], [secret])
    assert not signing.verify(received.body, received.headers["x-baseten-signature"], ["whsec_x"])
    payload = json.loads(received.body)
    assert set(payload) == {
        "request_id",
        "chain_id",
        "deployment_id",
        "type",
        "time",
        "data",
        "errors",
    }
    assert payload["request_id"] == request_id
    assert payload["chain_id"] == probe.chain_id
    assert payload["deployment_id"] == probe.deployment_id
    assert payload["type"] == "async_request_completed"
    assert payload["time"].endswith("Z")
    assert dt.datetime.fromisoformat(payload["time"]).tzinfo is not None
    assert payload["errors"] == []
    assert payload["data"]["tag"] == "signed" and payload["data"]["run"] == 1


def test_without_a_webhook_it_succeeds_with_no_webhook_provided(probe: Probe) -> None:
    request_id = probe.calls.enqueue(probe.input("quiet"))
    queued = probe.calls.status(request_id)
    assert queued["webhook_status"] == "NO_WEBHOOK_PROVIDED"
    status = probe.calls.wait(request_id)
    assert (status["status"], status["webhook_status"]) == ("SUCCEEDED", "NO_WEBHOOK_PROVIDED")
    [run] = runs(probe.log)["quiet"]
    assert run["end"] is not None and not run["failed"]


def test_a_failing_receiver_is_retried_then_the_request_is_webhook_failed(probe: Probe) -> None:
    with Receiver(then=500).running_in_thread() as failing:
        request_id = probe.calls.enqueue(probe.input("unheard"), webhook=failing.url("/hook"))
        status = probe.calls.wait(request_id)
        attempts = list(failing.received)
    assert (status["status"], status["webhook_status"]) == ("WEBHOOK_FAILED", "FAILED")
    assert len(attempts) == WEBHOOK_MAX_ATTEMPTS
    assert all(json.loads(a.body)["request_id"] == request_id for a in attempts)
    assert all(a.headers["x-baseten-signature"].startswith("v1=") for a in attempts)
    # The chain ran once: a webhook's retries do not run the request again.
    assert len(runs(probe.log)["unheard"]) == 1


def test_a_failing_chain_is_retried_then_failed(probe: Probe) -> None:
    retry = {"max_attempts": 3, "initial_delay_ms": 0, "max_delay_ms": 0}
    request_id = probe.calls.enqueue(
        probe.input("broken", fail_times=100), webhook=probe.hook("broken"), retry=retry
    )
    status = probe.calls.wait(request_id)
    assert (status["status"], status["webhook_status"]) == ("FAILED", "SUCCEEDED")
    [error] = status["errors"]
    assert error["code"] == "MODEL_PREDICT_ERROR"
    attempts = runs(probe.log)["broken"]
    assert [a["run"] for a in attempts] == [1, 2, 3]
    assert all(a["failed"] for a in attempts)
    [payload] = probe.delivered("broken")
    assert payload["data"] is None
    assert [e["code"] for e in payload["errors"]] == ["MODEL_PREDICT_ERROR"]


def test_a_chain_failing_once_then_succeeds(probe: Probe) -> None:
    retry = {"max_attempts": 3, "initial_delay_ms": 100, "max_delay_ms": 200}
    request_id = probe.calls.enqueue(
        probe.input("flaky", fail_times=1), webhook=probe.hook("flaky"), retry=retry
    )
    status = probe.calls.wait(request_id)
    assert (status["status"], status["webhook_status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert status["errors"] == []
    assert [a["failed"] for a in runs(probe.log)["flaky"]] == [True, False]
    [payload] = probe.delivered("flaky")
    assert payload["errors"] == [] and payload["data"]["run"] == 2


def test_only_a_queued_request_can_be_canceled(probe: Probe) -> None:
    with probe.blocker() as blocker:
        queued = probe.calls.enqueue(probe.input("canceled"), webhook=probe.hook("canceled"))
        quiet = probe.calls.enqueue(probe.input("canceled-quiet"))
        answer = probe.calls.cancel(queued)
        assert answer["request_id"] == queued and answer["canceled"] is True
        assert probe.calls.cancel(quiet)["canceled"] is True
        running = probe.calls.cancel(blocker)
        assert running["canceled"] is False and running["message"]
        # Canceling twice changes nothing.
        assert probe.calls.cancel(queued)["canceled"] is False
    status = probe.calls.status(queued)
    assert (status["status"], status["webhook_status"]) == ("CANCELED", "CANCELED")
    status = probe.calls.status(quiet)
    assert (status["status"], status["webhook_status"]) == ("CANCELED", "NO_WEBHOOK_PROVIDED")
    assert probe.calls.status(blocker)["status"] == "SUCCEEDED"
    # Neither ran, and the canceled one's webhook got nothing.
    assert "canceled" not in runs(probe.log) and "canceled-quiet" not in runs(probe.log)
    assert probe.delivered("canceled") == []


def test_a_request_queued_too_long_expires(probe: Probe) -> None:
    with probe.blocker():
        hooked = probe.calls.enqueue(
            probe.input("expired"), webhook=probe.hook("expired"), max_time_in_queue_seconds=10
        )
        quiet = probe.calls.enqueue(probe.input("expired-quiet"), max_time_in_queue_seconds=10)
        status = probe.calls.wait(hooked, timeout=90)
        assert (status["status"], status["webhook_status"]) == ("EXPIRED", "SUCCEEDED")
        status = probe.calls.wait(quiet, timeout=30)
        assert (status["status"], status["webhook_status"]) == ("EXPIRED", "NO_WEBHOOK_PROVIDED")
    [payload] = probe.delivered("expired")
    assert payload["request_id"] == hooked and payload["data"] is None
    assert [e["code"] for e in payload["errors"]] == ["MODEL_UNAVAILABLE"]
    assert "expired" not in runs(probe.log) and "expired-quiet" not in runs(probe.log)
    # An expired request stays expired.
    assert probe.calls.status(hooked)["status"] == "EXPIRED"


def test_priorities_reorder_a_backlog_and_the_queue_status_counts_it(probe: Probe) -> None:
    asked = [2, 2, 1, 1, 0, 0]
    with probe.blocker():
        ids = {
            probe.calls.enqueue(
                probe.input(f"prio-{i}-{p}"), webhook=probe.hook("prio"), priority=p
            ): (i, p)
            for i, p in enumerate(asked)
        }
        counts = probe.calls.queue_status()
        assert counts["model_id"] == probe.chain_id
        assert counts["deployment_id"] == probe.deployment_id
        assert (counts["num_queued_requests"], counts["num_in_progress_requests"]) == (6, 1)
        # The deployment's own path counts the same backlog.
        by_deployment = probe.calls.queue_status(f"deployment/{probe.deployment_id}")
        assert by_deployment["num_queued_requests"] == 6
    finished = probe.calls.wait_all(ids)
    assert {s["status"] for s in finished.values()} == {"SUCCEEDED"}
    started = sorted(
        (run["start"], tag)
        for tag, tag_runs in runs(probe.log).items()
        if tag.startswith("prio-")
        for run in tag_runs
    )
    order = [tag for _, tag in started]
    # Lower priorities first; within one priority, first in first out.
    assert order == ["prio-4-0", "prio-5-0", "prio-2-1", "prio-3-1", "prio-0-2", "prio-1-2"]
    assert set(by_request(probe.receiver.received)) >= set(ids)
    counts = probe.calls.queue_status()
    assert (counts["num_queued_requests"], counts["num_in_progress_requests"]) == (0, 0)
