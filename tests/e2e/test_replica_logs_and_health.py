"""Chainlet code's logging in the logs API (level, logger, request id; run_remote's exceptions with
their traceback), and `is_healthy` judged by the thresholds of `health_checks`: out of traffic,
back, restarted — with logs that say so. Real server, real replica processes, both runtimes."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer, wait_for

CHAINS = pathlib.Path(__file__).parent / "chains"

pytestmark = pytest.mark.slow


def _pushed(server: LiveServer, name: str) -> dict[str, str]:
    result = server.push(CHAINS / name, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def _chainlet(client: httpx.Client, ids: dict[str, str], name: str) -> dict[str, Any]:
    path = f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
    chainlet: dict[str, Any] = next(
        c for c in client.get(path).json()["chainlets"] if c["name"] == name
    )
    return chainlet


def _chainlet_path(client: httpx.Client, ids: dict[str, str], name: str) -> str:
    path = f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
    return f"{path}/chainlets/{_chainlet(client, ids, name)['id']}"


def _logs(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"{path}/logs", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    logs: list[dict[str, Any]] = response.json()["logs"]
    return logs


def _call(server: LiveServer, chain_id: str, body: Any, request_id: str) -> httpx.Response:
    with server.client() as client:
        return client.post(
            f"/chains/{chain_id}/production/run_remote",
            json=body,
            headers={"x-baseten-request-id": request_id},
        )


@pytest.fixture(scope="module")
def chatty(live_server: LiveServer) -> dict[str, str]:
    return _pushed(live_server, "chatty.py")


def test_logging_records_carry_level_logger_and_request_id(
    live_server: LiveServer, chatty: dict[str, str]
) -> None:
    ids = chatty
    request_id = f"logs-ok-{live_server.runtime}"
    response = _call(live_server, ids["chain_id"], {"text": "hello"}, request_id)
    assert response.status_code == 200, response.text
    assert response.json() == "olleh"
    with live_server.client() as client:
        entry = _chainlet_path(client, ids, "Chatty")
        echo = _chainlet_path(client, ids, "Echo")

        def entry_lines() -> list[dict[str, Any]]:
            lines = _logs(client, entry, request_id=request_id)
            return lines if any("root error hello" in x["message"] for x in lines) else []

        lines = wait_for(entry_lines, what="the entrypoint's records, by request id")
        by_text = {line["message"]: line for line in lines}
        assert by_text["chatty.entry: entry info hello"]["level"] == "INFO"
        assert by_text["chatty.entry: entry warning hello"]["level"] == "WARNING"
        assert by_text["root: root error hello"]["level"] == "ERROR"
        assert all(line["request_id"] == request_id for line in lines)
        # DEBUG is below the default level (INFO, as on truss's server).
        assert not any("entry debug" in line["message"] for line in _logs(client, entry))
        # print output is there too, as plain text.
        assert any("entry printed hello" in x["message"] for x in _logs(client, entry))
        # The level filter works on records: WARNING and up, no INFO.
        warned = _logs(client, entry, min_level="WARNING", request_id=request_id)
        assert {x["level"] for x in warned} == {"WARNING", "ERROR"}
        # enable_debug_logs=True: the dependency's DEBUG records are kept, with the request id
        # its stub call carried.
        debug = wait_for(
            lambda: [
                x
                for x in _logs(client, echo, request_id=request_id)
                if "echo debug" in x["message"]
            ],
            what="the dependency's DEBUG record",
        )
        assert debug[0]["level"] == "DEBUG"
        assert debug[0]["message"] == "chatty.echo: echo debug hello"


def test_run_remote_exception_is_logged_with_traceback_where_raised(
    live_server: LiveServer, chatty: dict[str, str]
) -> None:
    ids = chatty
    request_id = f"logs-fail-{live_server.runtime}"
    response = _call(live_server, ids["chain_id"], {"text": "fail-1"}, request_id)
    assert response.status_code == 500, response.text
    assert "echo refuses fail-1" in response.text
    with live_server.client() as client:
        echo = _chainlet_path(client, ids, "Echo")

        def error_lines() -> list[dict[str, Any]]:
            return [
                x
                for x in _logs(client, echo, min_level="ERROR", request_id=request_id)
                if "run_remote raised ValueError" in x["message"]
            ]

        line = wait_for(error_lines, what="the exception in the raising replica's logs")[0]
        assert line["level"] == "ERROR"
        assert "Traceback (most recent call last)" in line["message"]
        assert "ValueError: echo refuses fail-1" in line["message"]
        # From the user's code on: the replica's own serving frames are left out.
        assert "chatty.py" in line["message"] and "replica_app.py" not in line["message"]
        assert line["replica"]


@pytest.fixture(scope="module")
def late(live_server: LiveServer) -> dict[str, str]:
    """late.py, pushed without waiting (it never gets ready): its replicas' startup runs out
    while the other tests wait on thresholds of their own."""
    result = live_server.push(CHAINS / "late.py")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def test_failing_is_healthy_stops_traffic_then_restarts(
    live_server: LiveServer, late: dict[str, str]
) -> None:
    ids = _pushed(live_server, "moody.py")
    chain_id = ids["chain_id"]
    first = _call(live_server, chain_id, {"sick_for": 14}, "moody-1")
    assert first.status_code == 200, first.text
    pid = first.json()["pid"]
    with live_server.client() as client:
        moody = _chainlet_path(client, ids, "Moody")

        def said(text: str, level: str | None = None) -> list[dict[str, Any]]:
            return [
                x
                for x in _logs(client, moody)
                if text in x["message"] and (level is None or x["level"] == level)
            ]

        wait_for(
            lambda: said("stopped receiving traffic", "WARNING"),
            timeout=60,
            what="the replica out of traffic",
        )
        wait_for(
            lambda: _chainlet(client, ids, "Moody")["active_replica_count"] == 0,
            what="no active replica while out of traffic",
        )
        assert said("Health check failed: is_healthy returned False", "WARNING")
        # Held until the replica is healthy again: it is not routed while out of traffic, and it
        # was not restarted (14 s sick < restart_threshold_seconds=20).
        again = _call(live_server, chain_id, {"sick_for": 1000}, "moody-2")
        assert again.status_code == 200, again.text
        assert again.json() == {"pid": pid, "served_while_sick": 0}
        wait_for(lambda: said("back in traffic", "INFO"), what="the replica back in traffic")

        failed = wait_for(
            lambda: said("past restart_threshold_seconds=20", "ERROR"),
            timeout=90,
            what="the restart, in the logs",
        )
        assert "is_healthy" in failed[0]["message"]
        # A new replica serves (a fresh chainlet: healthy).
        fresh = _call(live_server, chain_id, {"sick_for": 0}, "moody-3")
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["pid"] != pid
        assert not said("exited with code")


def test_replicas_not_ready_within_startup_threshold_are_restarted(
    live_server: LiveServer, late: dict[str, str]
) -> None:
    ids = late
    with live_server.client() as client:
        never = _chainlet_path(client, ids, "NeverHealthy")
        slow = _chainlet_path(client, ids, "SlowInit")

        def said(path: str, text: str) -> list[dict[str, Any]]:
            return [x for x in _logs(client, path, min_level="ERROR") if text in x["message"]]

        wait_for(
            lambda: said(never, "is_healthy did not pass within startup_threshold_seconds=10"),
            timeout=90,
            what="NeverHealthy restarted after startup_threshold_seconds",
        )
        wait_for(
            lambda: said(slow, "did not start serving within startup_threshold_seconds=10"),
            timeout=90,
            what="SlowInit restarted after startup_threshold_seconds",
        )
        client.post(
            f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}/deactivate"
        )
