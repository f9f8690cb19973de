"""`chainyard async submit | status | cancel | queue` against the live server.

The live server may run async requests itself (a runner takes them): nothing here relies on a
request staying QUEUED."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from chainyard.sdk import Client
from tests.cli.conftest import Cli

TAKEN = {"QUEUED", "IN_PROGRESS", "SUCCEEDED", "CANCELED"}


def test_submit_status_queue_and_cancel(
    cli: Cli, client: Client, chain: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    request_id = cli.ok("async", "submit", chain["name"], "--input", '{"max_value": 5}').stdout
    request_id = request_id.strip()
    assert len(request_id) == 20
    status = client.async_requests.status(request_id)
    assert status.chain_id == chain["id"] and status.deployment_id == chain["deployment_id"]

    data = tmp_path / "input.json"
    data.write_text('{"max_value": 9}')
    submitted = cli.ok(
        "async",
        "submit",
        chain["id"],
        "-e",
        "production",
        "--input",
        f"@{data}",
        "--priority",
        "2",
        "--max-time-in-queue",
        "60",
        "--max-attempts",
        "1",
        "--webhook",
        "https://hooks.example.com/chainyard",
        "-o",
        "json",
    )
    second = json.loads(submitted.stdout)["request_id"]
    answer = json.loads(cli.ok("async", "status", second, "-o", "json").stdout)
    assert answer["request_id"] == second and answer["status"] in TAKEN
    assert answer["webhook_status"] in {"PENDING", "CANCELED", "FAILED", "SUCCEEDED"}
    table = cli.ok("async", "status", second).stdout
    assert second in table and chain["deployment_id"] in table

    queue = json.loads(cli.ok("async", "queue", chain["name"], "-o", "json").stdout)
    assert queue["model_id"] == chain["id"]
    assert queue["deployment_id"] == chain["deployment_id"]
    by_deployment = cli.ok("async", "queue", chain["id"], "-d", chain["deployment_id"]).stdout
    assert chain["deployment_id"] in by_deployment and "QUEUED" in by_deployment

    # Canceled, if nothing took it first; a second cancel never cancels (exit code 4).
    first = cli("async", "cancel", second, "-o", "json")
    canceled = json.loads(first.stdout)["canceled"]
    assert first.exit_code == (0 if canceled else 4)
    again = cli("async", "cancel", second)
    assert again.exit_code == 4 and "not canceled" in again.stderr


def test_refusals_have_exit_codes(cli: Cli, chain: dict[str, Any]) -> None:
    bad = cli("async", "submit", chain["id"], "--priority", "3")
    assert bad.exit_code == 2 and "priority" in bad.stderr
    not_object = cli("async", "submit", chain["id"], "--input", "[1]")
    assert not_object.exit_code == 2 and "JSON object" in not_object.stderr
    not_json = cli("async", "submit", chain["id"], "--input", "{nope")
    assert not_json.exit_code == 2 and "--input is not valid JSON" in not_json.stderr
    private = cli("async", "submit", chain["id"], "--webhook", "http://127.0.0.1:9/x")
    assert private.exit_code == 2 and "webhook_endpoint" in private.stderr
    both = cli("async", "submit", chain["id"], "-e", "production", "--development")
    assert both.exit_code == 2
    assert cli("async", "submit", chain["id"], "--development").exit_code == 3
    assert cli("async", "queue", chain["id"], "-e", "staging").exit_code == 3
    missing = cli("async", "status", "nosuchrequest", "-o", "json")
    assert missing.exit_code == 3
    assert json.loads(missing.stderr)["code"] == "ASYNC_REQUEST_NOT_FOUND"
    assert cli("async", "cancel", "nosuchrequest").exit_code == 3
