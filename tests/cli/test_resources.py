"""Listing, showing and changing resources with the CLI: tables by default, the wire format
with --output json, and the documented exit codes."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from chainyard.sdk import Client
from tests.cli.conftest import Cli
from tests.sdk.live import hello_manifest


def test_chains(cli: Cli, chain: dict[str, Any]) -> None:
    table = cli.ok("chains", "ls").stdout
    assert chain["id"] in table and chain["name"] in table and "DEPLOYMENTS" in table
    listed = json.loads(cli.ok("chains", "ls", "-o", "json").stdout)
    assert chain["id"] in {c["id"] for c in listed["chains"]}
    assert (
        len(json.loads(cli.ok("chains", "ls", "--limit", "1", "-o", "json").stdout)["chains"]) == 1
    )

    # By name or by id.
    shown = cli.ok("chains", "get", chain["name"]).stdout
    assert chain["id"] in shown and "production" in shown and chain["deployment_id"] in shown
    got = json.loads(cli.ok("chains", "get", chain["id"], "--output", "json").stdout)
    assert got["name"] == chain["name"] and got["deployments_count"] == 1

    audit = cli.ok("chains", "audit", chain["name"]).stdout
    assert "CHAIN_DEPLOYED" in audit and "CHAIN_DEPLOYMENT_PROMOTED" in audit
    page = json.loads(cli.ok("chains", "audit", chain["id"], "--limit", "1", "-o", "json").stdout)
    assert len(page["items"]) == 1 and page["pagination"]["has_more"] is True
    more = cli.ok("chains", "audit", chain["id"], "--limit", "1")
    assert "--cursor" in more.stderr


def test_deployments(cli: Cli, client: Client, chain: dict[str, Any]) -> None:
    extra = client.chains.deploy({**hello_manifest(chain["name"], environment=None)})
    extra_id = extra.chain_deployment.id
    client.deployments.wait_until_active(chain["id"], extra_id, timeout=20)

    table = cli.ok("deployments", "ls", chain["name"]).stdout
    assert chain["deployment_id"] in table and extra_id in table and "production" in table
    listed = json.loads(cli.ok("deployments", "ls", chain["id"], "-o", "json").stdout)
    assert listed["deployments"][0]["id"] == extra_id
    shown = cli.ok("deployments", "get", chain["id"], extra_id).stdout
    assert "RandInt" in shown and "ACTIVE" in shown
    got = json.loads(cli.ok("deployments", "get", chain["id"], extra_id, "-o", "json").stdout)
    assert got["id"] == extra_id and {c["name"] for c in got["chainlets"]} == {
        "HelloWorld",
        "RandInt",
    }

    assert "deactivated" in cli.ok("deployments", "deactivate", chain["id"], extra_id).stdout
    deadline = time.monotonic() + 20
    while client.deployments.get(chain["id"], extra_id).status.value != "INACTIVE":
        assert time.monotonic() < deadline, "deployment never became INACTIVE"
        time.sleep(0.02)
    activated = cli.ok(
        "deployments", "activate", chain["id"], extra_id, "--wait", "--timeout", "20"
    )
    assert "ACTIVE" in activated.stdout
    assert client.deployments.get(chain["id"], extra_id).status.value == "ACTIVE"

    # The deployment production serves cannot go: 409 is exit code 4.
    in_use = cli("deployments", "rm", chain["id"], chain["deployment_id"], "--yes")
    assert in_use.exit_code == 4, in_use.stderr
    assert "error:" in in_use.stderr
    # Without --yes it asks; "no" aborts and deletes nothing.
    declined = cli("deployments", "rm", chain["id"], extra_id, input="n\n")
    assert declined.exit_code == 1
    assert client.deployments.get(chain["id"], extra_id)
    gone = json.loads(cli.ok("deployments", "rm", chain["id"], extra_id, "-y", "-o", "json").stdout)
    assert gone == {"id": extra_id, "deleted": True, "chain_id": chain["id"]}
    missing = cli("deployments", "get", chain["id"], extra_id)
    assert missing.exit_code == 3

    assert "deleted chain" in cli.ok("chains", "rm", chain["name"], input="y\n").stdout
    assert cli("chains", "get", chain["id"]).exit_code == 3


def test_environments_and_promotion(cli: Cli, chain: dict[str, Any]) -> None:
    table = cli.ok("envs", "ls", chain["name"]).stdout
    assert "production" in table and chain["deployment_id"] in table
    created = cli.ok(
        "envs",
        "create",
        chain["name"],
        "staging",
        "--cleanup",
        "keep",
        "--instance-type",
        "RandInt=2x8",
        "-o",
        "json",
    )
    env = json.loads(created.stdout)
    assert env["promotion_settings"]["promotion_cleanup_strategy"] == "KEEP"
    assert {s["chainlet_name"]: s["instance_type"]["id"] for s in env["chainlet_settings"]} == {
        "RandInt": "2x8"
    }
    assert cli("envs", "create", chain["name"], "staging").exit_code == 4
    assert cli("envs", "create", chain["name"], "qa", "--instance-type", "RandInt").exit_code == 2

    updated = cli.ok("envs", "update", chain["name"], "staging", "--rolling-deploy")
    assert "rolling deploy          true" in updated.stdout
    assert "KEEP" in updated.stdout
    assert cli("envs", "update", chain["name"], "staging").exit_code == 2

    promoted = cli.ok(
        "envs", "promote", chain["name"], "staging", chain["deployment_id"], "--timeout", "20"
    )
    # staging's instance type differs: a copy is promoted, and the command says so.
    assert "a copy of" in promoted.stderr
    assert "staging serves deployment" in promoted.stdout
    staging = json.loads(cli.ok("envs", "get", chain["id"], "staging", "-o", "json").stdout)
    assert staging["current_deployment"]["id"] != chain["deployment_id"]
    assert staging["candidate_deployment"] is None

    assert cli("envs", "get", chain["id"], "nope").exit_code == 3


def test_catalogue_secrets_and_keys(cli: Cli) -> None:
    types = cli.ok("instance-types").stdout
    assert "2x8" in types and "USD/MIN" in types
    priced = json.loads(cli.ok("instance-types", "-o", "json").stdout)
    assert {"instance_type", "price"} <= set(priced["instance_types"][0])

    assert "stored" in cli.ok("secrets", "set", "cli_token", "--value", "v1").stdout
    from_stdin = cli.ok("secrets", "set", "cli_piped", "-o", "json", input="v2\n")
    assert json.loads(from_stdin.stdout)["name"] == "cli_piped"
    names = {s["name"] for s in json.loads(cli.ok("secrets", "ls", "-o", "json").stdout)["secrets"]}
    assert {"cli_token", "cli_piped"} <= names
    assert "cli_token" in cli.ok("secrets", "ls").stdout
    assert cli("secrets", "set", "cli_empty", input="").exit_code == 2
    assert "deleted" in cli.ok("secrets", "rm", "cli_token").stdout
    cli.ok("secrets", "rm", "cli_piped")
    assert cli("secrets", "rm", "cli_token").exit_code == 3

    created = cli.ok("keys", "create", "--type", "workspace_invoke", "--name", "cli-invoke")
    key = created.stdout.strip().splitlines()[-1]
    prefix = key.partition(".")[0]
    assert "not shown again" in created.stderr
    keys = json.loads(cli.ok("keys", "ls", "-o", "json").stdout)["keys"]
    assert {k["prefix"]: k["type"] for k in keys}[prefix] == "WORKSPACE_INVOKE"
    # An invoke key may not manage: 403 is exit code 5, like 401.
    assert cli("chains", "ls", CHAINYARD_API_KEY=key).exit_code == 5
    assert cli("chains", "ls", "--api-key", key + "x").exit_code == 5
    assert "revoked" in cli.ok("keys", "rm", prefix, "--yes").stdout
    assert cli("keys", "rm", prefix, "--yes").exit_code == 3


def test_webhook_secrets(cli: Cli) -> None:
    created = cli.ok("webhooks", "create")
    secret = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"whsec_[A-Za-z0-9]{40}", secret)
    assert "not shown again" in created.stderr
    listed = json.loads(cli.ok("webhooks", "ls", "-o", "json").stdout)["webhook_secrets"]
    assert listed[0]["expires_at"] is None
    table = cli.ok("webhooks", "ls").stdout
    assert listed[0]["id"] in table and "current" in table and secret not in table

    again = cli.ok("webhooks", "create")
    assert f"secret {listed[0]['id']} keeps signing until" in again.stderr
    as_json = json.loads(cli.ok("webhooks", "create", "-o", "json").stdout)
    assert re.fullmatch(r"whsec_[A-Za-z0-9]{40}", as_json["secret"])
    assert listed[0]["id"] in {p["id"] for p in as_json["previous"]}


def test_autoscale(cli: Cli, chain: dict[str, Any]) -> None:
    done = cli.ok(
        "chainlets",
        "autoscale",
        chain["name"],
        "production",
        "RandInt",
        "HelloWorld",
        "--min-replica",
        "1",
        "--max-replica",
        "4",
        "--concurrency-target",
        "2",
    )
    assert "ACCEPTED" in done.stderr
    assert "1..4 replicas, target 2" in done.stdout
    settings = json.loads(cli.ok("chainlets", "ls", chain["id"], "-o", "json").stdout)
    assert {s["chainlet_name"]: s["autoscaling_settings"]["max_replica"] for s in settings} == {
        "HelloWorld": 4,
        "RandInt": 4,
    }
    as_json = cli.ok(
        "chainlets",
        "autoscale",
        chain["id"],
        "production",
        "RandInt",
        "--max-replica",
        "2",
        "-o",
        "json",
    )
    assert json.loads(as_json.stdout)["status"] == "ACCEPTED"
    assert cli("chainlets", "autoscale", chain["id"], "production", "RandInt").exit_code == 2
    nope = cli("chainlets", "autoscale", chain["id"], "production", "Nope", "--max-replica", "2")
    assert nope.exit_code == 3
    bad = cli(
        "chainlets",
        "autoscale",
        chain["id"],
        "production",
        "RandInt",
        "--max-scale-down-rate",
        "80",
    )
    assert bad.exit_code == 2
