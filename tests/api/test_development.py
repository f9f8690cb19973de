"""Development deployments (docs/development.md): a push with `development: true` makes the
chain's one development deployment, replacing the one it had; /development/run_remote and
/development/wake reach it, in the path and Host forms; it cannot be promoted."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chainyard.services import inference
from chainyard.store.chains import ChainDeployment
from tests.support.server import Api, hello_manifest

DEVELOPMENT_AUTOSCALING = {
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


def unique() -> str:
    return f"dev-{uuid.uuid4().hex[:8]}"


def dev_manifest(name: str) -> dict[str, Any]:
    return {**hello_manifest(name, environment=None), "development": True}


def deploy_raw(api: Api, manifest: dict[str, Any]) -> httpx.Response:
    return api.post("/v1/chains/deploy", json=manifest)


def deployments(api: Api, chain_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/chains/{chain_id}/deployments")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deployments"]
    return found


def development_ids(api: Api, chain_id: str) -> list[str]:
    return [d["id"] for d in deployments(api, chain_id) if d["is_development"]]


def entry_of(deployment: dict[str, Any]) -> str:
    return str(next(c["id"] for c in deployment["chainlets"] if c["name"] == "HelloWorld"))


def published_and_development(api: Api) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A chain with a deployment serving production and a development deployment, both ACTIVE."""
    name = unique()
    published = api.deploy(hello_manifest(name))
    chain_id = published["chain_id"]
    api.wait_current(chain_id, published["chain_deployment"]["id"])
    development = api.deploy(dev_manifest(name))["chain_deployment"]
    api.wait_status(chain_id, development["id"], "ACTIVE")
    return chain_id, api.deployment(chain_id, published["chain_deployment"]["id"]), development


# --- the push ---------------------------------------------------------------------------------


def test_a_development_push_makes_the_development_deployment(api: Api) -> None:
    body = api.deploy(dev_manifest(unique()))
    chain_id, made = body["chain_id"], body["chain_deployment"]
    assert made["is_development"] is True and made["environment"] is None
    for chainlet in made["chainlets"]:
        assert chainlet["autoscaling_settings"] == DEVELOPMENT_AUTOSCALING
    with api.core.db.read() as session:
        row = session.get(ChainDeployment, made["id"])
        assert row is not None and row.name == "development"
    active = api.wait_status(chain_id, made["id"], "ACTIVE")
    assert active["is_development"] is True
    # It made no environment, and promoted nothing.
    listed = api.get(f"/v1/chains/{chain_id}/environments").json()["environments"]
    assert listed == []


def test_published_deployments_say_they_are_not_development(api: Api) -> None:
    body = api.deploy(hello_manifest(unique(), environment=None))
    assert body["chain_deployment"]["is_development"] is False
    chain_id = body["chain_id"]
    assert api.deployment(chain_id, body["chain_deployment"]["id"])["is_development"] is False
    assert [d["is_development"] for d in deployments(api, chain_id)] == [False]


def test_a_second_development_push_replaces_the_first(api: Api) -> None:
    name = unique()
    first = api.deploy(dev_manifest(name))
    chain_id, first_id = first["chain_id"], first["chain_deployment"]["id"]
    api.wait_status(chain_id, first_id, "ACTIVE")

    second = api.deploy(dev_manifest(name))
    second_id = second["chain_deployment"]["id"]
    assert second["chain_id"] == chain_id and second_id != first_id
    gone = api.get(f"/v1/chains/{chain_id}/deployments/{first_id}")
    assert gone.status_code == 404, gone.text
    assert development_ids(api, chain_id) == [second_id]
    assert len(deployments(api, chain_id)) == 1
    # Deleted as DELETE deletes one: the audit log says so.
    audit = api.get(f"/v1/chains/{chain_id}/audit_logs", params={"limit": 50}).json()["items"]
    deleted = [e for e in audit if e["event_type"] == "CHAIN_DEPLOYMENT_DELETED"]
    assert [e["event_data"]["chain_deployment_id"] for e in deleted] == [first_id]
    api.wait_status(chain_id, second_id, "ACTIVE")


@pytest.mark.parametrize("chain_exists", [False, True])
def test_concurrent_development_pushes_leave_one(api: Api, chain_exists: bool) -> None:
    name = unique()
    if chain_exists:
        api.deploy(hello_manifest(name, environment=None))
    n = 4
    barrier = threading.Barrier(n)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        response = deploy_raw(api, dev_manifest(name))
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(responses) == n
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    chain_ids = {r.json()["chain_id"] for r in responses}
    assert len(chain_ids) == 1
    (chain_id,) = chain_ids
    left = development_ids(api, chain_id)
    assert len(left) == 1
    assert left[0] in {r.json()["chain_deployment"]["id"] for r in responses}
    assert len(deployments(api, chain_id)) == 1 + chain_exists


def test_a_published_push_leaves_the_development_deployment_alone(api: Api) -> None:
    name = unique()
    development = api.deploy(dev_manifest(name))
    chain_id, dev_id = development["chain_id"], development["chain_deployment"]["id"]
    published = api.deploy(hello_manifest(name))["chain_deployment"]["id"]
    api.wait_current(chain_id, published)
    unpromoted = api.deploy(hello_manifest(name, environment=None))["chain_deployment"]["id"]
    by_id = {d["id"]: d for d in deployments(api, chain_id)}
    assert set(by_id) == {dev_id, published, unpromoted}
    assert by_id[dev_id]["is_development"] is True and by_id[dev_id]["environment"] is None
    assert by_id[published]["is_development"] is False
    assert by_id[published]["environment"] == "production"


