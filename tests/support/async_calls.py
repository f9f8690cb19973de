"""Async inference from a test's side (docs/async-inference.md): enqueue, poll, cancel and count
through a live server's public routes, and read what a webhook receiver and the probe chain's
run log (tests/e2e/chains/async_probe.py) recorded."""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from tests.support.webhook_receiver import Received

# A request is done once its outcome is final and its webhook (if any) is no longer pending.
OPEN = frozenset({"QUEUED", "IN_PROGRESS"})


def done(status: Mapping[str, Any]) -> bool:
    return status["status"] not in OPEN and status["webhook_status"] != "PENDING"


class AsyncCalls:
    """One chain's async routes, in the path form, on `client` (authenticated)."""

    def __init__(self, client: httpx.Client, chain_id: str, target: str = "production") -> None:
        self.client = client
        self.chain_id = chain_id
        self.target = target

    def enqueue(
        self,
        model_input: Mapping[str, Any],
        *,
        webhook: str | None = None,
        priority: int | None = None,
        max_time_in_queue_seconds: int | None = None,
        retry: Mapping[str, int] | None = None,
        target: str | None = None,
    ) -> str:
        body: dict[str, Any] = {"model_input": dict(model_input)}
        if webhook is not None:
            body["webhook_endpoint"] = webhook
        if priority is not None:
            body["priority"] = priority
        if max_time_in_queue_seconds is not None:
            body["max_time_in_queue_seconds"] = max_time_in_queue_seconds
        if retry is not None:
            body["inference_retry_config"] = dict(retry)
        path = f"/chains/{self.chain_id}/{target or self.target}/async_run_remote"
        response = self.client.post(path, json=body)
        assert response.status_code == 201, response.text
        request_id: str = response.json()["request_id"]
        return request_id

    def status(self, request_id: str) -> dict[str, Any]:
        response = self.client.get(f"/chains/{self.chain_id}/async_request/{request_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def cancel(self, request_id: str) -> dict[str, Any]:
        response = self.client.delete(f"/chains/{self.chain_id}/async_request/{request_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def queue_status(self, target: str | None = None) -> dict[str, Any]:
        path = f"/chains/{self.chain_id}/{target or self.target}/async_queue_status"
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(
        self, request_id: str, predicate: Any = done, *, timeout: float = 120.0
    ) -> dict[str, Any]:
        """Polls the request until `predicate(status)` holds; its last status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(request_id)
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"request {request_id} stuck at {status}")
            time.sleep(0.1)

    def wait_all(self, request_ids: Iterable[str], *, timeout: float = 300.0) -> dict[str, Any]:
        """Every request done; their last statuses by id."""
        deadline = time.monotonic() + timeout
        pending = list(request_ids)
        finished: dict[str, Any] = {}
        while pending:
            still = []
            for request_id in pending:
                status = self.status(request_id)
                if done(status):
                    finished[request_id] = status
                else:
                    still.append(request_id)
            pending = still
            if pending and time.monotonic() > deadline:
                sample = {r: self.status(r) for r in pending[:3]}
                raise AssertionError(f"{len(pending)} requests not done, e.g. {sample}")
            if pending:
                time.sleep(0.2)
        return finished


def payloads(received: Iterable[Received]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in received]


def by_request(received: Iterable[Received]) -> dict[str, list[Received]]:
    """What a receiver got, by the request id its body names."""
    found: dict[str, list[Received]] = {}
    for r in received:
        found.setdefault(json.loads(r.body)["request_id"], []).append(r)
    return found


def runs(log: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """The probe chain's runs by tag, each {run, start, end (None: never ended), failed}, in the
    order they started."""
    if not log.exists():
        return {}
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for line in log.read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        run = found.setdefault(event["tag"], {}).setdefault(
            event["id"], {"run": event["run"], "start": None, "end": None, "failed": None}
        )
        if event["event"] == "start":
            run["start"] = event["at"]
        else:
            run["end"] = event["at"]
            run["failed"] = event["failed"]
    return {
        tag: sorted(by_run.values(), key=lambda r: r["start"] or 0.0)
        for tag, by_run in found.items()
    }
