"""Gradual promotions: each reconciler tick moves every rollout one step (domain/rollout.py), and
the gateway splits an environment's traffic by the candidate's share."""

from __future__ import annotations

import random
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain import promotion, rollout
from chainyard.domain.statuses import DeploymentStatus
from chainyard.services import promotions
from chainyard.services.context import Core, system_actor
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.environments import Environment
from chainyard.store.workspaces import Workspace

S = DeploymentStatus


def advance(core: Core, now: float | None = None) -> int:
    """Moves every gradual promotion one step; returns how many there are."""
    with core.db.read() as session:
        ids = list(
            session.scalars(
                select(Environment.id).where(
                    Environment.candidate_deployment_id.is_not(None),
                    Environment.rollout.is_not(None),
                )
            )
        )
    if not ids:
        return 0
    when = time.time() if now is None else now
    for env_id in ids:
        with core.db.write() as session:
            env = session.scalar(
                select(Environment).where(Environment.id == env_id).with_for_update()
            )
            if env is not None and env.rollout and env.candidate_deployment_id:
                _advance_one(session, env, when)
    return len(ids)


def _advance_one(session: Session, env: Environment, now: float) -> None:
    state: dict[str, Any] = dict(env.rollout or {})
    candidate = session.get(ChainDeployment, env.candidate_deployment_id)
    previous = session.get(ChainDeployment, state["previous_deployment_id"])
    if candidate is None:
        env.rollout = None
        return
    if any(c.status == S.BUILDING.value for c in candidate.chainlets):
        return  # nothing to hand over until it is built
    targets: dict[str, int] = state["targets"]
    ready = {c.name: c.ready_replicas for c in candidate.chainlets}
    running = {
        c.name: max(c.desired_replicas, c.ready_replicas)
        for c in (previous.chainlets if previous is not None else [])
    }
    ramp = 1.0
    if state.get("ramp"):
        if state.get("ramp_started_at") is None and all(ready.get(n, 0) > 0 for n in targets):
            state["ramp_started_at"] = now
        ramp = rollout.ramp_share(
            state.get("ramp_started_at"), float(state["ramp_duration_seconds"]), now
        )
    limits = rollout.Limits(
        max_surge_percent=int(state["max_surge_percent"]),
        max_unavailable_percent=int(state["max_unavailable_percent"]),
    )
    step = rollout.step(targets, ready, running, limits, ramp)
    stepped = promotion.rollout_stepped(
        promotions.state_of(env), S(candidate.status), complete=step.complete
    )
    if stepped == promotion.Step.FINISH:
        chain = session.get_one(Chain, candidate.chain_id)
        workspace = session.get_one(Workspace, chain.workspace_id)
        promotions.finish(
            session, system_actor(workspace.id, workspace.name), chain, env, candidate
        )
        return
    for chainlet in candidate.chainlets:
        chainlet.desired_replicas = step.candidate_replicas.get(chainlet.name, 0)
    for chainlet in previous.chainlets if previous is not None else []:
        if chainlet.name in step.previous_replicas:
            chainlet.desired_replicas = min(
                chainlet.desired_replicas, step.previous_replicas[chainlet.name]
            )
    state["candidate_share"] = step.candidate_share
    env.rollout = state  # a new dict, so that the JSON column is written


def in_rollout() -> Any:
    """Ids of deployments on either side of a gradual promotion (a subquery): their replica
    counts belong to the rollout, not to the autoscaler."""
    previous = select(Environment.current_deployment_id).where(
        Environment.rollout.is_not(None), Environment.current_deployment_id.is_not(None)
    )
    candidate = select(Environment.candidate_deployment_id).where(
        Environment.rollout.is_not(None), Environment.candidate_deployment_id.is_not(None)
    )
    return previous.union(candidate)


def pick_side(env: Environment, previous_ready: int, candidate_ready: int) -> str | None:
    """The deployment one request goes to during a gradual promotion: the candidate with its
    traffic share, the previous deployment otherwise; a side without a ready entrypoint replica
    gets nothing while the other has one."""
    if not env.rollout or env.candidate_deployment_id is None:
        return env.current_deployment_id
    share = float(env.rollout.get("candidate_share") or 0.0)
    if candidate_ready > 0 and (previous_ready == 0 or random.random() < share):
        return env.candidate_deployment_id
    return env.current_deployment_id
