"""/v1/secrets: upsert, list (never values), delete; values encrypted at rest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from chainyard.services import api_keys, secrets
from chainyard.store.secrets import Secret
from chainyard.store.workspaces import Workspace
from tests.support.server import Api

VALUE_1 = "hf_first-plaintext-value-8c1d2e"
VALUE_2 = "hf_second-plaintext-value-77f0aa"


def _workspace_id(api: Api, name: str = "default") -> str:
    with api.core.db.read() as session:
        ws = session.scalar(select(Workspace).where(Workspace.name == name))
        assert ws is not None
        return ws.id


def test_upsert_creates_then_updates_in_place(api: Api) -> None:
    bodies: list[str] = []
    created = api.post("/v1/secrets", json={"name": "hf_token", "value": VALUE_1})
    assert created.status_code == 200, created.text
    bodies.append(created.text)
    first = created.json()
    assert set(first) == {"id", "created_at", "name", "team_name"}
    assert first["name"] == "hf_token"
    assert first["team_name"] == "default"

    updated = api.post("/v1/secrets", json={"name": "hf_token", "value": VALUE_2})
    assert updated.status_code == 200, updated.text
    bodies.append(updated.text)
    assert updated.json()["id"] == first["id"]
    assert updated.json()["created_at"] == first["created_at"]

    listing = api.get("/v1/secrets")
    assert listing.status_code == 200
    bodies.append(listing.text)
    assert [s["name"] for s in listing.json()["secrets"]] == ["hf_token"]
    assert listing.json()["secrets"][0]["id"] == first["id"]

    ws_id = _workspace_id(api)
    assert secrets.values_for(api.core, ws_id, ["hf_token"]) == {"hf_token": VALUE_2}
    assert secrets.values_for(api.core, ws_id, ["other"]) == {}
    assert secrets.values_for(api.core, ws_id, []) == {}
    for body in bodies:
        assert VALUE_1 not in body and VALUE_2 not in body


def test_values_never_appear_in_any_response(api: Api) -> None:
    bodies: list[str] = []
    for i in range(3):
        r = api.post("/v1/secrets", json={"name": f"s{i}", "value": f"{VALUE_1}-{i}"})
        assert r.status_code == 200
        bodies.append(r.text)
    for path in ("/v1/secrets", "/v1/api_keys", "/v1/chains"):
        bodies.append(api.get(path).text)
    bodies.append(api.delete("/v1/secrets/s0").text)
    listing = api.get("/v1/secrets")
    bodies.append(listing.text)
    assert [s["name"] for s in listing.json()["secrets"]] == ["s1", "s2"]
    for body in bodies:
        assert VALUE_1 not in body
        for secret in listing.json()["secrets"]:
            assert set(secret) == {"id", "created_at", "name", "team_name"}


def test_values_are_encrypted_at_rest(api: Api) -> None:
    assert (
        api.post("/v1/secrets", json={"name": "db_password", "value": VALUE_1}).status_code == 200
    )
    with api.core.db.read() as session:
        rows = list(session.scalars(select(Secret)))
        raw_rows = session.execute(text("SELECT * FROM secrets")).all()
    assert len(rows) == 1
    assert VALUE_1.encode() not in rows[0].ciphertext
    assert rows[0].ciphertext != VALUE_1.encode()
    for row in raw_rows:
        for column in row:
            raw = bytes(column) if isinstance(column, bytes | memoryview) else str(column).encode()
            assert VALUE_1.encode() not in raw
    # The same key decrypts it, and encryption is not deterministic.
    assert api.core.cipher.decrypt(rows[0].ciphertext) == VALUE_1
    assert api.core.cipher.encrypt(VALUE_1) != api.core.cipher.encrypt(VALUE_1)


def test_delete_returns_a_tombstone(api: Api) -> None:
    assert api.post("/v1/secrets", json={"name": "gone", "value": VALUE_1}).status_code == 200
    assert api.post("/v1/secrets", json={"name": "kept", "value": VALUE_2}).status_code == 200
    response = api.delete("/v1/secrets/gone")
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "gone"}
    assert [s["name"] for s in api.get("/v1/secrets").json()["secrets"]] == ["kept"]
    ws_id = _workspace_id(api)
    assert secrets.values_for(api.core, ws_id, ["gone", "kept"]) == {"kept": VALUE_2}

    again = api.delete("/v1/secrets/gone")
    assert again.status_code == 404, again.text
    assert set(again.json()) == {"error", "code"}


def test_delete_unknown_is_404(api: Api) -> None:
    response = api.delete("/v1/secrets/never_created")
    assert response.status_code == 404, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == "SECRET_NOT_FOUND"


def test_bad_names_and_values_are_400(api: Api) -> None:
    for body in (
        {"name": "has space", "value": "v"},
        {"name": "", "value": "v"},
        {"name": "slash/name", "value": "v"},
        {"name": "x" * 201, "value": "v"},
        {"name": "ok_name", "value": "v" * (64 * 1024 + 1)},
        {"name": "ok_name"},
        {"value": "v"},
        {"name": "ok_name", "value": 5},
    ):
        response = api.post("/v1/secrets", json=body)
        assert response.status_code == 400, (body, response.text)
        assert set(response.json()) == {"error", "code"}
    assert api.get("/v1/secrets").json()["secrets"] == []


def test_secrets_are_per_workspace(api: Api) -> None:
    other = api_keys.admin_create_key(api.core, "other", "WORKSPACE_MANAGE_ALL")
    assert (
        api.post("/v1/secrets", json={"name": "shared_name", "value": VALUE_1}).status_code == 200
    )
    assert api.get("/v1/secrets", key=other).json()["secrets"] == []
    assert api.delete("/v1/secrets/shared_name", key=other).status_code == 404

    theirs = api.post("/v1/secrets", key=other, json={"name": "shared_name", "value": VALUE_2})
    assert theirs.status_code == 200
    assert theirs.json()["team_name"] == "other"
    assert secrets.values_for(api.core, _workspace_id(api), ["shared_name"]) == {
        "shared_name": VALUE_1
    }
    assert secrets.values_for(api.core, _workspace_id(api, "other"), ["shared_name"]) == {
        "shared_name": VALUE_2
    }
