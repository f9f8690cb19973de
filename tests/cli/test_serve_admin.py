"""`chainyard serve` and `chainyard admin create-key`, run as subprocesses."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chainyard.cli.main import app
from chainyard.config import ServerConfig
from chainyard.runtime import sandbox
from chainyard.server import create_app

_ENTRY = pathlib.Path(sys.executable).parent / "chainyard"


def _command(*args: str) -> list[str]:
    if _ENTRY.exists():
        return [str(_ENTRY), *args]
    return [sys.executable, "-m", "chainyard.cli.main", *args]


def _env(**extra: str) -> dict[str, str]:
    # The test run's own CHAINYARD_* settings must not leak into the command.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINYARD_")}
    env.update(extra)
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args), capture_output=True, text=True, timeout=60, env=_env(**env)
    )


def _admin(*args: str) -> subprocess.CompletedProcess[str]:
    """`chainyard admin ...` in process (a subprocess would spend seconds importing the server
    for each call); the entry point itself is covered by the `serve` tests below."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CHAINYARD_")}
    result = CliRunner().invoke(app, ["admin", *args], env=env)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def server_on(tmp_path: pathlib.Path) -> Iterator[object]:
    """Factory for an in-process server on a data dir the CLI wrote to."""
    clients: list[TestClient] = []

    def make(data_dir: pathlib.Path) -> TestClient:
        config = ServerConfig(data_dir=data_dir, run_reconciler=False)
        client = TestClient(create_app(config))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_create_key_prints_a_key_that_authenticates(
    tmp_path: pathlib.Path, server_on: object
) -> None:
    data_dir = tmp_path / "data"
    manage = _admin("create-key", "--workspace", "team1", "--data-dir", str(data_dir))
    assert manage.returncode == 0, manage.stderr
    key = manage.stdout.strip().splitlines()[-1]
    assert "." in key and " " not in key and len(key) >= 40
    assert "team1" in manage.stdout

    invoke = _admin(
        "create-key",
        "--workspace",
        "team1",
        "--type",
        "WORKSPACE_INVOKE",
        "--name",
        "inference",
        "--data-dir",
        str(data_dir),
    )
    assert invoke.returncode == 0, invoke.stderr
    invoke_key = invoke.stdout.strip().splitlines()[-1]
    assert invoke_key != key

    client = server_on(data_dir)  # type: ignore[operator]
    assert client.get("/healthz").status_code == 200
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/chains", headers=headers).json() == {"chains": []}
    created = client.post("/v1/secrets", headers=headers, json={"name": "k", "value": "v"})
    assert created.status_code == 200, created.text
    assert created.json()["team_name"] == "team1"
    keys = {k["prefix"]: k for k in client.get("/v1/api_keys", headers=headers).json()["keys"]}
    assert keys[invoke_key.partition(".")[0]]["type"] == "WORKSPACE_INVOKE"
    assert keys[invoke_key.partition(".")[0]]["name"] == "inference"

    # The invoke key authenticates (not a 401) but may not manage.
    denied = client.get("/v1/chains", headers={"Authorization": f"Api-Key {invoke_key}"})
    assert denied.status_code == 403, denied.text
    unknown = client.get("/v1/chains", headers={"Authorization": f"Bearer {key}x"})
    assert unknown.status_code == 401


def test_create_key_rejects_bad_input(tmp_path: pathlib.Path) -> None:
    data_dir = str(tmp_path / "data")
    bad_type = _admin("create-key", "--workspace", "t", "--type", "ROOT", "--data-dir", data_dir)
    assert bad_type.returncode != 0
    assert "ROOT" in bad_type.stderr and "key type" in bad_type.stderr
    assert "Traceback" not in bad_type.stderr + bad_type.stdout

    bad_workspace = _admin("create-key", "--workspace", "no spaces", "--data-dir", data_dir)
    assert bad_workspace.returncode != 0
    assert "workspace" in bad_workspace.stderr

    missing = _admin("create-key", "--data-dir", data_dir)
    assert missing.returncode != 0
    assert "--workspace" in missing.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_healthz(tmp_path: pathlib.Path) -> None:
    port = _free_port()
    data_dir = tmp_path / "served"
    process = subprocess.Popen(
        _command(
            "serve", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(CHAINYARD_BOOTSTRAP_API_KEY="clitest1.abcdefghijklmnopqrstuvwxyz"),
    )
    try:
        deadline = time.monotonic() + 30
        health: httpx.Response | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"serve exited with {process.returncode}: {err}{out}")
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert health is not None and health.status_code == 200, "serve never became healthy"
        assert health.json()["status"] == "ok"
        # The operator sees which protections of docs/security.md are active.
        assert health.json()["protections"]["clean_replica_environment"] == "on"
        expected = "on" if sandbox.problem() is None else "off"
        assert health.json()["protections"]["replica_sandbox"] == expected
        chains = httpx.get(
            f"http://127.0.0.1:{port}/v1/chains",
            headers={"Authorization": "Bearer clitest1.abcdefghijklmnopqrstuvwxyz"},
            timeout=5,
        )
        assert chains.status_code == 200, chains.text
        assert (data_dir / "chainyard.db").exists()
    finally:
        process.terminate()
        try:
            _, banner = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, banner = process.communicate()
    assert process.returncode is not None
    assert f"protections: clean_replica_environment on, replica_sandbox {expected}" in banner


def test_serve_refuses_a_short_bootstrap_key_with_a_message(tmp_path: pathlib.Path) -> None:
    result = _run(
        "serve",
        "--port",
        str(_free_port()),
        "--data-dir",
        str(tmp_path / "d"),
        CHAINYARD_BOOTSTRAP_API_KEY="short",
    )
    assert result.returncode == 2, result.stderr
    assert "CHAINYARD_BOOTSTRAP_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_async_settings_out_of_range_with_a_message(tmp_path: pathlib.Path) -> None:
    base = ["serve", "--port", str(_free_port()), "--data-dir", str(tmp_path / "d")]
    result = _run(*base, "--async-concurrency-per-deployment", "0")
    assert result.returncode == 2, result.stderr
    assert "--async-concurrency-per-deployment must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run(*base, CHAINYARD_ASYNC_LEASE_SECONDS="0.5")
    assert result.returncode == 2, result.stderr
    assert "the async lease must be at least 1 second" in result.stderr
