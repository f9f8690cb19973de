"""CLI tests run `chainyard` against one live server (real HTTP, simulated runtime): in process
with Typer's runner for speed, and as a subprocess where the real entry point matters."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from chainyard.cli.main import app
from chainyard.sdk import Client
from tests.sdk.live import LiveServer, hello_manifest, serve

ENTRY = pathlib.Path(sys.executable).parent / "chainyard"


def command(*args: str) -> list[str]:
    if ENTRY.exists():
        return [str(ENTRY), *args]
    return [sys.executable, "-m", "chainyard.cli.main", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """The test run's own CHAINYARD_* settings must not leak into the command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINYARD_")}
    env.update(extra)
    return env


@dataclasses.dataclass
class Cli:
    live: LiveServer
    config_file: pathlib.Path

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CHAINYARD_")}
        env.update(
            CHAINYARD_URL=self.live.url,
            CHAINYARD_API_KEY=self.live.key,
            CHAINYARD_CONFIG=str(self.config_file),
        )
        env.update(overrides)
        return env

    def __call__(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        runner = CliRunner()
        return runner.invoke(app, list(args), input=input, env=self.env(**env))

    def ok(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = self(*args, input=input, **env)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """`chainyard` as a separate process."""
        full = clean_env(
            CHAINYARD_URL=self.live.url,
            CHAINYARD_API_KEY=self.live.key,
            CHAINYARD_CONFIG=str(self.config_file),
        )
        full.update(env)
        return subprocess.run(
            command(*args), capture_output=True, text=True, timeout=timeout, env=full
        )


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(tmp_path_factory.mktemp("cli-live"))


@pytest.fixture
def cli(live: LiveServer, tmp_path: pathlib.Path) -> Cli:
    return Cli(live=live, config_file=tmp_path / "chainyard.toml")


@pytest.fixture
def client(live: LiveServer) -> Iterator[Client]:
    with Client(live.url, live.key, timeout=30) as c:
        yield c


@pytest.fixture
def name() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


@pytest.fixture
def chain(client: Client, name: str) -> dict[str, Any]:
    """A hello chain promoted into production: {"id", "name", "deployment_id"}."""
    deployed = client.chains.deploy(hello_manifest(name))
    client.environments.wait_until_promoted(
        deployed.chain_id,
        "production",
        deployment_id=deployed.chain_deployment.id,
        timeout=20,
        poll_interval=0.02,
    )
    return {"id": deployed.chain_id, "name": name, "deployment_id": deployed.chain_deployment.id}
