"""`chainyard chainlets set-instance-type`: the change, the new deployment, the wait until it
is promoted, and each way it can end."""

from __future__ import annotations

import json
from typing import Any

from chainyard.sdk import Client
from tests.cli.conftest import Cli
from tests.sdk.live import manifest_with


def test_set_instance_type_waits_until_promoted(
    cli: Cli, client: Client, chain: dict[str, Any]
) -> None:
    result = cli.ok(
        "chainlets",
        "set-instance-type",
        chain["name"],
        "production",
        "RandInt=2x8",
        "HelloWorld=1x4",
    )
    # The change and the new deployment are announced, progress follows, the result is last.
    assert "RandInt: 1x2 -> 2x8" in result.stderr and "HelloWorld: 1x2 -> 1x4" in result.stderr
    assert "new deployment" in result.stderr
    assert "promoting" in result.stderr
    env = client.environments.get(chain["id"], "production")
    assert env.current_deployment is not None and env.candidate_deployment is None
    new_id = env.current_deployment.id
    assert new_id != chain["deployment_id"]
    assert f"production serves deployment {new_id}" in result.stdout
    assert "2 vCPU, 8 GiB" in result.stdout
    # Each progress line ends its line (no "┘ACTIVE" run-ons).
    assert all(line == line.rstrip("\r") for line in result.stderr.splitlines())

    again = cli.ok("chainlets", "set-instance-type", chain["id"], "production", "RandInt=2x8")
    assert "already runs RandInt on 2x8" in again.stderr

    as_json = cli.ok(
        "chainlets", "set-instance-type", chain["id"], "production", "RandInt=4x16", "-o", "json"
    )
    answer = json.loads(as_json.stdout)
    assert answer["requires_redeployment"] is True
    assert answer["chain_deployment"]["status"] == "ACTIVE"
    settings = {
        s["chainlet_name"]: s["instance_type"]["id"]
        for s in answer["chainlet_environment_settings"]
    }
    assert settings == {"HelloWorld": "1x4", "RandInt": "4x16"}
    # JSON mode keeps stderr for errors only.
    assert as_json.stderr == ""
    current = client.environments.get(chain["id"], "production").current_deployment
    assert current is not None and current.id == answer["chain_deployment"]["id"]


def test_set_instance_type_errors(cli: Cli, chain: dict[str, Any]) -> None:
    args = ("chainlets", "set-instance-type", chain["id"], "production")
    malformed = cli(*args, "RandInt")
    assert malformed.exit_code == 2 and "NAME=INSTANCE_TYPE" in malformed.stderr
    assert cli(*args, "RandInt=2x8", "RandInt=1x4").exit_code == 2
    unknown_chainlet = cli(*args, "Nope=2x8")
    assert unknown_chainlet.exit_code == 3 and "Nope" in unknown_chainlet.stderr
    assert cli(*args, "RandInt=99x1").exit_code == 2
    assert cli("chainlets", "set-instance-type", chain["id"], "qa", "RandInt=2x8").exit_code == 3
    assert (
        cli("chainlets", "set-instance-type", "no-such-chain", "production", "A=1x2").exit_code == 3
    )
    no_args = cli(*args)
    assert no_args.exit_code == 2

    as_json = cli(*args, "Nope=2x8", "-o", "json")
    error = json.loads(as_json.stderr)
    assert error["status"] == 404 and error["code"] == "CHAINLET_NOT_FOUND"
    assert as_json.stdout == ""


def test_no_wait_conflict_and_timeout(cli: Cli, client: Client, name: str) -> None:
    # SlowRandInt takes a second to build: the promotion is still running while we look.
    deployed = client.chains.deploy(manifest_with(name, "SlowRandInt", environment="production"))
    client.environments.wait_until_promoted(deployed.chain_id, "production", timeout=20)

    started = cli.ok(
        "chainlets",
        "set-instance-type",
        name,
        "production",
        "SlowRandInt=2x8",
        "--no-wait",
        "-o",
        "json",
    )
    new_id = json.loads(started.stdout)["chain_deployment"]["id"]
    busy = cli("chainlets", "set-instance-type", name, "production", "SlowRandInt=4x16")
    assert busy.exit_code == 4 and "in progress" in busy.stderr

    late = cli(
        "chainlets", "set-instance-type", name, "production", "HelloWorld=1x4", "--timeout", "0"
    )
    assert late.exit_code == 4  # still the same promotion in progress
    waited = cli("envs", "promote", name, "production", new_id, "--timeout", "0.1")
    assert waited.exit_code == 4

    client.environments.wait_until_promoted(
        deployed.chain_id, "production", deployment_id=new_id, timeout=20
    )
    timed_out = cli(
        "chainlets", "set-instance-type", name, "production", "SlowRandInt=1x4", "--timeout", "0.2"
    )
    assert timed_out.exit_code == 6, timed_out.stderr
    assert "still" in timed_out.stderr


def test_failed_promotion_exits_6(cli: Cli, client: Client, name: str) -> None:
    # A deployment whose chainlet fails its build (slowly, so that it is still building when
    # promoted) never reaches production, which keeps what it served.
    good = client.chains.deploy(manifest_with(name, "RandInt", environment="production"))
    client.environments.wait_until_promoted(good.chain_id, "production", timeout=20)
    broken = client.chains.deploy(
        {**manifest_with(name, "BrokenSlowRandInt"), "chain_name": None, "chain_id": good.chain_id}
    )
    failed = cli("envs", "promote", good.chain_id, "production", broken.chain_deployment.id)
    assert failed.exit_code == 6, failed.stderr
    assert "BUILD_FAILED" in failed.stderr
    env = client.environments.get(good.chain_id, "production")
    assert env.current_deployment is not None
    assert env.current_deployment.id == good.chain_deployment.id
