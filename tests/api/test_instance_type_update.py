"""POST /v1/chains/{chain_id}/environments/{env}/chainlet_settings/instance_types/update."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    """This module shares one server per database; each test uses chains of its own."""
    return shared_api


def update_path(chain_id: str, env: str = "production") -> str:
    return f"/v1/chains/{chain_id}/environments/{env}/chainlet_settings/instance_types/update"


def deployed(api: Api) -> tuple[str, str]:
    """A new chain whose first deployment is the current one in production."""
    body = api.deploy(hello_manifest(f"hello-{uuid.uuid4().hex[:8]}"))
    chain_id, deployment_id = body["chain_id"], body["chain_deployment"]["id"]
    api.wait_current(chain_id, deployment_id)
    return chain_id, deployment_id


@pytest.fixture(scope="module")
def steady(api: Api) -> tuple[str, str]:
    """A chain shared by tests whose requests must change nothing."""
    return deployed(api)


def update(api: Api, chain_id: str, *pairs: tuple[str, str], **kw: Any) -> httpx.Response:
    updates = [{"chainlet_name": n, "instance_type_id": t} for n, t in pairs]
    return api.post(update_path(chain_id, kw.pop("env", "production")), json={"updates": updates})


def types_of(settings: list[dict[str, Any]]) -> dict[str, str]:
    return {s["chainlet_name"]: s["instance_type"]["id"] for s in settings}


def deployment_ids(api: Api, chain_id: str) -> list[str]:
    response = api.get(f"/v1/chains/{chain_id}/deployments")
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["deployments"]]


def audit_ids(api: Api, chain_id: str) -> list[str]:
    response = api.get(f"/v1/chains/{chain_id}/audit_logs", params={"limit": 200})
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["items"]]


def snapshot(api: Api, chain_id: str) -> dict[str, Any]:
    env = api.environment(chain_id)
    return {
        "settings": env["chainlet_settings"],
        "current": env["current_deployment"]["id"] if env["current_deployment"] else None,
        "candidate": (env["candidate_deployment"] or {}).get("id"),
        "deployments": deployment_ids(api, chain_id),
        "audit": audit_ids(api, chain_id),
    }


def set_cleanup(api: Api, chain_id: str, strategy: str) -> None:
    response = api.patch(
        f"/v1/chains/{chain_id}/environments/production",
        json={"promotion_settings": {"promotion_cleanup_strategy": strategy}},
    )
    assert response.status_code == 200, response.text


# --- validation: any error is a 4xx and changes nothing ---------------------------------------


@pytest.mark.parametrize(
    ("pairs", "status", "code", "needle"),
    [
        ([("Nope", "2x8")], 404, "CHAINLET_NOT_FOUND", "'Nope'"),
        ([("HelloWorld", "99x99")], 400, "UNKNOWN_INSTANCE_TYPE", "'99x99'"),
        ([("HelloWorld", "2x8"), ("HelloWorld", "4x16")], 400, "DUPLICATE_CHAINLET", "twice"),
        ([], 400, "EMPTY_UPDATE", "at least one"),
        # One good and one bad update: the good one is not applied either.
        ([("HelloWorld", "2x8"), ("RandInt", "99x99")], 400, "UNKNOWN_INSTANCE_TYPE", "99x99"),
        ([("HelloWorld", "2x8"), ("Ghost", "1x4")], 404, "CHAINLET_NOT_FOUND", "'Ghost'"),
    ],
    ids=["unknown-chainlet", "unknown-type", "twice", "empty", "good+bad-type", "good+bad-name"],
)
def test_invalid_update_changes_nothing(
    api: Api,
    steady: tuple[str, str],
    pairs: list[tuple[str, str]],
    status: int,
    code: str,
    needle: str,
) -> None:
    chain_id, _ = steady
    before = snapshot(api, chain_id)
    response = update(api, chain_id, *pairs)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert needle in response.json()["error"]
    assert snapshot(api, chain_id) == before
    assert types_of(before["settings"]) == {"HelloWorld": "1x2", "RandInt": "1x2"}


def test_unknown_environment_is_404(api: Api, steady: tuple[str, str]) -> None:
    chain_id, _ = steady
    before = snapshot(api, chain_id)
    response = update(api, chain_id, ("HelloWorld", "2x8"), env="staging")
    assert response.status_code == 404
    assert response.json()["code"] == "ENVIRONMENT_NOT_FOUND"
    assert snapshot(api, chain_id) == before


def test_malformed_body_is_400(api: Api, steady: tuple[str, str]) -> None:
    chain_id, _ = steady
    before = snapshot(api, chain_id)
    response = api.post(update_path(chain_id), json={"updates": [{"chainlet_name": "HelloWorld"}]})
    assert response.status_code == 400
    assert "instance_type_id" in response.json()["error"]
    assert snapshot(api, chain_id) == before


# --- no change --------------------------------------------------------------------------------


def test_same_types_need_no_redeployment(api: Api, steady: tuple[str, str]) -> None:
    chain_id, deployment_id = steady
    before = snapshot(api, chain_id)
    # "CPU:1x2" is an alias of the current "1x2".
    response = update(api, chain_id, ("HelloWorld", "1x2"), ("RandInt", "CPU:1x2"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requires_redeployment"] is False
    assert body["chain_deployment"] is None
    assert types_of(body["chainlet_environment_settings"]) == {
        "HelloWorld": "1x2",
        "RandInt": "1x2",
    }
    assert snapshot(api, chain_id) == before
    assert before["current"] == deployment_id


# --- a redeployment ---------------------------------------------------------------------------


def test_update_creates_promotes_and_cleans_up(api: Api) -> None:
    chain_id, old_id = deployed(api)
    response = update(api, chain_id, ("HelloWorld", "2x8"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requires_redeployment"] is True
    new = body["chain_deployment"]
    assert new is not None and new["id"] != old_id
    assert new["chain_id"] == chain_id
    assert new["status"] in ("BUILDING", "DEPLOYING", "ACTIVE")
    instance_names = {c["name"]: c["instance_type_name"] for c in new["chainlets"]}
    assert instance_names == {"HelloWorld": "2 vCPU, 8 GiB", "RandInt": "1 vCPU, 2 GiB"}
    assert types_of(body["chainlet_environment_settings"]) == {
        "HelloWorld": "2x8",
        "RandInt": "1x2",
    }
    assert set(deployment_ids(api, chain_id)) == {old_id, new["id"]}

    env = api.wait_current(chain_id, new["id"])
    assert env["current_deployment"]["status"] == "ACTIVE"
    assert env["current_deployment"]["environment"] == "production"
    assert types_of(env["chainlet_settings"]) == {"HelloWorld": "2x8", "RandInt": "1x2"}
    # Default cleanup: the previous deployment scales to zero and leaves the environment.
    old = api.wait_status(chain_id, old_id, "SCALED_TO_ZERO")
    assert old["environment"] is None
    assert all(c["active_replica_count"] == 0 for c in old["chainlets"])


@pytest.mark.parametrize(
    ("strategy", "old_status"),
    [("KEEP", "ACTIVE"), ("SCALE_TO_ZERO", "SCALED_TO_ZERO"), ("DEACTIVATE", "INACTIVE")],
)
def test_cleanup_strategy_decides_the_previous_deployment(
    api: Api, strategy: str, old_status: str
) -> None:
    chain_id, old_id = deployed(api)
    set_cleanup(api, chain_id, strategy)
    response = update(api, chain_id, ("RandInt", "1x4"))
    assert response.status_code == 200, response.text
    new_id = response.json()["chain_deployment"]["id"]
    api.wait_current(chain_id, new_id)
    old = api.wait_status(chain_id, old_id, old_status)
    assert old["environment"] is None
    if strategy == "KEEP":
        assert all(c["active_replica_count"] == 1 for c in old["chainlets"])
    # The new deployment really runs the new type; the other chainlet keeps its own.
    new = api.deployment(chain_id, new_id)
    assert {c["name"]: c["instance_type_name"] for c in new["chainlets"]} == {
        "HelloWorld": "1 vCPU, 2 GiB",
        "RandInt": "1 vCPU, 4 GiB",
    }


def test_second_update_while_promoting_is_409_and_changes_nothing(make_api: Any) -> None:
    api: Api = make_api(sim_ready_delay=0.5)
    chain_id, _ = deployed(api)
    first = update(api, chain_id, ("HelloWorld", "2x8"))
    assert first.status_code == 200, first.text
    candidate = first.json()["chain_deployment"]["id"]
    before = snapshot(api, chain_id)
    assert before["candidate"] == candidate

    second = update(api, chain_id, ("RandInt", "4x16"))
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "PROMOTION_IN_PROGRESS"
    assert snapshot(api, chain_id) == before
    assert types_of(before["settings"]) == {"HelloWorld": "2x8", "RandInt": "1x2"}


# --- an environment without a deployment ------------------------------------------------------


def test_environment_without_deployment_stores_settings(api: Api) -> None:
    chain_id, prod_id = deployed(api)
    created = api.post(
        f"/v1/chains/{chain_id}/environments",
        json={
            "name": "staging",
            "chainlet_settings": [
                {"chainlet_name": "HelloWorld", "instance_type_id": "1x2"},
                {"chainlet_name": "RandInt", "instance_type_id": "1x2"},
            ],
        },
    )
    assert created.status_code == 200, created.text
    deployments_before = deployment_ids(api, chain_id)

    response = update(api, chain_id, ("HelloWorld", "4x16"), env="staging")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requires_redeployment"] is False
    assert body["chain_deployment"] is None
    assert types_of(body["chainlet_environment_settings"]) == {
        "HelloWorld": "4x16",
        "RandInt": "1x2",
    }
    staging = api.environment(chain_id, "staging")
    assert staging["current_deployment"] is None and staging["candidate_deployment"] is None
    assert types_of(staging["chainlet_settings"]) == {"HelloWorld": "4x16", "RandInt": "1x2"}
    assert deployment_ids(api, chain_id) == deployments_before
    # Production is untouched.
    production = api.environment(chain_id)
    assert production["current_deployment"]["id"] == prod_id
    assert types_of(production["chainlet_settings"]) == {"HelloWorld": "1x2", "RandInt": "1x2"}

    # Promoting into staging later uses the stored settings (a copy with the new type).
    promoted = api.post(
        f"/v1/chains/{chain_id}/environments/staging/promote", json={"deployment_id": prod_id}
    )
    assert promoted.status_code == 200, promoted.text
    copy = promoted.json()
    assert copy["id"] != prod_id
    assert {c["name"]: c["instance_type_name"] for c in copy["chainlets"]}["HelloWorld"] == (
        "4 vCPU, 16 GiB"
    )
    api.wait_current(chain_id, copy["id"], env="staging")


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_updates_never_both_win_silently(api: Api) -> None:
    chain_id, old_id = deployed(api)
    requests = {"a": ("HelloWorld", "2x8"), "b": ("HelloWorld", "4x16")}
    barrier = threading.Barrier(len(requests))
    responses: dict[str, httpx.Response] = {}

    def run(key: str) -> None:
        barrier.wait()
        responses[key] = update(api, chain_id, requests[key])

    threads = [threading.Thread(target=run, args=(k,)) for k in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert set(responses) == set(requests)

    winners = [k for k, r in responses.items() if r.status_code == 200]
    losers = [k for k, r in responses.items() if r.status_code != 200]
    assert winners, {k: r.text for k, r in responses.items()}
    for k in losers:
        assert responses[k].status_code == 409, responses[k].text
        assert responses[k].json()["code"] == "PROMOTION_IN_PROGRESS"
    created = [responses[k].json()["chain_deployment"]["id"] for k in winners]
    assert all(responses[k].json()["requires_redeployment"] for k in winners)
    # Every deployment that exists is the original or one a winner was told about.
    assert sorted(deployment_ids(api, chain_id)) == sorted([old_id, *created])

    # The environment ends on the last winner's deployment, with exactly that winner's settings.
    def settled() -> dict[str, Any] | None:
        env = api.environment(chain_id)
        return env if not env["candidate_deployment"] else None

    env = api.wait_for(settled, what="promotions to settle")
    current = env["current_deployment"]["id"]
    assert current in created
    winner = winners[created.index(current)]
    name, type_id = requests[winner]
    assert types_of(env["chainlet_settings"]) == {name: type_id, "RandInt": "1x2"}
    if len(winners) == 1:
        assert len(losers) == 1


# --- audit ------------------------------------------------------------------------------------


def test_audit_rows_name_the_acting_key(api: Api) -> None:
    chain_id, _ = deployed(api)
    created = api.post("/v1/api_keys", json={"name": "ops", "type": "WORKSPACE_MANAGE_ALL"})
    assert created.status_code == 200, created.text
    key = created.json()["api_key"]
    prefix = key.split(".")[0]
    assert prefix != api.key.split(".")[0]

    response = api.post(
        update_path(chain_id),
        key=key,
        json={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
    )
    assert response.status_code == 200, response.text
    new = response.json()["chain_deployment"]
    new_id = new["id"]
    randint_id = {c["name"]: c["id"] for c in new["chainlets"]}["RandInt"]

    logs = api.get(
        f"/v1/chains/{chain_id}/audit_logs",
        params={"chain_deployment_ids": [new_id], "limit": 200},
    )
    assert logs.status_code == 200, logs.text
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in logs.json()["items"]:
        by_type.setdefault(item["event_type"], []).append(item)

    (changed,) = by_type["CHAINLET_INSTANCE_TYPE_CHANGED"]
    assert changed["actor"]["type"] == "API_KEY"
    assert changed["actor"]["api_key_prefix"] == prefix
    assert changed["event_data"]["chainlet_name"] == "RandInt"
    assert changed["event_data"]["chainlet_id"] == randint_id
    assert changed["event_data"]["instance_type_name"] == "2x8"
    assert changed["event_data"]["chain_deployment_id"] == new_id

    (deployed_row,) = by_type["CHAIN_DEPLOYED"]
    assert deployed_row["actor"]["api_key_prefix"] == prefix
    assert deployed_row["event_data"]["chain_deployment_id"] == new_id
