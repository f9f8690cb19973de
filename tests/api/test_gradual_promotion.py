"""Gradual promotions: a rolling deploy stays within its surge, and a ramp hands traffic over in
steps; the previous deployment serves what the candidate does not."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from chainyard.services import rollouts
from chainyard.store.chains import Chainlet
from chainyard.store.environments import Environment
from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def _serving_randint(api: Api, replicas: int) -> tuple[str, str]:
    """A chain whose production deployment runs RandInt on `replicas` replicas."""
    body = api.deploy(hello_manifest(f"gradual-{uuid.uuid4().hex[:8]}"))
    chain_id, first = body["chain_id"], body["chain_deployment"]["id"]
    api.wait_current(chain_id, first)
    response = api.patch(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
        json={
            "updates": [
                {"chainlet_name": "RandInt", "autoscaling_settings": {"max_replica": replicas}}
            ]
        },
    )
    assert response.status_code == 200, response.text
    with api.core.db.write() as session:
        row = session.scalars(
            select(Chainlet).where(
                Chainlet.chain_deployment_id == first, Chainlet.name == "RandInt"
            )
        ).one()
        row.desired_replicas = replicas
    api.core.wake_reconciler()
    api.wait_for(
        lambda: _ready(api, chain_id, first, "RandInt") == replicas, what="RandInt replicas"
    )
    return chain_id, first


def _ready(api: Api, chain_id: str, deployment_id: str, name: str) -> int:
    chainlets = api.deployment(chain_id, deployment_id)["chainlets"]
    return int(next(c for c in chainlets if c["name"] == name)["active_replica_count"])


def _randint_ids(api: Api, chain_id: str) -> set[str]:
    from chainyard.store.chains import ChainDeployment

    with api.core.db.read() as session:
        return set(
            session.scalars(
                select(Chainlet.id)
                .join(ChainDeployment, ChainDeployment.id == Chainlet.chain_deployment_id)
                .where(ChainDeployment.chain_id == chain_id, Chainlet.name == "RandInt")
            )
        )


def _rollout(api: Api, chain_id: str) -> dict[str, Any] | None:
    with api.core.db.read() as session:
        env = session.scalars(
            select(Environment).where(
                Environment.chain_id == chain_id, Environment.name == "production"
            )
        ).one()
        return dict(env.rollout) if env.rollout else None


def _promote_by_update(api: Api, chain_id: str) -> str:
    update = api.post(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
        json={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
    )
    assert update.status_code == 200, update.text
    new_id: str = update.json()["chain_deployment"]["id"]
    return new_id


def _set_promotion_settings(api: Api, chain_id: str, settings: dict[str, Any]) -> None:
    response = api.patch(
        f"/v1/chains/{chain_id}/environments/production",
        json={"promotion_settings": settings},
    )
    assert response.status_code == 200, response.text


def test_rolling_deploy_stays_within_its_surge(api: Api) -> None:
    chain_id, first = _serving_randint(api, 4)
    _set_promotion_settings(
        api,
        chain_id,
        {
            "rolling_deploy": True,
            "rolling_deploy_config": {"max_surge_percent": 25, "max_unavailable_percent": 0},
        },
    )
    second = _promote_by_update(api, chain_id)
    runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    most = 0
    shares: set[float] = set()

    def done() -> bool:
        nonlocal most
        ids = _randint_ids(api, chain_id)
        most = max(most, sum(1 for r in runtime.replicas() if r.chainlet_id in ids))
        state = _rollout(api, chain_id)
        if state:
            shares.add(round(float(state["candidate_share"]), 2))
        env = api.environment(chain_id)
        return bool(env["current_deployment"]["id"] == second and not env["candidate_deployment"])

    api.wait_for(done, timeout=60, what="the rolling promotion")
    # 4 serving + 25 % surge: never more than 5 RandInt replicas at once.
    assert most <= 5
    assert {0.25, 0.5, 0.75} & shares, shares  # it went in steps, not in one switch
    assert _ready(api, chain_id, second, "RandInt") == 4
    api.wait_for(lambda: _ready(api, chain_id, first, "RandInt") == 0, what="previous at zero")
    assert _rollout(api, chain_id) is None


def test_ramp_hands_traffic_over_in_steps(api: Api) -> None:
    chain_id, _first = _serving_randint(api, 2)
    _set_promotion_settings(
        api, chain_id, {"ramp_up_while_promoting": True, "ramp_up_duration_seconds": 2}
    )
    second = _promote_by_update(api, chain_id)
    seen: list[float] = []

    def done() -> bool:
        state = _rollout(api, chain_id)
        if state:
            seen.append(round(float(state["candidate_share"]), 2))
        env = api.environment(chain_id)
        return bool(env["current_deployment"]["id"] == second and not env["candidate_deployment"])

    api.wait_for(done, timeout=60, what="the ramped promotion")
    steps = sorted(set(seen) - {0.0})
    assert len(steps) >= 3, seen  # several of the ten steps were seen
    assert all(0 < s < 1 or s == 1.0 for s in steps)
    assert seen == sorted(seen)  # the share only grows


def test_a_split_environment_sends_each_side_its_share() -> None:
    env = Environment(
        id="e",
        chain_id="c",
        name="production",
        current_deployment_id="old",
        candidate_deployment_id="new",
        rollout={"candidate_share": 0.3},
    )
    random.seed(7)
    picks = [rollouts.pick_side(env, 2, 2) for _ in range(2000)]
    assert 0.25 < picks.count("new") / len(picks) < 0.35
    # A side with no ready entrypoint gets nothing while the other has one.
    assert {rollouts.pick_side(env, 0, 2) for _ in range(50)} == {"new"}
    assert {rollouts.pick_side(env, 2, 0) for _ in range(50)} == {"old"}


def test_patching_settings_during_a_rollout_creates_no_conflict(api: Api) -> None:
    """A second promotion waits for the gradual one (409), like any promotion."""
    chain_id, _first = _serving_randint(api, 1)
    _set_promotion_settings(
        api, chain_id, {"ramp_up_while_promoting": True, "ramp_up_duration_seconds": 5}
    )
    _promote_by_update(api, chain_id)
    again = api.post(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
        json={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "4x16"}]},
    )
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "PROMOTION_IN_PROGRESS"
