"""Chain environments, their promotion settings and promotion requests."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictBool, StrictInt

from chainyard.schemas.chainlet_settings import (
    ChainletEnvironmentSettingsRequestV1,
    ChainletEnvironmentSettingsV1,
)
from chainyard.schemas.common import PromotionCleanupStrategyV1, RollingDeployStrategyV1
from chainyard.schemas.deployments import ChainDeploymentV1

__all__ = [
    "ChainEnvironmentV1",
    "ChainEnvironmentsV1",
    "CreateChainEnvironmentRequestV1",
    "PromoteToChainEnvironmentRequestV1",
    "PromotionSettingsV1",
    "RollingDeployConfigV1",
    "UpdateChainEnvironmentRequestV1",
    "UpdateChainEnvironmentResponseV1",
    "UpdatePromotionSettingsV1",
    "UpdateRollingDeployConfigV1",
]


class RollingDeployConfigV1(BaseModel):
    """Effective rolling deploy parameters."""

    rolling_deploy_strategy: RollingDeployStrategyV1 = Field(
        default=RollingDeployStrategyV1.REPLICA, description="Rolling deploy strategy"
    )
    max_surge_percent: int = Field(default=25, description="Extra replicas allowed, in percent")
    max_unavailable_percent: int = Field(
        default=0, description="Replicas allowed to be down, in percent"
    )
    stabilization_time_seconds: int = Field(default=0, description="Wait between steps, seconds")
    replica_overhead_percent: int = Field(default=0, description="Replica overhead, in percent")


class UpdateRollingDeployConfigV1(BaseModel):
    """Partial rolling deploy update: only the fields that are sent change."""

    rolling_deploy_strategy: RollingDeployStrategyV1 | None = Field(
        default=None, description="Rolling deploy strategy"
    )
    max_surge_percent: StrictInt | None = Field(
        default=None, description="Extra replicas allowed, in percent"
    )
    max_unavailable_percent: StrictInt | None = Field(
        default=None, description="Replicas allowed to be down, in percent"
    )
    stabilization_time_seconds: StrictInt | None = Field(
        default=None, description="Wait between steps, seconds"
    )
    replica_overhead_percent: StrictInt | None = Field(
        default=None, description="Replica overhead, in percent"
    )


class PromotionSettingsV1(BaseModel):
    """Effective promotion settings of an environment."""

    redeploy_on_promotion: bool | None = Field(
        default=False, description="Promote a fresh copy of the deployment instead of the original"
    )
    rolling_deploy: bool | None = Field(
        default=False, description="Replace replicas gradually when promoting"
    )
    promotion_cleanup_strategy: PromotionCleanupStrategyV1 | None = Field(
        default=PromotionCleanupStrategyV1.SCALE_TO_ZERO,
        description="What to do with the previous deployment afterwards",
    )
    rolling_deploy_config: RollingDeployConfigV1 | None = Field(
        default=None, description="Rolling deploy parameters"
    )
    ramp_up_while_promoting: bool | None = Field(
        default=False, description="Shift traffic gradually while promoting"
    )
    ramp_up_duration_seconds: int | None = Field(
        default=600, description="How long the traffic ramp lasts, seconds"
    )


class UpdatePromotionSettingsV1(BaseModel):
    """Partial promotion settings update: only the fields that are sent change."""

    redeploy_on_promotion: StrictBool | None = Field(
        default=None, description="Promote a fresh copy of the deployment instead of the original"
    )
    rolling_deploy: StrictBool | None = Field(
        default=None, description="Replace replicas gradually when promoting"
    )
    promotion_cleanup_strategy: PromotionCleanupStrategyV1 | None = Field(
        default=None, description="What to do with the previous deployment afterwards"
    )
    rolling_deploy_config: UpdateRollingDeployConfigV1 | None = Field(
        default=None, description="Rolling deploy parameters"
    )
    ramp_up_while_promoting: StrictBool | None = Field(
        default=None, description="Shift traffic gradually while promoting"
    )
    ramp_up_duration_seconds: StrictInt | None = Field(
        default=None, description="How long the traffic ramp lasts, seconds"
    )


class ChainEnvironmentV1(BaseModel):
    """An environment of a chain (e.g. production) and what it serves."""

    name: str = Field(description="Environment name")
    created_at: datetime = Field(description="Creation time (ISO 8601)")
    chain_id: str = Field(description="Id of the chain")
    promotion_settings: PromotionSettingsV1 = Field(description="Promotion settings")
    chainlet_settings: list[ChainletEnvironmentSettingsV1] = Field(
        description="Per-chainlet settings in this environment"
    )
    current_deployment: ChainDeploymentV1 | None = Field(
        description="Deployment the environment serves now"
    )
    candidate_deployment: ChainDeploymentV1 | None = Field(
        default=None, description="Deployment being promoted, while a promotion runs"
    )


class ChainEnvironmentsV1(BaseModel):
    """All environments of a chain.

    The published spec points this endpoint at the model-environment list (``EnvironmentsV1``);
    the items actually returned for chains are chain environments.
    """

    environments: list[ChainEnvironmentV1] = Field(description="The environments")


class CreateChainEnvironmentRequestV1(BaseModel):
    """Request to create a custom environment."""

    name: str = Field(description="Environment name")
    promotion_settings: UpdatePromotionSettingsV1 | None = Field(
        default=None, description="Promotion settings; unset fields keep their defaults"
    )
    chainlet_settings: list[ChainletEnvironmentSettingsRequestV1] | None = Field(
        default=None, description="Per-chainlet settings"
    )


class UpdateChainEnvironmentRequestV1(BaseModel):
    """Request to change an environment's settings."""

    promotion_settings: UpdatePromotionSettingsV1 | None = Field(
        default=None, description="Promotion settings to change"
    )


class UpdateChainEnvironmentResponseV1(BaseModel):
    """Answer to an environment update."""

    ok: bool = Field(description="True when the update was applied")


class PromoteToChainEnvironmentRequestV1(BaseModel):
    """Request to promote a deployment into an environment."""

    scale_down_previous_deployment: StrictBool = Field(
        default=True, description="Scale the replaced deployment down afterwards"
    )
    deployment_id: str = Field(description="Id of the chain deployment to promote")