def test_development_with_an_environment_or_another_name_is_refused(api: Api) -> None:
    name = unique()
    for extra, words in (
        ({"environment": "production"}, "cannot be promoted into an environment"),
        ({"deployment_name": "mine"}, "always named 'development'"),
    ):
        refused = deploy_raw(api, {**dev_manifest(name), **extra})
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "INVALID_MANIFEST"
        assert words in refused.json()["error"]
    assert name not in {c["name"] for c in api.get("/v1/chains").json()["chains"]}
    # Naming it as it is named anyway is fine.
    named = api.deploy({**dev_manifest(name), "deployment_name": "development"})
    assert named["chain_deployment"]["is_development"] is True


def test_a_development_deployment_cannot_be_promoted(api: Api) -> None:
    chain_id, published, development = published_and_development(api)
    before = api.environment(chain_id)
    refused = api.post(
        f"/v1/chains/{chain_id}/environments/production/promote",
        json={"deployment_id": development["id"]},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "DEVELOPMENT_NOT_PROMOTABLE"
    assert "push a published deployment" in refused.json()["error"]
    after = api.environment(chain_id)
    assert after["current_deployment"]["id"] == published["id"]
    assert after["candidate_deployment"] is None
    assert after["promotion_settings"] == before["promotion_settings"]

    # Nor copied into an environment that redeploys on promotion.
    created = api.post(
        f"/v1/chains/{chain_id}/environments",
        json={"name": "staging", "promotion_settings": {"redeploy_on_promotion": True}},
    )
    assert created.status_code == 200, created.text
    count = len(deployments(api, chain_id))
    refused = api.post(
        f"/v1/chains/{chain_id}/environments/staging/promote",
        json={"deployment_id": development["id"]},
    )
    assert refused.status_code == 400, refused.text
    assert len(deployments(api, chain_id)) == count
    assert api.environment(chain_id, "staging")["current_deployment"] is None


# --- inference routes -------------------------------------------------------------------------


@pytest.fixture
def forwarded(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The chainlets requests are forwarded to; the answer names the chainlet."""
    seen: list[str] = []
    router = api.client.app.state.router  # type: ignore[attr-defined]

    async def forward(
        request: Request, chainlet_id: str, addresses: list[str], *, limit: int = 1
    ) -> Response:
        seen.append(chainlet_id)
        return JSONResponse({"chainlet_id": chainlet_id})

    monkeypatch.setattr(router, "forward", forward)
    return seen


def host(chain_id: str) -> dict[str, str]:
    return {"Host": f"chain-{chain_id}.api.example.com"}


def test_development_run_remote_reaches_the_development_deployment(
    api: Api, forwarded: list[str]
) -> None:
    chain_id, published, development = published_and_development(api)
    production = api.post(f"/chains/{chain_id}/production/run_remote", json={})
    assert production.json() == {"chainlet_id": entry_of(published)}
    # Twice each: the second answer comes from the route cache, which keeps them apart.
    for _ in range(2):
        by_path = api.post(f"/chains/{chain_id}/development/run_remote", json={})
        assert by_path.status_code == 200, by_path.text
        assert by_path.json() == {"chainlet_id": entry_of(development)}
        by_host = api.client.post(
            "/development/run_remote", headers={**api.headers(), **host(chain_id)}, json={}
        )
        assert by_host.status_code == 200, by_host.text
        assert by_host.json() == {"chainlet_id": entry_of(development)}
    assert api.post(f"/chains/{chain_id}/production/run_remote", json={}).json() == {
        "chainlet_id": entry_of(published)
    }

    # A new development push: the next call goes to the new deployment (held until it is up).
    name = api.get(f"/v1/chains/{chain_id}").json()["name"]
    replacement = api.deploy(dev_manifest(name))["chain_deployment"]
    moved = api.post(f"/chains/{chain_id}/development/run_remote", json={})
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"chainlet_id": entry_of(replacement)}


def test_development_wake_reaches_the_development_deployment(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id, published, development = published_and_development(api)
    woken: list[str] = []
    monkeypatch.setattr(inference, "wake", lambda _core, deployment_id: woken.append(deployment_id))
    by_path = api.post(f"/chains/{chain_id}/development/wake")
    assert by_path.status_code == 202, by_path.text
    by_host = api.client.post("/development/wake", headers={**api.headers(), **host(chain_id)})
    assert by_host.status_code == 202, by_host.text
    assert api.post(f"/chains/{chain_id}/production/wake").status_code == 202
    assert woken == [development["id"], development["id"], published["id"]]


def test_without_a_development_deployment_the_routes_answer_404(api: Api) -> None:
    name = unique()
    published = api.deploy(hello_manifest(name))
    chain_id = published["chain_id"]
    api.wait_current(chain_id, published["chain_deployment"]["id"])

    def answers() -> list[httpx.Response]:
        with_host = {**api.headers(), **host(chain_id)}
        return [
            api.post(f"/chains/{chain_id}/development/run_remote", json={}),
            api.post(f"/chains/{chain_id}/development/wake"),
            api.client.post("/development/run_remote", headers=with_host, json={}),
            api.client.post("/development/wake", headers=with_host),
        ]

    for answer in answers():
        assert answer.status_code == 404, answer.text
        assert answer.json()["error_code"] == "model_does_not_exist"
        assert "no development deployment" in answer.json()["error"]

    # A deactivated one serves nothing either.
    development = api.deploy(dev_manifest(name))["chain_deployment"]["id"]
    api.wait_status(chain_id, development, "ACTIVE")
    deactivated = api.post(f"/v1/chains/{chain_id}/deployments/{development}/deactivate")
    assert deactivated.status_code == 200, deactivated.text
    for answer in answers():
        assert answer.status_code == 404, answer.text
        assert answer.json()["error_code"] == "model_does_not_exist"
