"""Promotion on the rows: what `domain/promotion.py` decides, carried out.

`begin` is called by promote, deploy-with-environment and the instance-type update; `finish` and
`fail` by whoever sees the candidate's status settle (the reconciler, the rollout, or `begin`
itself when the candidate is already active). All run inside the caller's write transaction, with
the environment row locked by the caller.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain import promotion, rollout
from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.domain.errors import Invalid
from chainyard.domain.statuses import DeploymentStatus, Event
from chainyard.services import audit
from chainyard.services.builder import ensure_environment_settings, initial_replicas, specs_of
from chainyard.services.context import Actor
from chainyard.services.lifecycle import apply_event, apply_event_if_possible, refresh_status
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.environments import Environment


def state_of(env: Environment) -> promotion.Promotion:
    return promotion.Promotion(
        current=env.current_deployment_id,
        candidate=env.candidate_deployment_id,
        gradual=bool(env.rollout),
    )


def require_no_promotion(env: Environment) -> None:
    promotion.require_idle(state_of(env), env.name)


def refuse_development(deployment: ChainDeployment, env_name: str) -> None:
    """Baseten: "Development deployments can't be promoted to an environment"; nor copied into
    one (a promotion that redeploys): its code changes under it with every patch."""
    if deployment.is_development:
        raise Invalid(
            f"deployment '{deployment.id}' is the chain's development deployment, which cannot "
            f"be promoted to an environment ('{env_name}'): push a published deployment "
            "(chainyard push, without --watch) and promote that",
            code="DEVELOPMENT_NOT_PROMOTABLE",
        )


def begin(
    session: Session,
    actor: Actor,
    chain: Chain,
    env: Environment,
    deployment: ChainDeployment,
    *,
    scale_down_previous: bool = True,
) -> None:
    refuse_development(deployment, env.name)
    require_no_promotion(env)
    env.candidate_deployment_id = deployment.id
    deployment.retired = False
    _size_like_current(session, env, deployment)
    env.promotion_scale_down_previous = scale_down_previous
    env.last_promotion_error = None
    env.rollout = None
    _start_rollout(session, env, deployment)
    step = promotion.begin(state_of(env), env.name, DeploymentStatus(deployment.status))
    if step == promotion.Step.FINISH:
        finish(session, actor, chain, env, deployment)
    elif step == promotion.Step.WAKE:
        # The reconciler finishes the promotion once its replicas are ready.
        for chainlet in deployment.chainlets:
            chainlet.desired_replicas = max(
                chainlet.desired_replicas,
                initial_replicas(AutoscalingSettings.from_dict(chainlet.autoscaling)),
            )
    elif step == promotion.Step.ACTIVATE:
        activate(deployment)


def _size_like_current(session: Session, env: Environment, candidate: ChainDeployment) -> None:
    """The candidate comes up with as many replicas per chainlet as the environment runs now
    (not just its minimum), so that the switch does not leave the traffic on too few."""
    if env.current_deployment_id is None or env.current_deployment_id == candidate.id:
        return
    current = session.get(ChainDeployment, env.current_deployment_id)
    if current is None:
        return
    serving = {c.name: c.desired_replicas for c in current.chainlets}
    for chainlet in candidate.chainlets:
        wanted = serving.get(chainlet.name, 0)
        ceiling = AutoscalingSettings.from_dict(chainlet.autoscaling).max_replica
        if wanted > chainlet.desired_replicas:
            chainlet.desired_replicas = min(wanted, ceiling)


def _start_rollout(session: Session, env: Environment, candidate: ChainDeployment) -> bool:
    """With `rolling_deploy` or `ramp_up_while_promoting`, the promotion hands traffic over
    gradually (services/rollouts.py advances it); returns whether it does. The first step's
    replica counts apply at once."""
    settings = env.promotion_settings or {}
    if not promotion.gradual(settings, env.current_deployment_id, candidate.id):
        return False
    previous = session.get(ChainDeployment, env.current_deployment_id)
    if previous is None:
        return False
    limits = rollout.limits_of(settings)
    targets = {c.name: max(1, c.desired_replicas) for c in candidate.chainlets}
    previous_desired = {c.name: c.desired_replicas for c in previous.chainlets}
    first = rollout.step(targets, {}, previous_desired, limits, ramp=0.0)
    for chainlet in candidate.chainlets:
        chainlet.desired_replicas = first.candidate_replicas[chainlet.name]
    for chainlet in previous.chainlets:
        if chainlet.name in first.previous_replicas:
            chainlet.desired_replicas = first.previous_replicas[chainlet.name]
    env.rollout = {
        "previous_deployment_id": previous.id,
        "targets": targets,
        "previous_desired": previous_desired,
        "max_surge_percent": limits.max_surge_percent,
        "max_unavailable_percent": limits.max_unavailable_percent,
        "ramp": bool(settings.get("ramp_up_while_promoting")),
        "ramp_duration_seconds": int(settings.get("ramp_up_duration_seconds") or 600),
        "ramp_started_at": None,
        "candidate_share": 0.0,
    }
    return True


def activate(deployment: ChainDeployment) -> None:
    deployment.desired_state = "ACTIVE"
    for chainlet in deployment.chainlets:
        if apply_event_if_possible(chainlet, Event.ACTIVATE):
            settings = AutoscalingSettings.from_dict(chainlet.autoscaling)
            chainlet.desired_replicas = initial_replicas(settings)
    refresh_status(deployment)


def finish(
    session: Session, actor: Actor, chain: Chain, env: Environment, deployment: ChainDeployment
) -> None:
    previous_id = env.current_deployment_id
    env.current_deployment_id = deployment.id
    env.candidate_deployment_id = None
    env.rollout = None
    deployment.environment = env.name

    # The environment's settings now govern the promoted deployment; settings of chainlets the
    # deployment no longer has would only mislead, so they go.
    settings = ensure_environment_settings(env, specs_of(deployment))
    names = {c.name for c in deployment.chainlets}
    for row in list(env.chainlet_settings):
        if row.chainlet_name not in names:
            env.chainlet_settings.remove(row)
    for chainlet in deployment.chainlets:
        autoscaling = AutoscalingSettings.from_dict(settings[chainlet.name].autoscaling)
        chainlet.autoscaling = autoscaling.to_dict()
        chainlet.desired_replicas = min(
            max(chainlet.desired_replicas, autoscaling.min_replica), autoscaling.max_replica
        )

    if previous_id and previous_id != deployment.id:
        previous = session.get(ChainDeployment, previous_id)
        if previous is not None:
            previous.environment = None
            strategy = promotion.cleanup_strategy(
                env.promotion_settings or {}, scale_down_previous=env.promotion_scale_down_previous
            )
            cleanup(session, actor, chain, previous, strategy)

    audit.record(
        session,
        actor,
        "CHAIN_DEPLOYMENT_PROMOTED",
        {
            "chain_id": chain.id,
            "chain_name": chain.name,
            "chain_deployment_id": deployment.id,
            "chain_deployment_name": deployment.name,
            "environment_name": env.name,
            "environment_id": env.id,
        },
        chain_id=chain.id,
        environment_name=env.name,
        chain_deployment_id=deployment.id,
    )


def fail(session: Session, env: Environment, deployment: ChainDeployment) -> None:
    """The candidate failed: the environment stays on what it served, and remembers why. A
    gradual promotion gives the previous deployment back the replicas it handed over."""
    env.candidate_deployment_id = None
    if env.rollout:
        previous = session.get(ChainDeployment, env.rollout["previous_deployment_id"])
        wanted = env.rollout.get("previous_desired") or {}
        for chainlet in previous.chainlets if previous is not None else []:
            chainlet.desired_replicas = max(chainlet.desired_replicas, wanted.get(chainlet.name, 0))
        env.rollout = None
    env.last_promotion_error = f"deployment '{deployment.id}' ended {deployment.status}" + (
        f": {deployment.status_message}" if deployment.status_message else ""
    )


def cleanup(
    session: Session, actor: Actor, chain: Chain, previous: ChainDeployment, strategy: str
) -> None:
    if strategy != "KEEP":
        previous.retired = True
    if strategy == "SCALE_TO_ZERO":
        for chainlet in previous.chainlets:
            chainlet.desired_replicas = 0
    elif strategy == "DEACTIVATE":
        deactivate(session, actor, chain, previous)


def deactivate(session: Session, actor: Actor, chain: Chain, deployment: ChainDeployment) -> None:
    deployment.desired_state = "INACTIVE"
    for chainlet in deployment.chainlets:
        chainlet.desired_replicas = 0
        if chainlet.status == DeploymentStatus.BUILDING.value:
            apply_event(chainlet, Event.DEACTIVATE)
        else:
            apply_event_if_possible(chainlet, Event.DEACTIVATE)
    refresh_status(deployment)
    audit.record(
        session,
        actor,
        "CHAIN_DEPLOYMENT_DEACTIVATED",
        {
            "chain_id": chain.id,
            "chain_name": chain.name,
            "chain_deployment_id": deployment.id,
            "chain_deployment_name": deployment.name,
        },
        chain_id=chain.id,
        chain_deployment_id=deployment.id,
    )


def environments_serving(session: Session, deployment_id: str) -> list[Environment]:
    """Environments whose current or candidate deployment this is."""
    return list(
        session.scalars(
            select(Environment)
            .where(
                (Environment.current_deployment_id == deployment_id)
                | (Environment.candidate_deployment_id == deployment_id)
            )
            .with_for_update()
        )
    )
