"""/v1/api_keys: list, create (shown once), delete by prefix."""

from __future__ import annotations

from typing import Any

from chainyard.services import api_keys
from tests.support.server import ADMIN_KEY, Api

_METADATA_FIELDS = {"prefix", "name", "type", "model_ids", "team_name", "owner"}


def _keys(api: Api, key: str | None = None) -> dict[str, dict[str, Any]]:
    response = api.get("/v1/api_keys", key=key)
    assert response.status_code == 200, response.text
    return {k["prefix"]: k for k in response.json()["keys"]}


def _create(api: Api, key_type: str, name: str | None = None, key: str | None = None) -> str:
    body: dict[str, Any] = {"type": key_type}
    if name is not None:
        body["name"] = name
    response = api.post("/v1/api_keys", key=key, json=body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"api_key"}
    raw: str = response.json()["api_key"]
    return raw


def test_list_shows_metadata_only(api: Api) -> None:
    response = api.get("/v1/api_keys")
    assert response.status_code == 200, response.text
    keys = response.json()["keys"]
    assert [k["prefix"] for k in keys] == ["admin0001"]
    assert keys[0]["type"] == "WORKSPACE_MANAGE_ALL"
    assert keys[0]["name"] == "bootstrap"
    assert set(keys[0]) <= _METADATA_FIELDS
    assert ADMIN_KEY.partition(".")[2] not in response.text


def test_create_returns_a_working_key_once(api: Api) -> None:
    raw = _create(api, "WORKSPACE_MANAGE_ALL", name="ci")
    prefix, dot, secret = raw.partition(".")
    assert dot and prefix and len(secret) >= 32
    assert api.get("/v1/chains", key=raw).status_code == 200

    listing = api.get("/v1/api_keys")
    assert secret not in listing.text
    keys = {k["prefix"]: k for k in listing.json()["keys"]}
    assert keys[prefix]["name"] == "ci"
    assert keys[prefix]["type"] == "WORKSPACE_MANAGE_ALL"
    assert set(keys[prefix]) <= _METADATA_FIELDS

    # The new key manages keys too; each create gives a different key.
    second = _create(api, "WORKSPACE_MANAGE_ALL", key=raw)
    assert second != raw
    assert set(_keys(api)) == {"admin0001", prefix, second.partition(".")[0]}


def test_an_invoke_key_created_through_the_api_cannot_manage(api: Api) -> None:
    raw = _create(api, "WORKSPACE_INVOKE", name="invoker")
    assert _keys(api)[raw.partition(".")[0]]["type"] == "WORKSPACE_INVOKE"
    for method, path in (
        ("GET", "/v1/chains"),
        ("GET", "/v1/secrets"),
        ("GET", "/v1/api_keys"),
        ("GET", "/v1/instance_types"),
    ):
        response = api.client.request(method, path, headers=api.headers(raw))
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "PERMISSION_DENIED"
    response = api.post("/v1/api_keys", key=raw, json={"type": "WORKSPACE_MANAGE_ALL"})
    assert response.status_code == 403
    # It created nothing.
    assert len(_keys(api)) == 2


def test_delete_by_prefix_revokes_the_key(api: Api) -> None:
    raw = _create(api, "WORKSPACE_MANAGE_ALL", name="temp")
    prefix = raw.partition(".")[0]
    assert api.get("/v1/chains", key=raw).status_code == 200

    response = api.delete(f"/v1/api_keys/{prefix}")
    assert response.status_code == 200, response.text
    assert response.json() == {"prefix": prefix}
    revoked = api.get("/v1/chains", key=raw)
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "UNAUTHENTICATED"
    assert prefix not in _keys(api)

    again = api.delete(f"/v1/api_keys/{prefix}")
    assert again.status_code == 404, again.text
    assert set(again.json()) == {"error", "code"}
    # The admin key is untouched.
    assert api.get("/v1/chains").status_code == 200


def test_delete_unknown_prefix_is_404(api: Api) -> None:
    for prefix in ("doesnotexist", "admin000", "admin0001x"):
        response = api.delete(f"/v1/api_keys/{prefix}")
        assert response.status_code == 404, response.text
        assert set(response.json()) == {"error", "code"}
    assert set(_keys(api)) == {"admin0001"}


def test_another_workspaces_prefix_is_404(api: Api) -> None:
    other = api_keys.admin_create_key(api.core, "other", "WORKSPACE_MANAGE_ALL")
    other_prefix = other.partition(".")[0]
    assert other_prefix not in _keys(api)
    assert set(_keys(api, key=other)) == {other_prefix}

    response = api.delete(f"/v1/api_keys/{other_prefix}")
    assert response.status_code == 404, response.text
    assert api.get("/v1/chains", key=other).status_code == 200

    response = api.delete("/v1/api_keys/admin0001", key=other)
    assert response.status_code == 404, response.text
    assert api.get("/v1/chains").status_code == 200


