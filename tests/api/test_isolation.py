"""Isolation for every endpoint, read off our own OpenAPI document so that a new route cannot be
forgotten: another workspace's ids answer 404 and change nothing; keys of other workspaces never
see this one's secrets or keys."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chainyard.services import api_keys
from tests.support.server import Api, hello_manifest

# Bodies that would be valid for the owner, so that a 404 cannot come from validation.
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/chains/{chain_id}/environments"): {"name": "staging"},
    ("PATCH", "/v1/chains/{chain_id}/environments/{env_name}"): {
        "promotion_settings": {"redeploy_on_promotion": True}
    },
    ("POST", "/v1/chains/{chain_id}/environments/{env_name}/promote"): {},
    (
        "PATCH",
        "/v1/chains/{chain_id}/environments/{env_name}/chainlet_settings/autoscaling_settings",
    ): {"updates": [{"chainlet_name": "RandInt", "autoscaling_settings": {"max_replica": 5}}]},
    (
        "POST",
        "/v1/chains/{chain_id}/environments/{env_name}/chainlet_settings/instance_types/update",
    ): {"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
    # The whole tree, all chainlets, settings kept: a well-formed patch.
    ("POST", "/v1/chains/{chain_id}/development/patch"): {"base_digest": None},
}


@pytest.fixture
def two_workspaces(api: Api) -> tuple[Api, str, dict[str, str]]:
    body = api.deploy(hello_manifest("isolated"))
    ids = {
        "chain_id": body["chain_id"],
        "chain_deployment_id": body["chain_deployment"]["id"],
        "deployment_id": body["chain_deployment"]["id"],
        "env_name": "production",
        # No patch is needed: the chain's lookup comes first, whatever the patch id.
        "patch_id": "nopatch1",
    }
    env = api.wait_current(ids["chain_id"], ids["chain_deployment_id"])
    ids["chainlet_id"] = env["current_deployment"]["chainlets"][0]["id"]
    queued = api.post(
        f"/chains/{ids['chain_id']}/production/async_run_remote", json={"model_input": {}}
    )
    assert queued.status_code == 201, queued.text
    ids["request_id"] = queued.json()["request_id"]
    other = api_keys.admin_create_key(api.core, "elsewhere", "WORKSPACE_MANAGE_ALL")
    return api, other, ids


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: ids[m.group(1)], path)


def test_every_chain_route_is_404_for_another_workspace(
    two_workspaces: tuple[Api, str, dict[str, str]],
) -> None:
    api, other, ids = two_workspaces
    promote_body = {"deployment_id": ids["chain_deployment_id"]}
    paths: dict[str, dict[str, Any]] = api.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    checked: list[str] = []
    for template, operations in sorted(paths.items()):
        if "{chain_id}" not in template:
            continue
        for method in sorted(m.upper() for m in operations if m != "parameters"):
            body = _BODIES.get((method, template), {})
            if template.endswith("/promote"):
                body = promote_body
            if template.endswith("/async_run_remote"):
                body = {"model_input": {}}
            response = api.client.request(
                method,
                _fill(template, ids),
                headers=api.headers(other),
                json=body if method in ("POST", "PATCH") else None,
            )
            assert response.status_code == 404, (method, template, response.text)
            assert set(response.json()) >= {"error"}, response.text
            checked.append(f"{method} {template}")
    # Management, logs, audit, live data and inference routes all took part.
    assert len(checked) >= 20, checked
    assert any("run_remote" in c for c in checked) and any("/live" in c for c in checked)
    # The owner's chain is as it was.
    env = api.environment(ids["chain_id"])
    assert env["current_deployment"]["id"] == ids["chain_deployment_id"]
    assert env["candidate_deployment"] is None
    assert env["promotion_settings"]["redeploy_on_promotion"] is False
    assert [
        e["name"]
        for e in api.get(f"/v1/chains/{ids['chain_id']}/environments").json()["environments"]
    ] == ["production"]
    assert api.deployment(ids["chain_id"], ids["chain_deployment_id"])["status"] == "ACTIVE"
    request = api.get(f"/async_request/{ids['request_id']}").json()
    assert request["status"] != "CANCELED"


def test_secrets_and_keys_stay_in_their_workspace(
    two_workspaces: tuple[Api, str, dict[str, str]],
) -> None:
    api, other, _ids = two_workspaces
    assert api.post("/v1/secrets", json={"name": "token", "value": "mine"}).status_code == 200
    assert api.get("/v1/secrets", key=other).json()["secrets"] == []
    # The same name in the other workspace is a secret of its own.
    assert api.post("/v1/secrets", key=other, json={"name": "token", "value": "x"}).is_success
    mine = api.get("/v1/api_keys").json()["keys"]
    theirs = api.get("/v1/api_keys", key=other).json()["keys"]
    assert {k["prefix"] for k in mine}.isdisjoint({k["prefix"] for k in theirs})
    victim = mine[0]["prefix"]
    assert api.delete(f"/v1/api_keys/{victim}", key=other).status_code == 404
    assert api.delete("/v1/secrets/token", key=other).status_code == 200
    assert [s["name"] for s in api.get("/v1/secrets").json()["secrets"]] == ["token"]
    assert victim in {k["prefix"] for k in api.get("/v1/api_keys").json()["keys"]}
