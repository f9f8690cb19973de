"""Resolving inference targets: which deployment and which chainlet a request goes to."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.domain.errors import Forbidden, NotFound
from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus
from chainyard.services import chainlet_credentials, lookups, rollouts
from chainyard.services.builder import initial_replicas
from chainyard.services.context import Actor, Core
from chainyard.store.chains import ChainDeployment, Chainlet
from chainyard.store.environments import Environment


@dataclasses.dataclass(frozen=True)
class Target:
    deployment_id: str
    chainlet_id: str
    chainlet_name: str
    status: DeploymentStatus
    predict_concurrency: int
    # False when chosen per request (a gradual promotion splits an environment's traffic): such
    # an answer must not be remembered (gateway/route_cache.py).
    cacheable: bool = True


def _entry_target(deployment: ChainDeployment) -> Target:
    entry = next(c for c in deployment.chainlets if c.is_entrypoint)
    return _target(deployment, entry)


def _target(deployment: ChainDeployment, chainlet: Chainlet) -> Target:
    return Target(
        deployment_id=deployment.id,
        chainlet_id=chainlet.id,
        chainlet_name=chainlet.name,
        status=DeploymentStatus(deployment.status),
        predict_concurrency=int(chainlet.compute.get("predict_concurrency") or 1),
    )


def _servable(deployment: ChainDeployment | None, what: str) -> ChainDeployment:
    if deployment is None or deployment.desired_state == "INACTIVE":
        raise NotFound(f"{what} has no active deployment", code="model_does_not_exist")
    if DeploymentStatus(deployment.status) in TERMINAL_FAILURES:
        raise NotFound(
            f"{what}: deployment '{deployment.id}' is {deployment.status}",
            code="model_does_not_exist",
        )
    return deployment


def resolve(
    core: Core,
    actor: Actor,
    chain_id: str,
    *,
    environment: str | None = None,
    deployment_id: str | None = None,
    development: bool = False,
) -> Target:
    """The entrypoint of the deployment a request goes to: the named deployment, the chain's
    development deployment, or an environment's (production by default)."""
    if not actor.can_invoke:
        raise Forbidden(f"an API key of type {actor.key_type} may not call chains")
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        if development:
            found = session.scalar(
                select(ChainDeployment).where(
                    ChainDeployment.chain_id == chain.id,
                    ChainDeployment.is_development.is_(True),
                )
            )
            if found is None:
                raise NotFound(
                    f"chain '{chain.id}' has no development deployment "
                    "(chainyard push --watch makes one)",
                    code="model_does_not_exist",
                )
            deployment = _servable(found, f"chain '{chain.id}' (development)")
        elif deployment_id is not None:
            deployment = _servable(
                lookups.deployment(session, chain, deployment_id), f"deployment '{deployment_id}'"
            )
        else:
            name = environment or "production"
            env = session.scalar(
                select(Environment).where(
                    Environment.chain_id == chain.id, Environment.name == name
                )
            )
            if env is None:
                raise NotFound(f"environment '{name}' not found", code="model_does_not_exist")
            current = (
                session.get(ChainDeployment, env.current_deployment_id)
                if env.current_deployment_id
                else None
            )
            split = bool(env.rollout and env.candidate_deployment_id and current is not None)
            if split:
                assert current is not None
                current = _split(session, env, current)
            deployment = _servable(current, f"environment '{name}'")
            if split:
                return dataclasses.replace(_entry_target(deployment), cacheable=False)
        return _entry_target(deployment)


def _split(session: Session, env: Environment, current: ChainDeployment) -> ChainDeployment:
    """During a gradual promotion, the side this request goes to (services/rollouts.py)."""
    candidate = session.get(ChainDeployment, env.candidate_deployment_id)
    if candidate is None or DeploymentStatus(candidate.status) in TERMINAL_FAILURES:
        return current
    side = rollouts.pick_side(env, _entry_ready(current), _entry_ready(candidate))
    return candidate if side == candidate.id else current


def _entry_ready(deployment: ChainDeployment) -> int:
    return next((c.ready_replicas for c in deployment.chainlets if c.is_entrypoint), 0)


def resolve_internal(core: Core, chainlet_id: str, token: str) -> Target:
    """A dependency call from a replica: the token must be one issued to a chainlet of the same
    deployment that declared the target as a dependency (services/chainlet_credentials.py). Any
    other token is 401 "invalid chain key"; a live one aimed elsewhere is 403."""
    return _internal_target(chainlet_credentials.callee(core, token, chainlet_id))


def cached_internal(core: Core, chainlet_id: str, token: str) -> Target | None:
    """`resolve_internal` from what is remembered of the token, without the store; None when
    nothing is."""
    callee = chainlet_credentials.cached_callee(core, token, chainlet_id)
    return None if callee is None else _internal_target(callee)


def _internal_target(callee: chainlet_credentials.Callee) -> Target:
    return Target(
        deployment_id=callee.deployment_id,
        chainlet_id=callee.chainlet_id,
        chainlet_name=callee.name,
        status=DeploymentStatus(callee.deployment_status),
        predict_concurrency=callee.predict_concurrency,
    )


def deployment_entry(core: Core, deployment_id: str) -> Target:
    """The entrypoint of one deployment, for the async runner's calls (no actor: the request was
    authorized at enqueue). Refused as `resolve` refuses it: a deployment that is gone, INACTIVE
    or failed is a NotFound (model_does_not_exist)."""
    with core.db.read() as session:
        found = session.get(ChainDeployment, deployment_id)
        return _entry_target(_servable(found, f"deployment '{deployment_id}'"))


def entrypoints(core: Core, deployment_ids: Iterable[str]) -> dict[str, str]:
    """The entrypoint chainlet's id of each of these deployments that still has one (the
    autoscaler's demand is per chainlet)."""
    wanted = sorted(set(deployment_ids))
    if not wanted:
        return {}
    with core.db.read() as session:
        rows = session.execute(
            select(Chainlet.chain_deployment_id, Chainlet.id).where(
                Chainlet.chain_deployment_id.in_(wanted), Chainlet.is_entrypoint.is_(True)
            )
        ).all()
    return {deployment: chainlet for deployment, chainlet in rows}


def wake(core: Core, deployment_id: str) -> bool:
    """Asks for replicas of a deployment that is scaled to zero; True if something changed."""
    changed = False
    with core.db.write() as session:
        deployment = session.get(ChainDeployment, deployment_id)
        if deployment is None or deployment.desired_state == "INACTIVE":
            return False
        for chainlet in deployment.chainlets:
            want = initial_replicas(AutoscalingSettings.from_dict(chainlet.autoscaling))
            if chainlet.desired_replicas < want:
                chainlet.desired_replicas = want
                changed = True
    if changed:
        core.wake_reconciler()
    return changed