def test_create_rejects_bad_requests(api: Api) -> None:
    for body in (
        {"type": "NOT_A_TYPE"},
        {},
        {"type": "WORKSPACE_MANAGE_ALL", "model_ids": ["abc"]},
        {"type": 5},
        {"type": "WORKSPACE_INVOKE", "name": "x" * 201},
    ):
        response = api.post("/v1/api_keys", json=body)
        assert response.status_code == 400, (body, response.text)
        assert set(response.json()) == {"error", "code"}
    assert set(_keys(api)) == {"admin0001"}


def _audit_types(api: Api) -> list[str]:
    from sqlalchemy import select

    from chainyard.store.audit_logs import AuditLog

    with api.core.db.read() as session:
        return list(session.scalars(select(AuditLog.event_type).order_by(AuditLog.created_at)))


# Strongest first; a key may create keys of its own rank or lower (services/context.py).
_RANKS = [
    {"WORKSPACE_MANAGE_ALL", "PERSONAL"},
    {"WORKSPACE_MANAGE_API_KEYS"},
    {"WORKSPACE_INVOKE", "WORKSPACE_EXPORT_METRICS"},
]


def test_a_key_creates_only_keys_of_its_own_type_or_weaker(api: Api) -> None:
    creators = {t: _create(api, t, name=f"creator-{t}") for t in api_keys.KEY_TYPES}
    keys_before = set(_keys(api))
    audit_before = _audit_types(api)
    for creator_type, creator in creators.items():
        rank = next(i for i, ranked in enumerate(_RANKS) if creator_type in ranked)
        for wanted in sorted(api_keys.KEY_TYPES):
            wanted_rank = next(i for i, ranked in enumerate(_RANKS) if wanted in ranked)
            response = api.post("/v1/api_keys", key=creator, json={"type": wanted})
            if creator_type in ("WORKSPACE_INVOKE", "WORKSPACE_EXPORT_METRICS"):
                # Single-purpose keys may not manage keys at all.
                assert response.status_code == 403, (creator_type, wanted, response.text)
                continue
            if wanted_rank >= rank:
                assert response.status_code == 200, (creator_type, wanted, response.text)
                made = response.json()["api_key"]
                assert _keys(api)[made.partition(".")[0]]["type"] == wanted
                assert api.delete(f"/v1/api_keys/{made.partition('.')[0]}").status_code == 200
            else:
                assert response.status_code == 403, (creator_type, wanted, response.text)
                body = response.json()
                assert body["code"] == "PERMISSION_DENIED"
                assert creator_type in body["error"] and wanted in body["error"]
    # Each allowed creation was audited with its deletion; the refusals left nothing.
    assert set(_keys(api)) == keys_before
    added = _audit_types(api)[len(audit_before) :]
    assert set(added) == {"API_KEY_CREATED", "API_KEY_DELETED"}
    assert added.count("API_KEY_CREATED") == added.count("API_KEY_DELETED")
    assert added.count("API_KEY_CREATED") == 2 * 5 + 1 * 3


def test_a_key_manager_cannot_escalate_to_full_access(api: Api) -> None:
    manager = _create(api, "WORKSPACE_MANAGE_API_KEYS", name="keys-only")
    keys_before = _keys(api)
    audit_before = _audit_types(api)
    for wanted in ("WORKSPACE_MANAGE_ALL", "PERSONAL"):
        response = api.post("/v1/api_keys", key=manager, json={"type": wanted, "name": "root"})
        assert response.status_code == 403, response.text
        assert set(response.json()) == {"error", "code"}
        assert "may not create a key of type " + wanted in response.json()["error"]
    assert _keys(api) == keys_before
    assert _audit_types(api) == audit_before
    # The manager still does its job: an invoke key for someone, which cannot manage.
    invoker = _create(api, "WORKSPACE_INVOKE", key=manager)
    assert api.get("/v1/chains", key=invoker).status_code == 403
    assert api.get("/v1/chains", key=manager).status_code == 403


def test_a_key_revoked_by_another_server_stops_working_at_inference(api: Api) -> None:
    """Inference believes a key it remembers while it asks the store again in the background
    (gateway/routes.py); a key that is gone there is then forgotten."""
    from sqlalchemy import delete

    from chainyard.store.db import Database
    from chainyard.store.workspaces import ApiKey

    raw = _create(api, "WORKSPACE_INVOKE", name="elsewhere")
    run = "/chains/nosuchchain/production/run_remote"
    assert api.post(run, key=raw, json={}).status_code == 404  # known key, unknown chain
    # Another server (its own connection to the store) revokes it: the row goes, this server's
    # memory of it stays ...
    elsewhere = Database(api.config.effective_database_url)
    try:
        with elsewhere.write() as session:
            session.execute(delete(ApiKey).where(ApiKey.prefix == raw.partition(".")[0]))
    finally:
        elsewhere.dispose()
    digest = api_keys.hash_key(raw)
    _, actor = api.core.auth_cache[digest]
    api.core.auth_cache[digest] = (0.0, actor)  # ... until it is AUTH_CACHE_SECONDS old
    answers = [api.post(run, key=raw, json={}).status_code]
    api.wait_for(
        lambda: answers.append(api.post(run, key=raw, json={}).status_code) or answers[-1] == 401,
        what="the revoked key refused",
    )
    assert answers[0] == 404  # the one request that was believed while the store was asked
    assert answers[-1] == 401
