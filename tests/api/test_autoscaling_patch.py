"""PATCH /v1/chains/{chain_id}/environments/{env}/chainlet_settings/autoscaling_settings."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.server import Api, hello_manifest

DEFAULTS = {
    "min_replica": 0,
    "max_replica": 1,
    "autoscaling_window": 60,
    "scale_down_delay": 900,
    "concurrency_target": 1,
    "target_utilization_percentage": 70,
    "target_in_flight_tokens": None,
    "max_scale_down_rate": None,
}


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    """This module shares one server per database; each test uses chains of its own."""
    return shared_api


def deployed(api: Api) -> tuple[str, str]:
    body = api.deploy(hello_manifest(f"hello-{uuid.uuid4().hex[:8]}"))
    chain_id, deployment_id = body["chain_id"], body["chain_deployment"]["id"]
    api.wait_current(chain_id, deployment_id)
    return chain_id, deployment_id


@pytest.fixture(scope="module")
def steady(api: Api) -> tuple[str, str]:
    """A chain shared by tests whose requests must change nothing."""
    return deployed(api)


def patch(
    api: Api, chain_id: str, updates: dict[str, dict[str, Any]], env: str = "production"
) -> httpx.Response:
    body = {
        "updates": [
            {"chainlet_name": name, "autoscaling_settings": settings}
            for name, settings in updates.items()
        ]
    }
    return api.patch(
        f"/v1/chains/{chain_id}/environments/{env}/chainlet_settings/autoscaling_settings",
        json=body,
    )


def env_autoscaling(api: Api, chain_id: str, env: str = "production") -> dict[str, Any]:
    return {
        s["chainlet_name"]: s["autoscaling_settings"]
        for s in api.environment(chain_id, env)["chainlet_settings"]
    }


def deployment_autoscaling(api: Api, chain_id: str, deployment_id: str) -> dict[str, Any]:
    return {
        c["name"]: c["autoscaling_settings"]
        for c in api.deployment(chain_id, deployment_id)["chainlets"]
    }


def snapshot(api: Api, chain_id: str) -> dict[str, Any]:
    env = api.environment(chain_id)
    deployments = api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]
    audit = api.get(f"/v1/chains/{chain_id}/audit_logs", params={"limit": 200}).json()["items"]
    return {
        "settings": env["chainlet_settings"],
        "deployments": [
            (d["id"], [c["autoscaling_settings"] for c in d["chainlets"]]) for d in deployments
        ],
        "audit": [e["id"] for e in audit],
    }


def test_partial_update_applies_to_the_current_deployment(api: Api) -> None:
    chain_id, current = deployed(api)
    response = patch(api, chain_id, {"HelloWorld": {"max_replica": 3, "scale_down_delay": 30}})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ACCEPTED"

    expected = {**DEFAULTS, "max_replica": 3, "scale_down_delay": 30}
    assert env_autoscaling(api, chain_id) == {"HelloWorld": expected, "RandInt": DEFAULTS}
    assert deployment_autoscaling(api, chain_id, current) == {
        "HelloWorld": expected,
        "RandInt": DEFAULTS,
    }
    # No deployment is made for an autoscaling change.
    deployments = api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]
    assert [d["id"] for d in deployments] == [current]

    # A second partial update keeps what the first one set.
    response = patch(api, chain_id, {"HelloWorld": {"concurrency_target": 4}})
    assert response.json()["status"] == "ACCEPTED"
    expected["concurrency_target"] = 4
    assert env_autoscaling(api, chain_id)["HelloWorld"] == expected

    audit = api.get(
        f"/v1/chains/{chain_id}/audit_logs",
        params={"event_type_groups": ["AUTOSCALING_SETTINGS"], "direction": "ASC"},
    ).json()["items"]
    assert [e["event_data"]["max_replica"] for e in audit] == [3, 3]
    assert audit[1]["event_data"]["previous_settings"]["concurrency_target"] == 1
    assert audit[1]["event_data"]["chain_deployment_id"] == current
    assert audit[1]["actor"]["api_key_prefix"] == api.key.split(".")[0]


def test_same_values_again_are_unchanged(api: Api) -> None:
    chain_id, _ = deployed(api)
    assert patch(api, chain_id, {"RandInt": {"max_replica": 2}}).json()["status"] == "ACCEPTED"
    before = snapshot(api, chain_id)
    response = patch(
        api, chain_id, {"RandInt": {"max_replica": 2}, "HelloWorld": {"min_replica": 0}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "UNCHANGED"
    assert snapshot(api, chain_id) == before


def test_min_replica_scales_the_running_deployment(api: Api) -> None:
    chain_id, current = deployed(api)
    response = patch(api, chain_id, {"RandInt": {"min_replica": 2, "max_replica": 2}})
    assert response.json()["status"] == "ACCEPTED"

    def scaled() -> bool:
        chainlets = {c["name"]: c for c in api.deployment(chain_id, current)["chainlets"]}
        return chainlets["RandInt"]["active_replica_count"] == 2

    api.wait_for(scaled, what="RandInt at 2 replicas")
    chainlets = {c["name"]: c for c in api.deployment(chain_id, current)["chainlets"]}
    assert chainlets["HelloWorld"]["active_replica_count"] == 1
    assert api.deployment(chain_id, current)["status"] == "ACTIVE"


@pytest.mark.parametrize(
    ("updates", "status", "needle"),
    [
        (
            {"HelloWorld": {"target_utilization_percentage": 0}},
            400,
            "target_utilization_percentage",
        ),
        ({"HelloWorld": {"autoscaling_window": 5}}, 400, "autoscaling_window"),
        ({"HelloWorld": {"max_scale_down_rate": 60}}, 400, "max_scale_down_rate"),
        ({"HelloWorld": {"min_replica": 3}}, 400, "min_replica"),
        ({"HelloWorld": {"min_replica": 5, "max_replica": 4}}, 400, "max_replica"),
        ({"HelloWorld": {"max_replicas": 3}}, 400, "max_replicas"),
        ({"HelloWorld": {"max_replica": "3"}}, 400, "max_replica"),
        (
            {"HelloWorld": {"max_replica": 2}, "RandInt": {"scale_down_delay": -1}},
            400,
            "scale_down_delay",
        ),
        ({"HelloWorld": {"max_replica": 2}, "Ghost": {"max_replica": 2}}, 404, "'Ghost'"),
        ({}, 400, "at least one"),
    ],
    ids=[
        "utilization",
        "window",
        "scale-down-rate",
        "min-above-max",
        "min-above-max-both-sent",
        "unknown-key",
        "not-an-int",
        "good+bad",
        "unknown-chainlet",
        "empty",
    ],
)
def test_invalid_update_changes_nothing(
    api: Api, steady: tuple[str, str], updates: dict[str, Any], status: int, needle: str
) -> None:
    chain_id, _ = steady
    before = snapshot(api, chain_id)
    response = patch(api, chain_id, updates)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]
    assert snapshot(api, chain_id) == before


def test_same_chainlet_twice_is_400(api: Api, steady: tuple[str, str]) -> None:
    chain_id, _ = steady
    before = snapshot(api, chain_id)
    body = {
        "updates": [
            {"chainlet_name": "HelloWorld", "autoscaling_settings": {"max_replica": 2}},
            {"chainlet_name": "HelloWorld", "autoscaling_settings": {"max_replica": 3}},
        ]
    }
    response = api.patch(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
        json=body,
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "DUPLICATE_CHAINLET"
    assert snapshot(api, chain_id) == before


def test_queued_while_a_promotion_runs(make_api: Any) -> None:
    api: Api = make_api(sim_ready_delay=0.3)
    chain_id, old = deployed(api)
    changed = api.post(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
        json={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "1x4"}]},
    )
    assert changed.status_code == 200, changed.text
    candidate = changed.json()["chain_deployment"]["id"]

    response = patch(api, chain_id, {"HelloWorld": {"max_replica": 4}})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "QUEUED"
    assert api.environment(chain_id)["candidate_deployment"]["id"] == candidate
    assert deployment_autoscaling(api, chain_id, old)["HelloWorld"]["max_replica"] == 4

    # Once promoted, the new deployment runs with the new settings; no other deployment was made.
    api.wait_current(chain_id, candidate)
    assert deployment_autoscaling(api, chain_id, candidate)["HelloWorld"]["max_replica"] == 4
    deployments = api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]
    assert sorted(d["id"] for d in deployments) == sorted([old, candidate])


def test_environment_without_deployment_stores_settings(api: Api) -> None:
    chain_id, _ = deployed(api)
    created = api.post(
        f"/v1/chains/{chain_id}/environments",
        json={"name": "staging", "chainlet_settings": [{"chainlet_name": "HelloWorld"}]},
    )
    assert created.status_code == 200, created.text
    response = patch(api, chain_id, {"HelloWorld": {"max_replica": 5}}, env="staging")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ACCEPTED"
    assert env_autoscaling(api, chain_id, "staging")["HelloWorld"]["max_replica"] == 5
    assert env_autoscaling(api, chain_id)["HelloWorld"]["max_replica"] == 1
    assert len(api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]) == 1
