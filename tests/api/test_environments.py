"""Chain environments: create, list, get, PATCH promotion settings, not found."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.server import Api, hello_manifest

DEFAULT_PROMOTION_SETTINGS = {
    "redeploy_on_promotion": False,
    "rolling_deploy": False,
    "promotion_cleanup_strategy": "SCALE_TO_ZERO",
    "rolling_deploy_config": None,
    "ramp_up_while_promoting": False,
    "ramp_up_duration_seconds": 600,
}


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    """This module shares one server per database; each test uses chains of its own."""
    return shared_api


def new_chain(api: Api) -> str:
    """A chain with one deployment and no environment."""
    body = api.deploy(hello_manifest(f"hello-{uuid.uuid4().hex[:8]}", environment=None))
    return str(body["chain_id"])


def envs(api: Api, chain_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/chains/{chain_id}/environments")
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["environments"]
    return result


def create(api: Api, chain_id: str, **body: Any) -> Any:
    return api.post(f"/v1/chains/{chain_id}/environments", json=body)


def patch(api: Api, chain_id: str, name: str, settings: dict[str, Any]) -> Any:
    return api.patch(
        f"/v1/chains/{chain_id}/environments/{name}", json={"promotion_settings": settings}
    )


def test_create_list_and_get(api: Api) -> None:
    chain_id = new_chain(api)
    response = create(
        api,
        chain_id,
        name="staging",
        promotion_settings={"promotion_cleanup_strategy": "KEEP"},
        chainlet_settings=[
            {
                "chainlet_name": "HelloWorld",
                "instance_type_id": "2x8",
                "autoscaling_settings": {"max_replica": 3},
            },
            {"chainlet_name": "RandInt"},
        ],
    )
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["name"] == "staging" and created["chain_id"] == chain_id
    assert created["current_deployment"] is None and created["candidate_deployment"] is None
    assert created["promotion_settings"] == {
        **DEFAULT_PROMOTION_SETTINGS,
        "promotion_cleanup_strategy": "KEEP",
    }
    settings = {s["chainlet_name"]: s for s in created["chainlet_settings"]}
    assert settings["HelloWorld"]["instance_type"]["id"] == "2x8"
    assert settings["HelloWorld"]["autoscaling_settings"]["max_replica"] == 3
    assert settings["HelloWorld"]["autoscaling_settings"]["min_replica"] == 0
    assert settings["RandInt"]["instance_type"]["id"] == "1x2"  # the request's default

    second = create(api, chain_id, name="canary")
    assert second.status_code == 200, second.text
    assert second.json()["promotion_settings"] == DEFAULT_PROMOTION_SETTINGS
    assert second.json()["chainlet_settings"] == []

    assert [e["name"] for e in envs(api, chain_id)] == ["staging", "canary"]
    got = api.environment(chain_id, "staging")
    assert got == created

    audit = api.get(
        f"/v1/chains/{chain_id}/audit_logs", params={"event_type_groups": ["ENVIRONMENT_SETTINGS"]}
    ).json()["items"]
    created_events = [e for e in audit if e["event_type"] == "CHAIN_ENVIRONMENT_CREATED"]
    assert sorted(e["event_data"]["environment_name"] for e in created_events) == [
        "canary",
        "staging",
    ]


def test_duplicate_name_is_409(api: Api) -> None:
    chain_id = new_chain(api)
    assert create(api, chain_id, name="staging").status_code == 200
    before = envs(api, chain_id)
    response = create(api, chain_id, name="staging", promotion_settings={"rolling_deploy": True})
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "ENVIRONMENT_EXISTS"
    assert envs(api, chain_id) == before


def test_production_made_by_deploy_is_a_duplicate_too(api: Api) -> None:
    body = api.deploy(hello_manifest(f"hello-{uuid.uuid4().hex[:8]}"))
    chain_id = body["chain_id"]
    response = create(api, chain_id, name="production")
    assert response.status_code == 409, response.text
    assert [e["name"] for e in envs(api, chain_id)] == ["production"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "Bad Name"}, "invalid environment name"),
        ({"name": ""}, "invalid environment name"),
        ({"name": "x" * 64}, "invalid environment name"),
        (
            {
                "name": "ok",
                "chainlet_settings": [{"chainlet_name": "A", "instance_type_id": "9x9"}],
            },
            "unknown instance type '9x9'",
        ),
        (
            {
                "name": "ok",
                "chainlet_settings": [{"chainlet_name": "A"}, {"chainlet_name": "A"}],
            },
            "listed twice",
        ),
        (
            {
                "name": "ok",
                "chainlet_settings": [
                    {"chainlet_name": "A", "autoscaling_settings": {"autoscaling_window": 5}}
                ],
            },
            "autoscaling_window",
        ),
        ({"name": "ok", "promotion_settings": {"ramp_up_duration_seconds": 0}}, "ramp_up"),
        ({"name": "ok", "promotion_settings": {"promotion_cleanup_strategy": "NUKE"}}, "promotion"),
    ],
    ids=[
        "spaces",
        "empty",
        "too-long",
        "unknown-type",
        "twice",
        "autoscaling",
        "ramp-up",
        "strategy",
    ],
)
def test_bad_create_is_400_and_creates_nothing(api: Api, body: dict[str, Any], needle: str) -> None:
    chain_id = new_chain(api)
    response = create(api, chain_id, **body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]
    assert envs(api, chain_id) == []


def test_patch_changes_only_sent_fields(api: Api) -> None:
    chain_id = new_chain(api)
    assert create(api, chain_id, name="staging").status_code == 200

    response = patch(api, chain_id, "staging", {"promotion_cleanup_strategy": "DEACTIVATE"})
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}
    expected = {**DEFAULT_PROMOTION_SETTINGS, "promotion_cleanup_strategy": "DEACTIVATE"}
    assert api.environment(chain_id, "staging")["promotion_settings"] == expected

    assert patch(api, chain_id, "staging", {"redeploy_on_promotion": True}).status_code == 200
    expected["redeploy_on_promotion"] = True
    assert api.environment(chain_id, "staging")["promotion_settings"] == expected

    # The rolling config merges field by field too.
    rolling = {"rolling_deploy_config": {"max_surge_percent": 50}}
    assert patch(api, chain_id, "staging", rolling).status_code == 200
    got = api.environment(chain_id, "staging")["promotion_settings"]
    assert got["rolling_deploy_config"]["max_surge_percent"] == 50
    rolling = {"rolling_deploy_config": {"stabilization_time_seconds": 30}}
    assert patch(api, chain_id, "staging", rolling).status_code == 200
    got = api.environment(chain_id, "staging")["promotion_settings"]
    assert got["rolling_deploy_config"]["max_surge_percent"] == 50
    assert got["rolling_deploy_config"]["stabilization_time_seconds"] == 30
    assert got["promotion_cleanup_strategy"] == "DEACTIVATE"
    assert got["redeploy_on_promotion"] is True

    # An empty PATCH changes nothing.
    assert api.patch(f"/v1/chains/{chain_id}/environments/staging", json={}).status_code == 200
    assert api.environment(chain_id, "staging")["promotion_settings"] == got


@pytest.mark.parametrize(
    "settings",
    [
        {"promotion_cleanup_strategy": "NUKE"},
        {"ramp_up_duration_seconds": 0},
        {"rolling_deploy_config": {"max_surge_percent": 101}},
        {"redeploy_on_promotion": "yes"},
    ],
    ids=["strategy", "ramp-up", "surge", "not-bool"],
)
def test_bad_patch_is_400_and_changes_nothing(api: Api, settings: dict[str, Any]) -> None:
    chain_id = new_chain(api)
    assert create(api, chain_id, name="staging").status_code == 200
    before = api.environment(chain_id, "staging")
    response = patch(api, chain_id, "staging", {"rolling_deploy": True, **settings})
    assert response.status_code == 400, response.text
    assert api.environment(chain_id, "staging") == before


def test_unknown_environment_or_chain_is_404(api: Api) -> None:
    chain_id = new_chain(api)
    base = f"/v1/chains/{chain_id}/environments/nope"
    for response in (
        api.get(base),
        api.patch(base, json={"promotion_settings": {"rolling_deploy": True}}),
        api.post(f"{base}/promote", json={"deployment_id": "x"}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "ENVIRONMENT_NOT_FOUND"
    for response in (
        api.get("/v1/chains/nochain/environments"),
        api.get("/v1/chains/nochain/environments/production"),
        api.post("/v1/chains/nochain/environments", json={"name": "staging"}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "CHAIN_NOT_FOUND"
    assert envs(api, chain_id) == []


def test_instance_type_alias_is_stored_as_its_id(api: Api) -> None:
    chain_id = new_chain(api)
    response = create(
        api,
        chain_id,
        name="staging",
        chainlet_settings=[{"chainlet_name": "RandInt", "instance_type_id": "CPU:2x8"}],
    )
    assert response.status_code == 200, response.text
    assert response.json()["chainlet_settings"][0]["instance_type"]["id"] == "2x8"
    # Asking for the same type by its id is no change: nothing is recorded.
    same = api.post(
        f"/v1/chains/{chain_id}/environments/staging/chainlet_settings/instance_types/update",
        json={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
    )
    assert same.status_code == 200, same.text
    assert same.json()["requires_redeployment"] is False
    audit = api.get(
        f"/v1/chains/{chain_id}/audit_logs", params={"event_type_groups": ["INSTANCE_TYPE_CHANGED"]}
    )
    assert audit.json()["items"] == []
