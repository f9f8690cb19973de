"""Chain deployments: list, get, deactivate, activate, delete; and deleting a chain."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from chainyard.reconciler.loop import Reconciler
from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    """This module shares one server per database; each test uses chains of its own."""
    return shared_api


def new_chain(api: Api) -> tuple[str, str, str]:
    """(chain name, chain id, id of its first deployment, current in production)."""
    name = f"hello-{uuid.uuid4().hex[:8]}"
    body = api.deploy(hello_manifest(name))
    api.wait_current(body["chain_id"], body["chain_deployment"]["id"])
    return name, body["chain_id"], body["chain_deployment"]["id"]


def deploy_more(api: Api, name: str, environment: str | None = None) -> str:
    body = api.deploy(hello_manifest(name, environment))
    return str(body["chain_deployment"]["id"])


def listed(api: Api, chain_id: str) -> list[str]:
    response = api.get(f"/v1/chains/{chain_id}/deployments")
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["deployments"]]


def running_replicas(api: Api, deployment_id: str) -> int:
    runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    return sum(1 for r in runtime.replicas() if r.deployment_id == deployment_id)


def action(api: Api, chain_id: str, deployment_id: str, verb: str) -> Any:
    return api.post(f"/v1/chains/{chain_id}/deployments/{deployment_id}/{verb}")


def test_list_newest_first_and_get(api: Api) -> None:
    name, chain_id, v1 = new_chain(api)
    v2 = deploy_more(api, name)
    v3 = deploy_more(api, name)
    assert listed(api, chain_id) == [v3, v2, v1]

    page = api.get(f"/v1/chains/{chain_id}/deployments", params={"limit": 2})
    assert [d["id"] for d in page.json()["deployments"]] == [v3, v2]

    got = api.deployment(chain_id, v1)
    assert got["id"] == v1 and got["chain_id"] == chain_id
    assert got["environment"] == "production"
    assert got["status"] == "ACTIVE"
    chainlets = {c["name"]: c for c in got["chainlets"]}
    assert set(chainlets) == {"HelloWorld", "RandInt"}
    assert all(
        c["status"] == "ACTIVE" and c["active_replica_count"] == 1 for c in chainlets.values()
    )
    assert api.deployment(chain_id, v2)["environment"] is None


def test_unknown_deployment_is_404(api: Api) -> None:
    _, chain_id, _ = new_chain(api)
    _, other_chain, other = new_chain(api)
    for path in (
        f"/v1/chains/{chain_id}/deployments/nope",
        # Another chain's deployment is not found through this chain.
        f"/v1/chains/{chain_id}/deployments/{other}",
    ):
        assert api.get(path).status_code == 404
        assert api.delete(path).status_code == 404
        assert api.post(f"{path}/deactivate").status_code == 404
        assert api.post(f"{path}/activate").status_code == 404
    assert api.deployment(other_chain, other)["status"] == "ACTIVE"


def test_deactivate_then_activate(make_api: Any) -> None:
    # A slower tick keeps DEACTIVATING visible: replicas stop on one tick, STOPPED lands on the
    # next one, which (with no status change to wake it) waits for the interval.
    api: Api = make_api(reconcile_interval=0.25)
    name, chain_id, v1 = new_chain(api)
    v2 = deploy_more(api, name)
    api.wait_status(chain_id, v2, "ACTIVE")
    assert running_replicas(api, v2) == 2

    response = action(api, chain_id, v2, "deactivate")
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    assert api.deployment(chain_id, v2)["status"] == "DEACTIVATING"
    inactive = api.wait_status(chain_id, v2, "INACTIVE")
    assert all(c["status"] == "INACTIVE" for c in inactive["chainlets"])
    assert all(c["active_replica_count"] == 0 for c in inactive["chainlets"])
    assert running_replicas(api, v2) == 0
    # Deactivating again is accepted and changes nothing.
    assert action(api, chain_id, v2, "deactivate").json() == {"success": True}
    assert api.deployment(chain_id, v2)["status"] == "INACTIVE"

    response = action(api, chain_id, v2, "activate")
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    active = api.wait_status(chain_id, v2, "ACTIVE")
    assert all(c["active_replica_count"] == 1 for c in active["chainlets"])
    assert running_replicas(api, v2) == 2
    # The environment never moved.
    assert api.environment(chain_id)["current_deployment"]["id"] == v1

    events = [
        e["event_type"]
        for e in api.get(
            f"/v1/chains/{chain_id}/audit_logs",
            params={"event_type_groups": ["ACTIVATED_DEACTIVATED"], "direction": "ASC"},
        ).json()["items"]
    ]
    assert events == ["CHAIN_DEPLOYMENT_DEACTIVATED", "CHAIN_DEPLOYMENT_ACTIVATED"]


def test_current_deployment_cannot_be_deactivated_or_deleted(api: Api) -> None:
    _, chain_id, v1 = new_chain(api)
    for response in (
        action(api, chain_id, v1, "deactivate"),
        api.delete(f"/v1/chains/{chain_id}/deployments/{v1}"),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "DEPLOYMENT_IN_USE"
        assert "production" in response.json()["error"]
    got = api.deployment(chain_id, v1)
    assert got["status"] == "ACTIVE" and got["environment"] == "production"
    assert listed(api, chain_id) == [v1]


def test_delete_a_deployment_that_serves_nothing(api: Api) -> None:
    name, chain_id, v1 = new_chain(api)
    v2 = deploy_more(api, name)
    api.wait_status(chain_id, v2, "ACTIVE")
    assert running_replicas(api, v2) == 2

    response = api.delete(f"/v1/chains/{chain_id}/deployments/{v2}")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": v2, "deleted": True, "chain_id": chain_id}
    assert api.get(f"/v1/chains/{chain_id}/deployments/{v2}").status_code == 404
    assert api.delete(f"/v1/chains/{chain_id}/deployments/{v2}").status_code == 404
    assert listed(api, chain_id) == [v1]
    assert api.get(f"/v1/chains/{chain_id}").json()["deployments_count"] == 1
    # Its replicas are stopped; the current deployment keeps running.
    api.wait_for(lambda: running_replicas(api, v2) == 0, what="replicas of the deleted deployment")
    assert running_replicas(api, v1) == 2
    assert api.deployment(chain_id, v1)["status"] == "ACTIVE"


def test_delete_chain(api: Api) -> None:
    name, chain_id, v1 = new_chain(api)
    _, other_chain, other = new_chain(api)
    response = api.delete(f"/v1/chains/{chain_id}")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": chain_id, "deleted": True}
    for path in (
        f"/v1/chains/{chain_id}",
        f"/v1/chains/{chain_id}/deployments",
        f"/v1/chains/{chain_id}/deployments/{v1}",
        f"/v1/chains/{chain_id}/environments/production",
    ):
        assert api.get(path).status_code == 404, path
    assert api.delete(f"/v1/chains/{chain_id}").status_code == 404
    names = {c["name"] for c in api.get("/v1/chains").json()["chains"]}
    assert name not in names
    api.wait_for(lambda: running_replicas(api, v1) == 0, what="replicas of the deleted chain")
    # Other chains are untouched, and the name can be used again.
    assert api.deployment(other_chain, other)["status"] == "ACTIVE"
    again = api.deploy(hello_manifest(name))
    assert again["chain_id"] != chain_id


def test_reconciler_stops_when_stopped_during_a_wake_up() -> None:
    """A server shuts down (and a deployment's replicas stop) even when the reconciler is stopped
    while a wake-up completes; asyncio.wait_for on Python 3.11 lost that cancel and hung."""

    class Idle(Reconciler):
        give_up = False

        async def tick(self) -> None:
            if self.give_up:  # only when the test has already failed: end the loop
                raise asyncio.CancelledError

    async def scenario() -> bool:
        reconciler = Idle(core=None, runtime=None, interval=0.05)  # type: ignore[arg-type]
        reconciler.start()
        await asyncio.sleep(0.01)
        reconciler._wake.set()
        await asyncio.sleep(0)  # the wake-up completes in this turn of the loop
        stopping = asyncio.ensure_future(reconciler.stop())
        done, _ = await asyncio.wait({stopping}, timeout=2)
        if not done:
            reconciler.give_up = True
            await stopping
        return bool(done)

    assert asyncio.run(scenario()), "Reconciler.stop() did not return"


def test_deletion_stops_replicas_without_waiting_for_a_full_scan(
    make_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between full scans the reconciler trusts which chainlets it saw exist; a deletion through
    the API makes it look again. With full scans out of reach, only that hook gets the deleted
    chain's replicas stopped."""
    from chainyard.reconciler import loop

    # Only the first tick scans everything.
    monkeypatch.setattr(loop, "FULL_SCAN_EVERY", 10**9)
    api = make_api()
    _, kept_chain, kept = new_chain(api)
    _, chain_id, v1 = new_chain(api)
    assert running_replicas(api, v1) == 2
    # Both chains' chainlets settled: the reconciler has recorded that they exist.
    reconciler = api.client.app.state.reconciler  # type: ignore[attr-defined]
    api.wait_for(lambda: len(reconciler._existing) == 4, what="settled chainlets")
    assert api.delete(f"/v1/chains/{chain_id}").status_code == 200
    api.wait_for(lambda: running_replicas(api, v1) == 0, what="replicas of the deleted chain")
    assert running_replicas(api, kept) == 2
    assert api.deployment(kept_chain, kept)["status"] == "ACTIVE"
