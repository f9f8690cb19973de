"""A promotion brings the new deployment up to what the environment serves now, not just to its
minimum, and switches only once all those replicas are ready."""

from __future__ import annotations

import uuid

import pytest

from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def test_new_deployment_matches_the_serving_replica_counts(api: Api) -> None:
    body = api.deploy(hello_manifest(f"size-{uuid.uuid4().hex[:8]}"))
    chain_id, first = body["chain_id"], body["chain_deployment"]["id"]
    api.wait_current(chain_id, first)
    settings = {"min_replica": 0, "max_replica": 5}
    response = api.patch(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
        json={"updates": [{"chainlet_name": "RandInt", "autoscaling_settings": settings}]},
    )
    assert response.status_code == 200, response.text
    # Traffic made the autoscaler run RandInt on 3 replicas (written as it would write it).
    with api.core.db.write() as session:
        from chainyard.store.chains import Chainlet

        row = (
            session.query(Chainlet)
            .filter(Chainlet.chain_deployment_id == first, Chainlet.name == "RandInt")
            .one()
        )
        row.desired_replicas = 3
    api.core.wake_reconciler()
    api.wait_for(
        lambda: (
            next(c for c in api.deployment(chain_id, first)["chainlets"] if c["name"] == "RandInt")[
                "active_replica_count"
            ]
            == 3
        ),
        what="3 RandInt replicas",
    )
    update = api.post(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
        json={"updates": [{"chainlet_name": "HelloWorld", "instance_type_id": "2x8"}]},
    )
    assert update.status_code == 200, update.text
    second = update.json()["chain_deployment"]["id"]
    env = api.wait_current(chain_id, second)
    counts = {c["name"]: c["active_replica_count"] for c in env["current_deployment"]["chainlets"]}
    assert counts == {"HelloWorld": 1, "RandInt": 3}
