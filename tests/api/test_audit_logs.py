"""GET /v1/chains/{chain_id}/audit_logs: what is recorded, by whom, paging and filters."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from chainyard.services import api_keys
from tests.support.server import Api, hello_manifest


@dataclasses.dataclass
class History:
    chain_id: str
    first: str  # deployed into production, later replaced, deactivated and deleted
    second: str  # deployed without environment, promoted by the API
    copy: str  # made by the instance-type update and promoted by the reconciler
    other_key: str  # a second key of the workspace, used for the staging changes


def _make_history(api: Api) -> History:
    """Every kind of change chainyard audits on a chain, ending at rest (no promotion running)."""
    body = api.deploy(hello_manifest())
    chain_id = body["chain_id"]
    first = body["chain_deployment"]["id"]
    api.wait_current(chain_id, first)

    other_key = api_keys.admin_create_key(api.core, "default", "WORKSPACE_MANAGE_ALL", "second")
    envs = f"/v1/chains/{chain_id}/environments"
    r = api.post(envs, key=other_key, json={"name": "staging"})
    assert r.status_code == 200, r.text
    r = api.patch(
        f"{envs}/staging",
        key=other_key,
        json={"promotion_settings": {"redeploy_on_promotion": True}},
    )
    assert r.status_code == 200, r.text

    r = api.patch(
        f"{envs}/production/chainlet_settings/autoscaling_settings",
        json={
            "updates": [{"chainlet_name": "RandInt", "autoscaling_settings": {"max_replica": 3}}]
        },
    )
    assert r.status_code == 200, r.text

    manifest = hello_manifest(environment=None)
    del manifest["chain_name"]
    manifest["chain_id"] = chain_id
    second = api.deploy(manifest)["chain_deployment"]["id"]
    api.wait_status(chain_id, second, "ACTIVE")
    r = api.post(
        f"{envs}/production/promote",
        json={"deployment_id": second, "scale_down_previous_deployment": False},
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == second
    api.wait_current(chain_id, second)

    dep = f"/v1/chains/{chain_id}/deployments/{first}"
    assert api.post(f"{dep}/deactivate").status_code == 200
    assert api.delete(dep).status_code == 200

    r = api.post(
        f"{envs}/production/chainlet_settings/instance_types/update",
        json={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
    )
    assert r.status_code == 200, r.text
    copy = r.json()["chain_deployment"]["id"]
    api.wait_current(chain_id, copy)
    return History(chain_id, first, second, copy, other_key)


def _page(api: Api, chain_id: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/v1/chains/{chain_id}/audit_logs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _all(api: Api, chain_id: str, **params: Any) -> list[dict[str, Any]]:
    body = _page(api, chain_id, limit=200, **params)
    assert body["pagination"]["has_more"] is False
    items: list[dict[str, Any]] = body["items"]
    return items


def _types(items: list[dict[str, Any]]) -> list[str]:
    return [item["event_type"] for item in items]


def test_audit_log_of_a_chains_history(api: Api) -> None:
    # One history (it takes several reconciler round trips) serves both halves of the check.
    h = _make_history(api)
    _check_recorded_with_actors(api, h)
    _check_paging_and_filters(api, h)


def _check_recorded_with_actors(api: Api, h: History) -> None:
    items = _all(api, h.chain_id, direction="ASC")
    types = _types(items)
    for expected in (
        "CHAIN_DEPLOYED",
        "CHAIN_ENVIRONMENT_CREATED",
        "CHAIN_ENVIRONMENT_UPDATED",
        "CHAIN_DEPLOYMENT_PROMOTED",
        "CHAINLET_AUTOSCALING_SETTINGS_CHANGED",
        "CHAINLET_INSTANCE_TYPE_CHANGED",
        "CHAIN_DEPLOYMENT_DEACTIVATED",
        "CHAIN_DEPLOYMENT_DELETED",
    ):
        assert expected in types, (expected, types)
    assert types.count("CHAIN_DEPLOYED") == 3  # first, second and the instance-type copy
    assert types.count("CHAIN_DEPLOYMENT_PROMOTED") == 3
    assert types[0] in ("CHAIN_DEPLOYED", "CHAIN_ENVIRONMENT_CREATED")
    assert len({item["id"] for item in items}) == len(items)
    for item in items:
        assert item["event_data"]["event_type"] == item["event_type"]
        assert item["event_data"].get("chain_id", h.chain_id) == h.chain_id

    def only(event_type: str, **match: Any) -> dict[str, Any]:
        found = [
            i
            for i in items
            if i["event_type"] == event_type
            and all(i["event_data"].get(k) == v for k, v in match.items())
        ]
        assert len(found) == 1, (event_type, match, found)
        return found[0]

    other_prefix = h.other_key.partition(".")[0]
    staging = only("CHAIN_ENVIRONMENT_CREATED", environment_name="staging")
    assert staging["actor"]["type"] == "API_KEY"
    assert staging["actor"]["api_key_prefix"] == other_prefix
    assert staging["actor"]["api_key_name"] == "second"
    assert staging["source"] == "API"
    assert only("CHAIN_ENVIRONMENT_UPDATED")["actor"]["api_key_prefix"] == other_prefix

    for entry in (
        only("CHAIN_DEPLOYED", chain_deployment_id=h.first),
        only("CHAIN_DEPLOYED", chain_deployment_id=h.second),
        only("CHAIN_DEPLOYMENT_PROMOTED", chain_deployment_id=h.second),  # promoted by the API
        only("CHAINLET_AUTOSCALING_SETTINGS_CHANGED"),
        only("CHAINLET_INSTANCE_TYPE_CHANGED"),
        only("CHAIN_DEPLOYMENT_DEACTIVATED", chain_deployment_id=h.first),
        only("CHAIN_DEPLOYMENT_DELETED", chain_deployment_id=h.first),
    ):
        assert entry["actor"]["type"] == "API_KEY", entry
        assert entry["actor"]["api_key_prefix"] == "admin0001", entry

    # The reconciler finished the promotion of the copy: that is the system, not a key.
    by_reconciler = only("CHAIN_DEPLOYMENT_PROMOTED", chain_deployment_id=h.copy)
    assert by_reconciler["actor"]["api_key_prefix"] is None
    assert by_reconciler["actor"]["type"] == "BASETEN_SYSTEM"

    # The default order is newest first.
    newest_first = _all(api, h.chain_id)
    assert [i["id"] for i in newest_first] == [i["id"] for i in reversed(items)]


def _walk(api: Api, chain_id: str, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        query = dict(params, limit=2)
        if cursor is not None:
            query["cursor"] = cursor
        body = _page(api, chain_id, **query)
        assert len(body["items"]) <= 2
        ids.extend(item["id"] for item in body["items"])
        if not body["pagination"]["has_more"]:
            return ids
        assert len(body["items"]) == 2
        cursor = body["pagination"]["cursor"]
        assert isinstance(cursor, str) and cursor
    raise AssertionError("pagination did not end")


def _check_paging_and_filters(api: Api, h: History) -> None:
    everything = [i["id"] for i in _all(api, h.chain_id, direction="ASC")]
    assert len(everything) >= 5

    asc = _walk(api, h.chain_id, direction="ASC")
    assert asc == everything
    desc = _walk(api, h.chain_id, direction="DESC")
    assert desc == list(reversed(everything))
    # An exact multiple of the page size ends with has_more false and no cursor.
    last = _page(api, h.chain_id, direction="ASC", limit=len(everything))
    assert last["pagination"]["has_more"] is False
    assert last["pagination"].get("cursor") is None

    def types_for(**params: Any) -> set[str]:
        return set(_types(_all(api, h.chain_id, **params)))

    deployed = _all(api, h.chain_id, event_type_groups="DEPLOYED")
    assert _types(deployed) == ["CHAIN_DEPLOYED"] * 3
    assert {i["event_data"]["chain_deployment_id"] for i in deployed} == {
        h.first,
        h.second,
        h.copy,
    }
    assert types_for(event_type_groups=["PROMOTED", "DELETED"]) == {
        "CHAIN_DEPLOYMENT_PROMOTED",
        "CHAIN_DEPLOYMENT_DELETED",
    }
    assert types_for(event_type_groups="ACTIVATED_DEACTIVATED") == {"CHAIN_DEPLOYMENT_DEACTIVATED"}
    assert types_for(event_type_groups="AUTOSCALING_SETTINGS") == {
        "CHAINLET_AUTOSCALING_SETTINGS_CHANGED"
    }
    assert types_for(event_type_groups="INSTANCE_TYPE_CHANGED") == {
        "CHAINLET_INSTANCE_TYPE_CHANGED"
    }
    assert types_for(event_type_groups="SECRETS") == set()

    assert types_for(environment_names="staging") == {
        "CHAIN_ENVIRONMENT_CREATED",
        "CHAIN_ENVIRONMENT_UPDATED",
    }
    production = _all(api, h.chain_id, environment_names="production")
    assert "CHAIN_ENVIRONMENT_UPDATED" not in _types(production)
    assert "CHAIN_DEPLOYMENT_PROMOTED" in _types(production)
    both = _all(api, h.chain_id, environment_names=["staging", "production"])
    assert len(both) == len(production) + 2

    for_first = _all(api, h.chain_id, chain_deployment_ids=h.first)
    assert {"CHAIN_DEPLOYED", "CHAIN_DEPLOYMENT_DEACTIVATED", "CHAIN_DEPLOYMENT_DELETED"} <= set(
        _types(for_first)
    )
    for item in for_first:
        assert item["event_data"]["chain_deployment_id"] == h.first
    for_two = _all(api, h.chain_id, chain_deployment_ids=[h.first, h.second])
    assert len(for_two) > len(for_first)
    assert _all(api, h.chain_id, chain_deployment_ids="nosuchdeployment") == []

    found = _all(api, h.chain_id, search=h.second)
    assert found
    for item in found:
        assert h.second in json.dumps(item["event_data"])
    assert [i["id"] for i in _all(api, h.chain_id, search=h.second.upper())] == [
        i["id"] for i in found
    ]
    assert _all(api, h.chain_id, search="staging")
    assert _all(api, h.chain_id, search="no-entry-mentions-this") == []
    # The search text is a substring, not a LIKE pattern.
    assert _all(api, h.chain_id, search="%") == []
    assert _all(api, h.chain_id, search="chain%id") == []
    assert _all(api, h.chain_id, search="\\") == []
    assert _all(api, h.chain_id, search="environment_name")  # "_" matches only itself

    # Filters combine (AND), and pagination works over a filtered list.
    combined = _all(api, h.chain_id, event_type_groups="DEPLOYED", chain_deployment_ids=h.second)
    assert len(combined) == 1
    filtered = [
        i["id"] for i in _all(api, h.chain_id, direction="ASC", event_type_groups="PROMOTED")
    ]
    assert _walk(api, h.chain_id, direction="ASC", event_type_groups="PROMOTED") == filtered

    # Audit rows name keys, not users or model deployments.
    assert _all(api, h.chain_id, user_ids="someone") == []
    assert types_for(sources="SYSTEM") == {"CHAIN_DEPLOYMENT_PROMOTED"}
    assert "CHAIN_DEPLOYMENT_PROMOTED" in types_for(sources="API")
    assert _all(api, h.chain_id, end_epoch_millis=0) == []


def test_bad_parameters_are_400(api: Api) -> None:
    chain_id = api.deploy(hello_manifest(environment=None))["chain_id"]
    path = f"/v1/chains/{chain_id}/audit_logs"
    assert api.get(path, params={"limit": 1}).status_code == 200
    assert api.get(path, params={"limit": 200}).status_code == 200

    def garbage(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    for params in (
        {"limit": 0},
        {"limit": 201},
        {"limit": -1},
        {"limit": "ten"},
        {"direction": "SIDEWAYS"},
        {"event_type_groups": "NOT_A_GROUP"},
        {"sources": "NOWHERE"},
        {"cursor": "garbage!"},
        {"cursor": "%%%"},
        {"cursor": "AAAA"},
        {"cursor": garbage("12:UP")},
        {"cursor": garbage("-1:ASC")},
        {"cursor": garbage("x:ASC")},
        {"cursor": garbage("1:ASC:extra")},
        {"cursor": garbage(f"{10**30}:ASC")},
        {"cursor": garbage(f"{2**63}:DESC")},
    ):
        response = api.get(path, params=params)
        assert response.status_code == 400, (params, response.text)
        body = response.json()
        assert set(body) == {"error", "code"}, body


def test_unknown_chain_is_404(api: Api) -> None:
    response = api.get("/v1/chains/nosuchchain/audit_logs")
    assert response.status_code == 404, response.text
    assert set(response.json()) == {"error", "code"}
