"""GET /v1/chains/{chain_id}/environments/{env_name}/live: the dashboard's chainyard extension."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chainyard.services import api_keys
from tests.support.server import Api, hello_manifest

SERIES = ("ready", "starting", "in_flight", "queued")


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def _live_path(chain_id: str, env: str = "production") -> str:
    return f"/v1/chains/{chain_id}/environments/{env}/live"


def _deployed(api: Api) -> tuple[str, str]:
    body = api.deploy(hello_manifest(chain_name=f"live-{uuid.uuid4().hex[:8]}"))
    chain_id, dep_id = body["chain_id"], body["chain_deployment"]["id"]
    api.wait_current(chain_id, dep_id)
    return chain_id, dep_id


def test_live_figures_of_the_current_deployment(api: Api) -> None:
    chain_id, dep_id = _deployed(api)

    def settled() -> dict[str, Any] | None:
        response = api.get(_live_path(chain_id), params={"window_seconds": 60})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        chainlets = body["deployments"][0]["chainlets"]
        # The sampler runs once a second: wait until it has seen the replicas too.
        done = all(c["replicas_ready"] == 1 and c["series"]["ready"][-1] == 1 for c in chainlets)
        return body if done else None

    body = api.wait_for(settled, timeout=20, what="ready replicas in the live series")
    assert body["chain_id"] == chain_id
    assert body["environment"] == "production"
    assert body["window_seconds"] == 60
    assert body["sample_interval_seconds"] == 1.0
    assert [(d["id"], d["role"], d["status"]) for d in body["deployments"]] == [
        (dep_id, "current", "ACTIVE")
    ]
    chainlets = body["deployments"][0]["chainlets"]
    assert [c["name"] for c in chainlets] == ["HelloWorld", "RandInt"]
    for c in chainlets:
        assert c["status"] == "ACTIVE"
        assert c["instance_type_id"] == "1x2"
        assert c["replicas_desired"] == 1
        assert (c["replicas_starting"], c["in_flight"], c["queued"]) == (0, 0, 0)
        series = c["series"]
        assert len({len(series["t"]), *(len(series[k]) for k in SERIES)}) == 1
        assert series["t"] == sorted(series["t"])
        assert body["now"] - 60 <= series["t"][0] <= body["now"]


def test_the_window_is_bounded(api: Api) -> None:
    chain_id, _ = _deployed(api)
    for bad in (0, 601, "x"):
        response = api.get(_live_path(chain_id), params={"window_seconds": bad})
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "INVALID_REQUEST"
    assert api.get(_live_path(chain_id)).json()["window_seconds"] == 600


def test_the_same_keys_and_workspaces_as_the_rest_of_the_api(api: Api) -> None:
    chain_id, _ = _deployed(api)
    path = _live_path(chain_id)
    assert api.client.get(path).status_code == 401
    assert api.client.get(path, headers={"Authorization": "Bearer nope.nope"}).status_code == 401
    invoke = api_keys.admin_create_key(api.core, "default", "WORKSPACE_INVOKE")
    assert api.get(path, key=invoke).status_code == 403

    other = api_keys.admin_create_key(api.core, f"other-{uuid.uuid4().hex[:6]}", "PERSONAL")
    response = api.get(path, key=other)
    assert response.status_code == 404
    assert response.json()["code"] == "CHAIN_NOT_FOUND"
    # The other workspace's own chain of the same name does not make this one visible.
    api.deploy(hello_manifest(), key=other)
    assert api.get(path, key=other).status_code == 404

    missing_env = api.get(_live_path(chain_id, "staging"))
    assert missing_env.status_code == 404
    assert missing_env.json()["code"] == "ENVIRONMENT_NOT_FOUND"
    assert api.get(_live_path("nochain0")).status_code == 404


def test_a_candidate_shows_with_its_role(make_api: Any) -> None:
    # Without a reconciler the first deployment stays the environment's candidate.
    api: Api = make_api(run_reconciler=False)
    body = api.deploy(hello_manifest())
    response = api.get(_live_path(body["chain_id"]))
    assert response.status_code == 200, response.text
    [deployment] = response.json()["deployments"]
    assert deployment["id"] == body["chain_deployment"]["id"]
    assert deployment["role"] == "candidate"
    assert deployment["status"] == "BUILDING"
    assert all(c["replicas_ready"] == 0 for c in deployment["chainlets"])


def test_listed_in_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    operation = paths["/v1/chains/{chain_id}/environments/{env_name}/live"]["get"]
    assert "chainyard extension" in operation["summary"]
