"""Text that is not valid Unicode (a lone UTF-16 surrogate, which JSON can spell as "\\ud800"),
and chains deeper than the graph code may walk: a clear 400 that changes nothing, never a 500."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from chainyard.domain.graph import MAX_CHAINLETS
from chainyard.services import reconciler_store, secrets
from chainyard.store.audit_logs import AuditLog
from tests.support.server import Api, hello_manifest

LONE = "\\ud800"  # as it appears in the JSON text
PAIR = "\\ud83d\\ude00"  # a surrogate pair: valid, the emoji U+1F600


def _raw(api: Api, method: str, path: str, body: str) -> Any:
    headers = {**api.headers(), "content-type": "application/json"}
    return api.client.request(method, path, headers=headers, content=body.encode())


def _state(api: Api, chain_id: str) -> tuple[Any, ...]:
    """What the refused requests would change (not deployments' progress, which goes on)."""
    with api.core.db.read() as session:
        audit_rows = session.scalar(select(func.count()).select_from(AuditLog))
    envs = api.get(f"/v1/chains/{chain_id}/environments").json()["environments"]
    return (
        api.get("/v1/secrets").json(),
        api.get("/v1/api_keys").json(),
        [(e["name"], e["promotion_settings"], e["chainlet_settings"]) for e in envs],
        audit_rows,
    )


def test_lone_surrogates_in_json_bodies_are_400_and_change_nothing(api: Api) -> None:
    chain_id = api.deploy(hello_manifest())["chain_id"]
    assert api.post("/v1/secrets", json={"name": "token", "value": "first"}).status_code == 200
    env = f"/v1/chains/{chain_id}/environments"
    settings = f"{env}/production/chainlet_settings"
    before = _state(api, chain_id)
    for method, path, body, where in (
        ("POST", "/v1/secrets", f'{{"name": "token", "value": "x{LONE}"}}', "value"),
        ("POST", "/v1/secrets", f'{{"name": "t{LONE}", "value": "x"}}', "name"),
        ("POST", "/v1/secrets", f'{{"name": "token", "value": "x", "{LONE}": 1}}', "(a key)"),
        ("POST", "/v1/api_keys", f'{{"type": "WORKSPACE_INVOKE", "name": "k{LONE}"}}', "name"),
        ("POST", env, f'{{"name": "st{LONE}"}}', "name"),
        (
            "POST",
            env,
            '{"name": "staging", "chainlet_settings": [{"chainlet_name": "RandInt", '
            f'"instance_type_id": "1x{LONE}"}}]}}',
            "chainlet_settings[0].instance_type_id",
        ),
        ("POST", f"{env}/production/promote", f'{{"deployment_id": "d{LONE}"}}', "deployment_id"),
        (
            "PATCH",
            f"{settings}/autoscaling_settings",
            f'{{"updates": [{{"chainlet_name": "R{LONE}", "autoscaling_settings": {{}}}}]}}',
            "updates[0].chainlet_name",
        ),
        (
            "POST",
            f"{settings}/instance_types/update",
            f'{{"updates": [{{"chainlet_name": "RandInt", "instance_type_id": "{LONE}"}}]}}',
            "updates[0].instance_type_id",
        ),
    ):
        response = _raw(api, method, path, body)
        assert response.status_code == 400, (path, body, response.text)
        answer = response.json()
        assert answer["code"] == "INVALID_TEXT", answer
        assert answer["error"].startswith(where) or where in answer["error"], answer
        assert "lone UTF-16 surrogate" in answer["error"]
    # The deploy manifest is parsed by pydantic, which refuses such text itself.
    manifest = json.dumps(hello_manifest("other")).replace('"other"', f'"o{LONE}"')
    response = _raw(api, "POST", "/v1/chains/deploy", manifest)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_MANIFEST"
    assert _state(api, chain_id) == before
    assert secrets.values_for(api.core, _workspace_id(api), ["token"]) == {"token": "first"}


def _workspace_id(api: Api) -> str:
    from chainyard.services import api_keys

    return api_keys.authenticate(api.core, api.key).workspace_id


def test_surrogate_pairs_are_valid_text_and_kept(api: Api) -> None:
    response = _raw(api, "POST", "/v1/secrets", f'{{"name": "emoji", "value": "a{PAIR}b"}}')
    assert response.status_code == 200, response.text
    assert secrets.values_for(api.core, _workspace_id(api), ["emoji"]) == {"emoji": "a\U0001f600b"}
    response = _raw(
        api, "POST", "/v1/api_keys", f'{{"type": "WORKSPACE_INVOKE", "name": "{PAIR}"}}'
    )
    assert response.status_code == 200, response.text
    names = {k["name"] for k in api.get("/v1/api_keys").json()["keys"]}
    assert "\U0001f600" in names


def test_a_5000_deep_dependency_chain_is_400_and_creates_nothing(api: Api) -> None:
    depth = 5_000
    chainlets = [
        {"name": f"C{i}", "dependencies": [f"C{i + 1}"] if i + 1 < depth else []}
        for i in range(depth)
    ]
    manifest = {"chain_name": "deep", "entrypoint": "C0", "chainlets": chainlets}
    response = api.post("/v1/chains/deploy", json=manifest)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "TOO_MANY_CHAINLETS"
    assert str(MAX_CHAINLETS) in response.json()["error"]
    assert api.get("/v1/chains").json()["chains"] == []
    # A cycle through the deepest chain allowed is named, not a RecursionError either.
    chainlets = chainlets[:MAX_CHAINLETS]
    chainlets[-1] = {"name": f"C{MAX_CHAINLETS - 1}", "dependencies": ["C1"]}
    response = api.post("/v1/chains/deploy", json={**manifest, "chainlets": chainlets})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "DEPENDENCY_CYCLE"
    assert api.get("/v1/chains").json()["chains"] == []
    # Without the cycle, the deepest chain allowed deploys.
    chainlets[-1] = {"name": f"C{MAX_CHAINLETS - 1}"}
    deployed = api.deploy({**manifest, "chainlets": chainlets, "environment": None})
    assert len(deployed["chain_deployment"]["chainlets"]) == MAX_CHAINLETS


def test_a_chainlets_log_line_with_a_lone_surrogate_is_stored_escaped(api: Api) -> None:
    # One replica's bad record must not fail the batch it is stored with (other chainlets' lines).
    deployed = api.deploy(hello_manifest(environment=None))
    deployment_id = deployed["chain_deployment"]["id"]
    chainlets = deployed["chain_deployment"]["chainlets"]
    bad, good = chainlets[0]["id"], chainlets[1]["id"]
    record = '\x02{"level": "INFO", "msg": "x' + LONE + 'y", "request_id": "r' + LONE + '"}'
    reconciler_store.record_replica_logs(
        api.core, [(bad, "replica-a", record), (good, "replica-b", "a plain line")]
    )
    path = f"/v1/chains/{deployed['chain_id']}/deployments/{deployment_id}/chainlets"
    bad_lines = [line["message"] for line in api.get(f"{path}/{bad}/logs").json()["logs"]]
    good_lines = [line["message"] for line in api.get(f"{path}/{good}/logs").json()["logs"]]
    assert "x\\ud800y" in bad_lines
    assert "a plain line" in good_lines
