"""`chainyard run`, `wake` and `logs` against the live server."""

from __future__ import annotations

import json
import pathlib
import queue
import signal
import subprocess
import threading
import time
from typing import Any

from chainyard.cli.commands.logs import parse_duration
from chainyard.sdk import Client
from tests.cli.conftest import Cli, clean_env, command
from tests.sdk.live import hello_manifest, manifest_with


def test_run_and_wake(cli: Cli, chain: dict[str, Any], tmp_path: pathlib.Path) -> None:
    answer = json.loads(cli.ok("run", chain["name"], "--data", '{"max_value": 5}').stdout)
    assert answer["deployment_id"] == chain["deployment_id"]
    assert answer["input"] == {"max_value": 5}
    by_env = json.loads(cli.ok("run", chain["id"], "-e", "production", "-o", "json").stdout)
    assert by_env["input"] == {}
    by_deployment = cli.ok("run", chain["id"], "-d", chain["deployment_id"], "--data", "[1, 2]")
    assert json.loads(by_deployment.stdout)["input"] == [1, 2]
    data = tmp_path / "input.json"
    data.write_text('{"max_value": 9}')
    from_file = json.loads(cli.ok("run", chain["id"], "--data", f"@{data}").stdout)
    assert from_file["input"] == {"max_value": 9}
    from_stdin = json.loads(cli.ok("run", chain["id"], "--data", "-", input='"hi"').stdout)
    assert from_stdin["input"] == "hi"

    bad = cli("run", chain["id"], "--data", "{nope")
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr
    no_env = cli("run", chain["id"], "-e", "staging")
    assert no_env.exit_code == 3
    both = cli("run", chain["id"], "-e", "production", "-d", chain["deployment_id"])
    assert both.exit_code == 2

    assert "waking" in cli.ok("wake", chain["id"]).stdout
    assert json.loads(cli.ok("wake", chain["id"], "-o", "json").stdout) == {"ok": True}


def test_the_development_deployment(cli: Cli, client: Client, chain: dict[str, Any]) -> None:
    manifest = {**hello_manifest(chain["name"], environment=None), "development": True}
    development = client.chains.deploy(manifest).chain_deployment.id
    client.deployments.wait_until_active(chain["id"], development, timeout=20)

    table = cli.ok("deployments", "ls", chain["id"]).stdout
    assert "(development)" in table
    assert "(development)" in cli.ok("deployments", "get", chain["id"], development).stdout
    listed = json.loads(cli.ok("deployments", "ls", chain["id"], "-o", "json").stdout)
    assert {d["id"]: d["is_development"] for d in listed["deployments"]} == {
        development: True,
        chain["deployment_id"]: False,
    }
    answer = json.loads(cli.ok("run", chain["id"], "--development").stdout)
    assert answer["deployment_id"] == development
    assert "waking" in cli.ok("wake", chain["id"], "--development").stdout
    both = cli("run", chain["id"], "--development", "-e", "production")
    assert both.exit_code == 2


def test_logs(cli: Cli, chain: dict[str, Any]) -> None:
    lines = cli.ok("logs", chain["name"]).stdout.splitlines()
    assert any("RandInt" in line and "built RandInt" in line for line in lines)
    assert any("HelloWorld" in line for line in lines)
    only = cli.ok("logs", chain["id"], "-c", "RandInt").stdout
    assert "RandInt" in only and "HelloWorld" not in only
    as_json = json.loads(cli.ok("logs", chain["id"], "-o", "json", "--limit", "2").stdout)
    assert len(as_json["logs"]) == 2
    assert {"chainlet", "chainlet_id", "timestamp", "message"} <= set(as_json["logs"][0])
    stamps = [int(line["timestamp"]) for line in as_json["logs"]]
    assert stamps == sorted(stamps)
    by_deployment = cli.ok("logs", chain["id"], "-d", chain["deployment_id"], "--search", "built")
    assert by_deployment.stdout and all("built" in ln for ln in by_deployment.stdout.splitlines())

    assert cli("logs", chain["id"], "-c", "Nope").exit_code == 3
    assert cli("logs", chain["id"], "--since", "soon").exit_code == 2
    assert cli("logs", chain["id"], "-e", "production", "-d", "x").exit_code == 2
    assert parse_duration("90") == 90 and parse_duration("2h") == 7200


def test_logs_follow_prints_new_lines_until_interrupted(
    cli: Cli, client: Client, name: str
) -> None:
    # SlowRandInt's build takes a second: its "built" line is written while we follow.
    deployed = client.chains.deploy(manifest_with(name, "SlowRandInt"))
    chain_id, deployment_id = deployed.chain_id, deployed.chain_deployment.id
    process = subprocess.Popen(
        command("logs", chain_id, "-d", deployment_id, "-f", "--interval", "0.1", "-o", "json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(
            CHAINYARD_URL=cli.live.url,
            CHAINYARD_API_KEY=cli.live.key,
            CHAINYARD_CONFIG=str(cli.config_file),
        ),
        # As from a terminal: a suite run as a background job would hand it SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 30
        while not any(r["message"] == "built SlowRandInt (simulated)" for r in seen):
            assert time.monotonic() < deadline, f"no build line followed: {seen}"
            try:
                seen.append(json.loads(lines.get(timeout=1)))
            except queue.Empty:
                assert process.poll() is None, process.communicate()
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert all(r["deployment_id"] == deployment_id for r in seen)
    # Every line once, in time order per chainlet.
    keys = [(r["chainlet_id"], r["timestamp"], r["message"]) for r in seen]
    assert len(keys) == len(set(keys))
    assert client.deployments.get(chain_id, deployment_id).status.value in {"DEPLOYING", "ACTIVE"}
