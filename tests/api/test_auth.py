"""Authentication, key storage, workspace isolation and key types."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import pytest
from sqlalchemy import select, text

from chainyard.services import api_keys
from chainyard.store.workspaces import ApiKey, Workspace
from tests.support.server import ADMIN_KEY, Api, hello_manifest

_ADMIN_SECRET = ADMIN_KEY.partition(".")[2]


def _assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", body["code"]), body
    if code is not None:
        assert body["code"] == code, body
    return body


def test_bearer_and_legacy_api_key_schemes_both_authenticate(api: Api) -> None:
    for header in (f"Bearer {ADMIN_KEY}", f"Api-Key {ADMIN_KEY}", f"bearer {ADMIN_KEY}"):
        response = api.client.get("/v1/chains", headers={"Authorization": header})
        assert response.status_code == 200, (header, response.text)
        assert response.json() == {"chains": []}


_BAD_AUTHORIZATION: list[str | None] = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    ADMIN_KEY,  # no scheme
    "Bearer garbage",
    "Bearer admin0001.not-the-right-secret-value",  # known prefix, wrong secret
    "Api-Key zzzz9999.some-secret-that-was-never-issued",  # unknown prefix
    f"Bearer {ADMIN_KEY}x",
    f"Bearer {ADMIN_KEY.partition('.')[0]}",  # the prefix alone
    f"Bearer {_ADMIN_SECRET}",  # the secret alone
    "Bearer " + "x" * 5000,
]


def test_missing_or_bad_credentials_are_401_json(api: Api) -> None:
    for authorization in _BAD_AUTHORIZATION:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in (("GET", "/v1/chains"), ("POST", "/v1/secrets"), ("GET", "/v1/nope")):
            response = api.client.request(method, path, headers=headers)
            if path == "/v1/nope":
                # An unknown path is a 404 whoever asks; it reveals nothing.
                assert response.status_code == 404, response.text
                continue
            _assert_error(response, 401, "UNAUTHENTICATED")
            assert ADMIN_KEY not in response.text


def test_keys_are_stored_hashed(api: Api) -> None:
    created = api.post("/v1/api_keys", json={"type": "WORKSPACE_MANAGE_ALL", "name": "n1"})
    assert created.status_code == 200, created.text
    other = created.json()["api_key"]
    with api.core.db.read() as session:
        rows = list(session.scalars(select(ApiKey)))
        dump = [
            " ".join(str(v) for v in row)
            for row in session.execute(text("SELECT * FROM api_keys")).all()
        ]
    assert {r.prefix for r in rows} >= {"admin0001", other.partition(".")[0]}
    by_prefix = {r.prefix: r for r in rows}
    assert by_prefix["admin0001"].key_hash == hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    assert by_prefix[other.partition(".")[0]].key_hash == hashlib.sha256(other.encode()).hexdigest()
    for line in dump:
        for raw in (ADMIN_KEY, other):
            assert raw not in line
            assert raw.partition(".")[2] not in line


def test_raw_keys_never_reach_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "admin0001.this-is-a-wrong-secret-for-the-prefix"
    unknown = "nosuchkey.another-secret-nobody-issued-0000"
    # Everything at DEBUG, SQL statements and their parameters included (SQLAlchemy's loggers
    # default to WARNING), so that a key passed to a query would show up too.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        assert api.get("/v1/chains", key=wrong).status_code == 401
        assert api.get("/v1/chains", key=unknown).status_code == 401
        assert api.client.get("/v1/chains", headers={"Authorization": wrong}).status_code == 401
        assert api.get("/v1/chains").status_code == 200
        created = api.post("/v1/api_keys", json={"type": "WORKSPACE_INVOKE"})
        assert created.status_code == 200, created.text
        new_key = created.json()["api_key"]
        assert api.get("/v1/chains", key=new_key).status_code == 403
        api.deploy(hello_manifest(environment=None))
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)
    assert any("api_keys.prefix" in r.getMessage() for r in caplog.records)
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    for raw in (ADMIN_KEY, wrong, unknown, new_key):
        assert raw not in logged
        assert raw.partition(".")[2] not in logged


def _other_workspace_key(api: Api, workspace: str = "other", key_type: str = "") -> str:
    return api_keys.admin_create_key(api.core, workspace, key_type or "WORKSPACE_MANAGE_ALL")


def test_a_key_sees_only_its_own_workspace(api: Api) -> None:
    body = api.deploy(hello_manifest())
    chain_id = body["chain_id"]
    dep_id = body["chain_deployment"]["id"]
    env = api.wait_current(chain_id, dep_id)
    chainlet_id = env["current_deployment"]["chainlets"][0]["id"]
    other = _other_workspace_key(api)

    # The other workspace has a chain of the same name: names are per workspace.
    other_body = api.deploy(hello_manifest(), key=other)
    other_chain = other_body["chain_id"]
    assert other_chain != chain_id

    dep = f"/v1/chains/{chain_id}/deployments/{dep_id}"
    env_path = f"/v1/chains/{chain_id}/environments/production"
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/chains/{chain_id}", None),
        ("GET", f"/v1/chains/{chain_id}/deployments", None),
        ("GET", dep, None),
        ("GET", f"{dep}/chainlets/{chainlet_id}/logs", None),
        ("GET", f"/v1/chains/{chain_id}/audit_logs", None),
        ("GET", f"/v1/chains/{chain_id}/environments", None),
        ("GET", env_path, None),
        ("POST", f"/v1/chains/{chain_id}/environments", {"name": "staging"}),
        ("PATCH", env_path, {"promotion_settings": {"redeploy_on_promotion": True}}),
        ("POST", f"{env_path}/promote", {"deployment_id": dep_id}),
        (
            "PATCH",
            f"{env_path}/chainlet_settings/autoscaling_settings",
            {"updates": [{"chainlet_name": "RandInt", "autoscaling_settings": {"max_replica": 5}}]},
        ),
        (
            "POST",
            f"{env_path}/chainlet_settings/instance_types/update",
            {"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
        ),
        ("POST", f"{dep}/deactivate", None),
        ("POST", f"{dep}/activate", None),
        ("DELETE", dep, None),
        ("DELETE", f"/v1/chains/{chain_id}", None),
        # A deployment of this workspace reached through the other workspace's own chain.
        ("GET", f"/v1/chains/{other_chain}/deployments/{dep_id}", None),
        ("DELETE", f"/v1/chains/{other_chain}/deployments/{dep_id}", None),
        # Deploying into another workspace's chain by id.
        (
            "POST",
            "/v1/chains/deploy",
            {**hello_manifest(environment=None), "chain_name": None, "chain_id": chain_id},
        ),
    ]
    for method, path, json_body in attempts:
        kwargs: dict[str, Any] = {"headers": api.headers(other)}
        if json_body is not None:
            kwargs["json"] = json_body
        response = api.client.request(method, path, **kwargs)
        _assert_error(response, 404)

    own = api.get("/v1/chains").json()["chains"]
    theirs = api.get("/v1/chains", key=other).json()["chains"]
    assert [c["id"] for c in own] == [chain_id]
    assert [c["id"] for c in theirs] == [other_chain]

    # Nothing the other workspace tried changed anything here.
    after = api.environment(chain_id)
    assert after["current_deployment"]["id"] == dep_id
    assert after["candidate_deployment"] is None
    assert after["promotion_settings"] == env["promotion_settings"]
    assert {
        e["name"] for e in api.get(f"/v1/chains/{chain_id}/environments").json()["environments"]
    } == {"production"}
    assert len(api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]) == 1
    assert api.deployment(chain_id, dep_id)["status"] == "ACTIVE"


def _placeholder_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "placeholder0", path)


def test_invoke_only_keys_get_403_on_every_management_path(api: Api) -> None:
    invoke = _other_workspace_key(api, "default", "WORKSPACE_INVOKE")
    body = api.deploy(hello_manifest(environment=None))
    chain_id = body["chain_id"]
    checked = 0
    # The OpenAPI document lists every route the routers registered.
    paths: dict[str, dict[str, Any]] = api.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    for route_path, operations in paths.items():
        if not route_path.startswith("/v1"):
            continue
        for method in sorted(
            m for m in operations if m in ("get", "post", "patch", "delete", "put")
        ):
            for path in {
                _placeholder_path(route_path),
                _placeholder_path(route_path.replace("{chain_id}", chain_id)),
            }:
                response = api.client.request(
                    method.upper(), path, headers=api.headers(invoke), json={}
                )
                _assert_error(response, 403, "PERMISSION_DENIED")
                checked += 1
    assert checked >= 30  # every route of the spec, with a placeholder and a real chain id
    # The invoke key did nothing: the chain still has exactly its one deployment.
    assert len(api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]) == 1


def test_key_types_limit_what_a_key_may_do(api: Api) -> None:
    keys_only = _other_workspace_key(api, "default", "WORKSPACE_MANAGE_API_KEYS")
    metrics = _other_workspace_key(api, "default", "WORKSPACE_EXPORT_METRICS")
    personal = _other_workspace_key(api, "default", "PERSONAL")
    assert api.get("/v1/api_keys", key=keys_only).status_code == 200
    _assert_error(api.get("/v1/chains", key=keys_only), 403)
    _assert_error(api.get("/v1/secrets", key=keys_only), 403)
    _assert_error(api.get("/v1/chains", key=metrics), 403)
    _assert_error(api.get("/v1/api_keys", key=metrics), 403)
    assert api.get("/v1/chains", key=personal).status_code == 200
    assert api.get("/v1/api_keys", key=personal).status_code == 200


def test_short_bootstrap_key_fails_at_startup(make_api: Any) -> None:
    with pytest.raises(Exception, match="CHAINYARD_BOOTSTRAP_API_KEY") as info:
        make_api(bootstrap_api_key="too-short-key")
    assert "20" in str(info.value)
    with pytest.raises(Exception, match="CHAINYARD_BOOTSTRAP_API_KEY"):
        make_api(bootstrap_api_key="has spaces in it which are not allowed")


def test_restarting_with_the_same_bootstrap_key_is_idempotent(make_api: Any) -> None:
    first = make_api()
    assert first.get("/v1/chains").status_code == 200
    second = make_api()
    third = make_api()
    for server in (first, second, third):
        assert server.get("/v1/chains").status_code == 200
    with third.core.db.read() as session:
        keys = list(session.scalars(select(ApiKey).where(ApiKey.prefix == "admin0001")))
        workspaces = list(session.scalars(select(Workspace).where(Workspace.name == "default")))
    assert len(keys) == 1
    assert len(workspaces) == 1
    assert keys[0].type == "WORKSPACE_MANAGE_ALL"
    # A different key that happens to share the prefix is refused, not silently accepted.
    with pytest.raises(Exception, match="prefix"):
        make_api(bootstrap_api_key="admin0001.a-different-secret-value")
    assert second.get("/v1/chains", key="admin0001.a-different-secret-value").status_code == 401
