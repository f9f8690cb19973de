"""The gateway's internal async route (gateway/async_internal.py), which the async runner calls
chains through: opened by the server's own secret only, and refusing deployments that are gone
or inactive as run_remote does (404 model_does_not_exist, which the runner records as
MODEL_DOES_NOT_EXIST)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def secret(api: Api) -> str:
    value: str = api.client.app.state.async_secret  # type: ignore[attr-defined]
    return value


def run(api: Api, deployment_id: str, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = api.client.post(
        f"/internal/async/deployments/{deployment_id}/run_remote", json={"n": 1}, headers=headers
    )
    body: dict[str, object] = response.json()
    return response.status_code, body


def test_only_this_servers_secret_opens_the_route(api: Api) -> None:
    assert len(secret(api)) >= 32
    for token in (None, "wrong", api.key):
        status, body = run(api, "anything", token)
        assert status == 401 and body["error_code"] == "unauthorized"
        ping = api.client.get("/internal/async/ping", headers={"Authorization": f"Bearer {token}"})
        assert ping.status_code == 401
    ping = api.client.get(
        "/internal/async/ping", headers={"Authorization": f"Bearer {secret(api)}"}
    )
    assert ping.status_code == 204
    # Not part of the API's description.
    assert not any("/internal/async" in p for p in api.get("/openapi.json").json()["paths"])


def test_a_deployment_that_is_gone_or_inactive_does_not_exist(api: Api) -> None:
    status, body = run(api, "nosuchdep", secret(api))
    assert (status, body["error_code"]) == (404, "model_does_not_exist")

    name = f"hello-{uuid.uuid4().hex[:8]}"
    first = api.deploy(hello_manifest(name))
    chain_id = first["chain_id"]
    api.wait_current(chain_id, first["chain_deployment"]["id"])
    second = api.deploy(hello_manifest(name, None))["chain_deployment"]["id"]
    api.wait_status(chain_id, second, "ACTIVE")
    response = api.post(f"/v1/chains/{chain_id}/deployments/{second}/deactivate")
    assert response.status_code == 200, response.text
    api.wait_status(chain_id, second, "INACTIVE")
    status, body = run(api, second, secret(api))
    assert (status, body["error_code"]) == (404, "model_does_not_exist")
    assert "INACTIVE" in str(body["error"]) or "no active deployment" in str(body["error"])
