"""Rows to wire models. The only place that knows both shapes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.domain.instance_types import Catalogue, InstanceType
from chainyard.schemas import (
    AutoscalingSettingsV1,
    ChainDeploymentV1,
    ChainEnvironmentV1,
    ChainletEnvironmentSettingsV1,
    ChainletV1,
    ChainV1,
    InstanceTypeV1,
    PromotionSettingsV1,
)
from chainyard.store.chains import Chain, ChainDeployment, Chainlet
from chainyard.store.environments import ChainletEnvironmentSettings, Environment


def instance_type_v1(it: InstanceType) -> InstanceTypeV1:
    return InstanceTypeV1(
        id=it.id,
        name=it.name,
        memory_limit_mib=it.memory_limit_mib,
        millicpu_limit=it.millicpu_limit,
        gpu_count=it.gpu_count,
        gpu_type=it.gpu_type,
        gpu_memory_limit_mib=it.gpu_memory_limit_mib,
    )


def _instance_type_or_placeholder(catalogue: Catalogue, type_id: str) -> InstanceTypeV1:
    it = catalogue.get(type_id)
    if it is not None:
        return instance_type_v1(it)
    # The operator removed a type that stored settings still name: show the id rather than fail.
    return InstanceTypeV1(
        id=type_id,
        name=type_id,
        memory_limit_mib=0,
        millicpu_limit=0,
        gpu_count=0,
        gpu_type=None,
        gpu_memory_limit_mib=None,
    )


def autoscaling_v1(data: dict[str, object] | None) -> AutoscalingSettingsV1:
    return AutoscalingSettingsV1.model_validate(AutoscalingSettings.from_dict(data).to_dict())


def chainlet_v1(row: Chainlet, catalogue: Catalogue) -> ChainletV1:
    it = catalogue.get(row.instance_type_id)
    return ChainletV1(
        id=row.id,
        name=row.name,
        autoscaling_settings=autoscaling_v1(row.autoscaling),
        instance_type_name=it.name if it else row.instance_type_id,
        active_replica_count=row.ready_replicas,
        status=row.status,
    )


def deployment_v1(row: ChainDeployment, catalogue: Catalogue) -> ChainDeploymentV1:
    return ChainDeploymentV1(
        id=row.id,
        created_at=row.created_at,
        chain_id=row.chain_id,
        environment=row.environment,
        chainlets=[chainlet_v1(c, catalogue) for c in row.chainlets],
        status=row.status,
        is_development=row.is_development,
    )


def chain_v1(row: Chain, deployments_count: int, team_name: str) -> ChainV1:
    return ChainV1(
        id=row.id,
        created_at=row.created_at,
        name=row.name,
        deployments_count=deployments_count,
        team_name=team_name,
    )


def chainlet_settings_v1(
    row: ChainletEnvironmentSettings, catalogue: Catalogue
) -> ChainletEnvironmentSettingsV1:
    return ChainletEnvironmentSettingsV1(
        chainlet_name=row.chainlet_name,
        autoscaling_settings=autoscaling_v1(row.autoscaling),
        instance_type=_instance_type_or_placeholder(catalogue, row.instance_type_id),
    )


def promotion_settings_v1(data: dict[str, object]) -> PromotionSettingsV1:
    return PromotionSettingsV1.model_validate(data)


def environment_v1(session: Session, env: Environment, catalogue: Catalogue) -> ChainEnvironmentV1:
    ids = [i for i in (env.current_deployment_id, env.candidate_deployment_id) if i]
    deployments = {
        d.id: d for d in session.scalars(select(ChainDeployment).where(ChainDeployment.id.in_(ids)))
    }
    current = deployments.get(env.current_deployment_id or "")
    candidate = deployments.get(env.candidate_deployment_id or "")
    return ChainEnvironmentV1(
        name=env.name,
        created_at=env.created_at,
        chain_id=env.chain_id,
        promotion_settings=promotion_settings_v1(env.promotion_settings),
        chainlet_settings=[chainlet_settings_v1(s, catalogue) for s in env.chainlet_settings],
        current_deployment=deployment_v1(current, catalogue) if current else None,
        candidate_deployment=deployment_v1(candidate, catalogue) if candidate else None,
    )
