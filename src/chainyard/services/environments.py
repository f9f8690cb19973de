"""Chain environments: create, list, get, update promotion settings, promote."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain.autoscaling import AutoscalingSettings, apply_update
from chainyard.domain.errors import Conflict, Invalid
from chainyard.domain.ids import new_id
from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus
from chainyard.schemas import (
    ChainDeploymentV1,
    ChainEnvironmentV1,
    CreateChainEnvironmentRequestV1,
    PromoteToChainEnvironmentRequestV1,
    PromotionSettingsV1,
    UpdateChainEnvironmentRequestV1,
    UpdatePromotionSettingsV1,
)
from chainyard.services import audit, instance_types, lookups, promotions, views
from chainyard.services.builder import copy_for_environment
from chainyard.services.context import Actor, Core
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.db import after_commit
from chainyard.store.environments import ChainletEnvironmentSettings, Environment

ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PERCENT_FIELDS = ("max_surge_percent", "max_unavailable_percent", "replica_overhead_percent")


def default_promotion_settings() -> dict[str, Any]:
    return PromotionSettingsV1().model_dump(mode="json")


def new_environment(chain: Chain, name: str) -> Environment:
    if not ENV_NAME.match(name):
        raise Invalid(
            f"invalid environment name '{name}': use 1-63 lowercase letters, digits, '-' or '_'",
            code="INVALID_NAME",
        )
    return Environment(
        id=new_id(), chain_id=chain.id, name=name, promotion_settings=default_promotion_settings()
    )


def merge_promotion_settings(
    current: dict[str, Any], update: UpdatePromotionSettingsV1
) -> dict[str, Any]:
    """`current` with the sent fields of `update`; the rolling config merges field by field."""
    merged = dict(current)
    sent = update.model_dump(mode="json", exclude_unset=True)
    rolling = sent.pop("rolling_deploy_config", None)
    merged.update(sent)
    if rolling is not None or "rolling_deploy_config" in update.model_fields_set:
        base = merged.get("rolling_deploy_config") or {}
        if rolling is not None:
            # A null field is one not given, as in the update model: it leaves the value as is
            # (the effective config has no nulls).
            base = {**base, **{k: v for k, v in rolling.items() if v is not None}}
            for field in _PERCENT_FIELDS:
                value = base.get(field)
                if value is not None and not 0 <= value <= 100:
                    raise Invalid(
                        f"rolling_deploy_config.{field} must be between 0 and 100, got {value}",
                        code="INVALID_ARGUMENT",
                    )
            stabilization = base.get("stabilization_time_seconds")
            if stabilization is not None and not 0 <= stabilization <= 3600:
                raise Invalid(
                    "rolling_deploy_config.stabilization_time_seconds must be between 0 and 3600",
                    code="INVALID_ARGUMENT",
                )
        merged["rolling_deploy_config"] = base or None
    duration = merged.get("ramp_up_duration_seconds")
    if duration is not None and not 1 <= duration <= 86_400:
        raise Invalid(
            "ramp_up_duration_seconds must be between 1 and 86400", code="INVALID_ARGUMENT"
        )
    # Validates the whole (e.g. an unknown strategy) and fills defaults for nulls sent.
    return PromotionSettingsV1.model_validate(merged).model_dump(mode="json")


def settings_event(chain: Chain, env: Environment) -> dict[str, Any]:
    ps = env.promotion_settings
    return {
        "chain_id": chain.id,
        "chain_name": chain.name,
        "environment_name": env.name,
        "redeploy_on_promotion": ps.get("redeploy_on_promotion"),
        "ramp_up_while_promoting": ps.get("ramp_up_while_promoting"),
        "ramp_up_duration_seconds": ps.get("ramp_up_duration_seconds"),
    }


def add_environment(session: Session, actor: Actor, chain: Chain, env: Environment) -> None:
    session.add(env)
    session.flush()
    audit.record(
        session,
        actor,
        "CHAIN_ENVIRONMENT_CREATED",
        settings_event(chain, env),
        chain_id=chain.id,
        environment_name=env.name,
    )


def create(
    core: Core, actor: Actor, chain_id: str, request: CreateChainEnvironmentRequestV1
) -> ChainEnvironmentV1:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        exists = session.scalar(
            select(Environment.id).where(
                Environment.chain_id == chain.id, Environment.name == request.name
            )
        )
        if exists:
            raise Conflict(
                f"environment '{request.name}' already exists in chain '{chain.id}'",
                code="ENVIRONMENT_EXISTS",
            )
        env = new_environment(chain, request.name)
        if request.promotion_settings is not None:
            env.promotion_settings = merge_promotion_settings(
                env.promotion_settings, request.promotion_settings
            )
        seen: set[str] = set()
        for item in request.chainlet_settings or []:
            if item.chainlet_name in seen:
                raise Invalid(
                    f"chainlet '{item.chainlet_name}' is listed twice", code="DUPLICATE_CHAINLET"
                )
            seen.add(item.chainlet_name)
            # Stored by id, so that an alias ("CPU:1x2") compares equal to the type it names.
            type_id = instance_types.require(core.catalogue, item.instance_type_id).id
            autoscaling = AutoscalingSettings()
            if item.autoscaling_settings is not None:
                autoscaling = apply_update(
                    autoscaling, item.autoscaling_settings.model_dump(exclude_unset=True)
                )
            env.chainlet_settings.append(
                ChainletEnvironmentSettings(
                    id=new_id(),
                    chainlet_name=item.chainlet_name,
                    instance_type_id=type_id,
                    autoscaling=autoscaling.to_dict(),
                )
            )
        add_environment(session, actor, chain, env)
        return views.environment_v1(session, env, core.catalogue)


def list_(core: Core, actor: Actor, chain_id: str) -> list[ChainEnvironmentV1]:
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        envs = session.scalars(
            select(Environment)
            .where(Environment.chain_id == chain.id)
            .order_by(Environment.created_at)
        )
        return [views.environment_v1(session, e, core.catalogue) for e in envs]


def get(core: Core, actor: Actor, chain_id: str, name: str) -> ChainEnvironmentV1:
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        env = lookups.environment(session, chain, name)
        return views.environment_v1(session, env, core.catalogue)


def update(
    core: Core, actor: Actor, chain_id: str, name: str, request: UpdateChainEnvironmentRequestV1
) -> None:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        env = lookups.environment(session, chain, name, for_update=True)
        if request.promotion_settings is None:
            return
        merged = merge_promotion_settings(env.promotion_settings, request.promotion_settings)
        if merged == env.promotion_settings:
            return
        env.promotion_settings = merged
        audit.record(
            session,
            actor,
            "CHAIN_ENVIRONMENT_UPDATED",
            settings_event(chain, env),
            chain_id=chain.id,
            environment_name=env.name,
        )


def promote(
    core: Core,
    actor: Actor,
    chain_id: str,
    name: str,
    request: PromoteToChainEnvironmentRequestV1,
) -> ChainDeploymentV1:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        env = lookups.environment(session, chain, name, for_update=True)
        deployment = lookups.deployment(session, chain, request.deployment_id)
        # Before anything else: a promotion that redeploys would copy it into a published one.
        promotions.refuse_development(deployment, env.name)
        if env.current_deployment_id == deployment.id and env.candidate_deployment_id is None:
            return views.deployment_v1(deployment, core.catalogue)
        promotions.require_no_promotion(env)
        status = DeploymentStatus(deployment.status)
        if status in TERMINAL_FAILURES:
            raise Conflict(
                f"deployment '{deployment.id}' is {status.value} and cannot be promoted",
                code="DEPLOYMENT_FAILED",
            )
        if status == DeploymentStatus.DEACTIVATING:
            raise Conflict(
                f"deployment '{deployment.id}' is deactivating; promote it once it is INACTIVE",
                code="DEPLOYMENT_DEACTIVATING",
            )
        target = _promotion_target(session, actor, chain, env, deployment)
        promotions.begin(
            session,
            actor,
            chain,
            env,
            target,
            scale_down_previous=request.scale_down_previous_deployment,
        )
        session.flush()
        after_commit(session, core.wake_reconciler)
        return views.deployment_v1(target, core.catalogue)


def _promotion_target(
    session: Any, actor: Actor, chain: Chain, env: Environment, deployment: ChainDeployment
) -> ChainDeployment:
    """The deployment itself, or a copy made with the environment's settings when it runs with
    other instance types, serves another environment, or the environment redeploys on promotion."""
    settings = {s.chainlet_name: s.instance_type_id for s in env.chainlet_settings}
    differs = any(
        c.name in settings and settings[c.name] != c.instance_type_id for c in deployment.chainlets
    )
    elsewhere = deployment.environment is not None and deployment.environment != env.name
    if not (differs or elsewhere or env.promotion_settings.get("redeploy_on_promotion")):
        return deployment
    return copy_for_environment(session, actor, chain, deployment, env)
