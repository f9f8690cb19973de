"""Promotion: candidate, then current; failures, one promotion at a time, rollback, cleanup."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    """This module shares one server per database; each test uses chains of its own."""
    return shared_api


def manifest(name: str, environment: str | None = "production", extra: str | None = None) -> Any:
    """Hello world; with `extra`, HelloWorld also calls a chainlet of that name."""
    m = hello_manifest(name, environment)
    if extra is not None:
        m["chainlets"][0]["dependencies"].append(extra)
        m["chainlets"].append({"name": extra})
    return m


def new_chain(api: Api) -> tuple[str, str, str]:
    """(name, chain id, id of the first deployment, current in production)."""
    name = f"hello-{uuid.uuid4().hex[:8]}"
    body = api.deploy(manifest(name))
    api.wait_current(body["chain_id"], body["chain_deployment"]["id"])
    return name, body["chain_id"], body["chain_deployment"]["id"]


def deploy_unpromoted(api: Api, chain_id: str) -> str:
    response = api.post(
        "/v1/chains/deploy",
        json={**manifest("ignored", None), "chain_name": None, "chain_id": chain_id},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["chain_deployment"]["environment"] is None
    return str(body["chain_deployment"]["id"])


def promote(api: Api, chain_id: str, deployment_id: str, env: str = "production", **kw: Any) -> Any:
    return api.post(
        f"/v1/chains/{chain_id}/environments/{env}/promote",
        json={"deployment_id": deployment_id, **kw},
    )


def wait_ticks(api: Api, n: int = 3) -> None:
    """Lets the reconciler run `n` more ticks, so that a change it would make has been made."""
    reconciler = api.client.app.state.reconciler  # type: ignore[attr-defined]
    target = reconciler.ticks + n
    api.wait_for(lambda: reconciler.ticks >= target, what=f"{n} reconciler ticks")


def test_candidate_until_active_and_one_promotion_at_a_time(make_api: Any) -> None:
    api: Api = make_api(sim_ready_delay=0.3)
    name, chain_id, v1 = new_chain(api)
    v2 = deploy_unpromoted(api, chain_id)
    v3 = deploy_unpromoted(api, chain_id)

    response = promote(api, chain_id, v2)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == v2
    env = api.environment(chain_id)
    assert env["current_deployment"]["id"] == v1
    assert env["candidate_deployment"]["id"] == v2
    assert env["candidate_deployment"]["status"] != "ACTIVE"

    # While v2 is the candidate, nothing else may be promoted into production.
    second = promote(api, chain_id, v3)
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "PROMOTION_IN_PROGRESS"
    deploy = api.post("/v1/chains/deploy", json=manifest(name))
    assert deploy.status_code == 409, deploy.text
    assert deploy.json()["code"] == "PROMOTION_IN_PROGRESS"
    still = api.environment(chain_id)
    assert still["current_deployment"]["id"] == v1
    assert still["candidate_deployment"]["id"] == v2
    # Nor may the candidate be deleted or deactivated.
    for refused in (
        api.delete(f"/v1/chains/{chain_id}/deployments/{v2}"),
        api.post(f"/v1/chains/{chain_id}/deployments/{v2}/deactivate"),
    ):
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "DEPLOYMENT_IN_USE"
        assert "candidate" in refused.json()["error"]
    listed = api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]
    assert sorted(d["id"] for d in listed) == sorted([v1, v2, v3])

    env = api.wait_current(chain_id, v2)
    assert env["current_deployment"]["status"] == "ACTIVE"
    assert env["current_deployment"]["environment"] == "production"
    old = api.wait_status(chain_id, v1, "SCALED_TO_ZERO")
    assert old["environment"] is None
    assert api.deployment(chain_id, v3)["environment"] is None


@pytest.mark.parametrize(
    ("config", "failed_status"),
    [
        ({"sim_fail_build": "^Broken$"}, "BUILD_FAILED"),
        ({"sim_fail_deploy": "^Broken$"}, "DEPLOY_FAILED"),
    ],
    ids=["build", "deploy"],
)
def test_failed_candidate_leaves_the_environment_as_it_was(
    make_api: Any, config: dict[str, str], failed_status: str
) -> None:
    api: Api = make_api(**config)
    name, chain_id, v1 = new_chain(api)
    response = api.post("/v1/chains/deploy", json=manifest(name, extra="Broken"))
    assert response.status_code == 200, response.text
    v2 = response.json()["chain_deployment"]["id"]
    assert api.environment(chain_id)["candidate_deployment"]["id"] == v2

    failed = api.wait_status(chain_id, v2, failed_status)
    assert failed["environment"] is None
    broken = {c["name"]: c["status"] for c in failed["chainlets"]}["Broken"]
    assert broken == failed_status

    env = api.wait_for(
        lambda: (e := api.environment(chain_id))["candidate_deployment"] is None and e,
        what="candidate cleared",
    )
    assert env["current_deployment"]["id"] == v1
    assert env["current_deployment"]["status"] == "ACTIVE"
    assert env["current_deployment"]["environment"] == "production"
    # The environment's settings are still v1's: the failed candidate left nothing behind.
    assert {s["chainlet_name"] for s in env["chainlet_settings"]} == {"HelloWorld", "RandInt"}
    # Nor does it keep replicas of its healthy chainlets running; v1 keeps its own.
    runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    api.wait_for(
        lambda: not [r for r in runtime.replicas() if r.deployment_id == v2],
        what="the failed deployment's replicas to stop",
    )
    wait_ticks(api)
    failed = api.deployment(chain_id, v2)
    assert failed["status"] == failed_status
    assert all(c["active_replica_count"] == 0 for c in failed["chainlets"])
    assert len([r for r in runtime.replicas() if r.deployment_id == v1]) == 2
    assert api.deployment(chain_id, v1)["status"] == "ACTIVE"

    # A failed deployment cannot be promoted; the next good deploy can.
    refused = promote(api, chain_id, v2)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "DEPLOYMENT_FAILED"
    v3 = api.deploy(manifest(name))["chain_deployment"]["id"]
    api.wait_current(chain_id, v3)


def test_rollback_to_an_older_deployment(api: Api) -> None:
    name, chain_id, v1 = new_chain(api)
    v2 = api.deploy(manifest(name))["chain_deployment"]["id"]
    api.wait_current(chain_id, v2)
    api.wait_status(chain_id, v1, "SCALED_TO_ZERO")

    response = promote(api, chain_id, v1)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == v1  # same settings: the deployment itself, not a copy
    env = api.wait_current(chain_id, v1)
    assert env["current_deployment"]["status"] == "ACTIVE"
    assert env["current_deployment"]["environment"] == "production"
    assert all(c["active_replica_count"] >= 1 for c in env["current_deployment"]["chainlets"])
    previous = api.wait_status(chain_id, v2, "SCALED_TO_ZERO")
    assert previous["environment"] is None
    assert len(api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]) == 2


def test_promote_without_scaling_down_keeps_the_previous_active(api: Api) -> None:
    _, chain_id, v1 = new_chain(api)
    v2 = deploy_unpromoted(api, chain_id)
    # Promoted while still building, so the reconciler finishes the promotion and must remember
    # the flag until then.
    response = promote(api, chain_id, v2, scale_down_previous_deployment=False)
    assert response.status_code == 200, response.text
    assert response.json()["status"] != "ACTIVE"
    api.wait_current(chain_id, v2)
    wait_ticks(api)
    previous = api.deployment(chain_id, v1)
    assert previous["status"] == "ACTIVE"
    assert previous["environment"] is None
    assert all(c["active_replica_count"] == 1 for c in previous["chainlets"])
    # The environment's own strategy is untouched by the one-off flag.
    ps = api.environment(chain_id)["promotion_settings"]
    assert ps["promotion_cleanup_strategy"] == "SCALE_TO_ZERO"

    # The next promotion, without the flag, scales down again.
    assert promote(api, chain_id, v1).status_code == 200
    api.wait_current(chain_id, v1)
    assert api.wait_status(chain_id, v2, "SCALED_TO_ZERO")["environment"] is None


def test_promoting_an_inactive_deployment_activates_it(api: Api) -> None:
    _, chain_id, v1 = new_chain(api)
    v2 = deploy_unpromoted(api, chain_id)
    api.wait_status(chain_id, v2, "ACTIVE")
    deactivated = api.post(f"/v1/chains/{chain_id}/deployments/{v2}/deactivate")
    assert deactivated.status_code == 200, deactivated.text
    api.wait_status(chain_id, v2, "INACTIVE")

    response = promote(api, chain_id, v2)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == v2
    assert response.json()["status"] != "INACTIVE"
    env = api.wait_current(chain_id, v2)
    assert env["current_deployment"]["status"] == "ACTIVE"
    assert all(c["active_replica_count"] == 1 for c in env["current_deployment"]["chainlets"])
    assert api.wait_status(chain_id, v1, "SCALED_TO_ZERO")["environment"] is None


def test_promoting_the_current_deployment_changes_nothing(api: Api) -> None:
    _, chain_id, v1 = new_chain(api)
    before = api.environment(chain_id)
    response = promote(api, chain_id, v1)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == v1
    after = api.environment(chain_id)
    assert after["current_deployment"]["id"] == v1 and after["candidate_deployment"] is None
    assert after["chainlet_settings"] == before["chainlet_settings"]
    assert len(api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]) == 1


def test_redeploy_on_promotion_promotes_a_copy(api: Api) -> None:
    _, chain_id, v1 = new_chain(api)
    v2 = deploy_unpromoted(api, chain_id)
    patched = api.patch(
        f"/v1/chains/{chain_id}/environments/production",
        json={"promotion_settings": {"redeploy_on_promotion": True}},
    )
    assert patched.status_code == 200, patched.text

    response = promote(api, chain_id, v2)
    assert response.status_code == 200, response.text
    copy = response.json()["id"]
    assert copy not in (v1, v2)
    api.wait_current(chain_id, copy)
    assert api.deployment(chain_id, v2)["environment"] is None
    ids = {d["id"] for d in api.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]}
    assert ids == {v1, v2, copy}


@pytest.mark.parametrize(
    ("env", "deployment", "code"),
    [
        ("production", "nosuchdeployment", "DEPLOYMENT_NOT_FOUND"),
        ("staging", None, "ENVIRONMENT_NOT_FOUND"),
    ],
)
def test_promote_unknown_is_404(api: Api, env: str, deployment: str | None, code: str) -> None:
    _, chain_id, v1 = new_chain(api)
    response = promote(api, chain_id, deployment or v1, env=env)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == code
    assert api.environment(chain_id)["current_deployment"]["id"] == v1
