"""Chain environments, promotion, and per-chainlet environment settings."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chainyard.api.deps import CoreDep, Manager
from chainyard.api.responses import answer_from
from chainyard.schemas import (
    ChainDeploymentV1,
    ChainEnvironmentsV1,
    ChainEnvironmentV1,
    CreateChainEnvironmentRequestV1,
    PromoteToChainEnvironmentRequestV1,
    UpdateAutoscalingSettingsResponseV1,
    UpdateChainEnvironmentRequestV1,
    UpdateChainEnvironmentResponseV1,
    UpdateChainletEnvironmentAutoscalingSettingsRequestV1,
    UpdateChainletEnvironmentInstanceTypeRequestV1,
    UpdateChainletEnvironmentInstanceTypeResponseV1,
)
from chainyard.services import chainlet_settings, environments

router = APIRouter(prefix="/v1/chains/{chain_id}/environments", tags=["environments"])


@router.get("", response_model=ChainEnvironmentsV1, summary="Gets all chain environments")
def list_environments(chain_id: str, core: CoreDep, actor: Manager) -> ChainEnvironmentsV1:
    return ChainEnvironmentsV1(environments=environments.list_(core, actor, chain_id))


@router.post("", response_model=ChainEnvironmentV1, summary="Creates a chain environment")
def create_environment(
    chain_id: str, body: CreateChainEnvironmentRequestV1, core: CoreDep, actor: Manager
) -> ChainEnvironmentV1:
    return environments.create(core, actor, chain_id, body)


@router.get(
    "/{env_name}", response_model=ChainEnvironmentV1, summary="Gets a chain environment's details"
)
def get_environment(
    chain_id: str, env_name: str, core: CoreDep, actor: Manager
) -> ChainEnvironmentV1:
    return environments.get(core, actor, chain_id, env_name)


@router.patch(
    "/{env_name}",
    response_model=UpdateChainEnvironmentResponseV1,
    summary="Updates a chain environment's settings",
)
def update_environment(
    chain_id: str,
    env_name: str,
    body: UpdateChainEnvironmentRequestV1,
    core: CoreDep,
    actor: Manager,
) -> UpdateChainEnvironmentResponseV1:
    environments.update(core, actor, chain_id, env_name, body)
    return UpdateChainEnvironmentResponseV1(ok=True)


@router.post(
    "/{env_name}/promote",
    response_model=ChainDeploymentV1,
    summary="Promotes a chain deployment to an environment",
)
def promote(
    chain_id: str,
    env_name: str,
    body: PromoteToChainEnvironmentRequestV1,
    core: CoreDep,
    actor: Manager,
) -> ChainDeploymentV1:
    return environments.promote(core, actor, chain_id, env_name, body)


@router.patch(
    "/{env_name}/chainlet_settings/autoscaling_settings",
    response_model=UpdateAutoscalingSettingsResponseV1,
    summary="Updates a chainlet environment's autoscaling settings",
)
def update_autoscaling(
    chain_id: str,
    env_name: str,
    body: UpdateChainletEnvironmentAutoscalingSettingsRequestV1,
    core: CoreDep,
    actor: Manager,
) -> UpdateAutoscalingSettingsResponseV1:
    return chainlet_settings.update_autoscaling(core, actor, chain_id, env_name, body.updates)


@router.post(
    "/{env_name}/chainlet_settings/instance_types/update",
    response_model=UpdateChainletEnvironmentInstanceTypeResponseV1,
    summary="Updates a chainlet environment's instance type settings",
)
async def update_instance_types(
    chain_id: str,
    env_name: str,
    body: UpdateChainletEnvironmentInstanceTypeRequestV1,
    core: CoreDep,
    actor: Manager,
) -> Response:
    return await answer_from(
        chainlet_settings.update_instance_types, core, actor, chain_id, env_name, body.updates
    )
