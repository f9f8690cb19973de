"""`chainyard push`: import the chain, pack its directory and deploy it through the SDK
(multipart, with the source archive). Once as a separate process, as users and the e2e tests
run it; the other cases in process, since each process spends seconds importing truss."""

from __future__ import annotations

import json
import pathlib

import pytest

from chainyard.sdk import Client
from tests.cli.conftest import Cli

REPO = pathlib.Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello_world" / "chain.py"

# truss_chains, imported in process by discovery, trips a pydantic deprecation of its own.
pytestmark = pytest.mark.filterwarnings("ignore:Using `@model_validator`")


def test_push_promote_wait(cli: Cli, client: Client, name: str) -> None:
    result = cli.run("push", str(HELLO), "--name", name, "--promote", "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    pushed = json.loads(result.stdout.strip().splitlines()[-1])
    assert pushed["status"] == "ACTIVE"
    env = client.environments.get(pushed["chain_id"], "production")
    assert env.current_deployment is not None
    assert env.current_deployment.id == pushed["chain_deployment_id"]
    assert f"pushing chain {name} (2 chainlets" in result.stderr
    # The final status is a line of its own (it used to run on after the table: "┘ACTIVE").
    assert "ACTIVE in production" in result.stderr.splitlines()
    assert not any(line.endswith("┘ACTIVE") for line in result.stderr.splitlines())

    again = cli.ok("push", str(HELLO), "--name", name, "-o", "json")
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["chain_id"] == pushed["chain_id"] and second["status"] == "BUILDING"
    assert again.stderr == ""


def test_push_reports_a_failed_build(cli: Cli, tmp_path: pathlib.Path, name: str) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "chain.py").write_text(
        "import truss_chains as chains\n\n\n"
        "class BrokenNeedy(chains.ChainletBase):\n"
        "    async def run_remote(self, x: int) -> int:\n"
        "        return x\n"
    )
    result = cli("push", str(source / "chain.py"), "--name", name, "--wait", "--timeout", "60")
    assert result.exit_code == 6, result.stderr
    assert "BUILD_FAILED" in result.stderr
    assert "simulated build failure" in result.stderr
    assert "Traceback" not in result.stderr


def test_push_usage_errors(
    cli: Cli, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Away from any local server's data dir and record, so that no initial key is found.
    monkeypatch.chdir(tmp_path)
    no_key = cli("push", str(HELLO), CHAINYARD_API_KEY=None, XDG_CACHE_HOME=str(tmp_path))
    assert no_key.exit_code == 5 and "no API key" in no_key.stderr
    both = cli("push", str(HELLO), "--promote", "--environment", "staging")
    assert both.exit_code == 2
    (tmp_path / "empty.py").write_text("x = 1\n")
    nothing = cli("push", str(tmp_path / "empty.py"))
    assert nothing.exit_code == 2 and "Traceback" not in nothing.stderr
