"""Per-chainlet settings of an environment: autoscaling and instance type."""

from __future__ import annotations

from pydantic import BaseModel, Field

from chainyard.schemas.autoscaling import AutoscalingSettingsV1, UpdateAutoscalingSettingsV1
from chainyard.schemas.common import UpdateAutoscalingSettingsStatusV1
from chainyard.schemas.deployments import ChainDeploymentV1
from chainyard.schemas.instance_types import InstanceTypeV1

__all__ = [
    "ChainletEnvironmentAutoscalingSettingsUpdateV1",
    "ChainletEnvironmentInstanceTypeUpdateV1",
    "ChainletEnvironmentSettingsRequestV1",
    "ChainletEnvironmentSettingsV1",
    "UpdateAutoscalingSettingsResponseV1",
    "UpdateChainletEnvironmentAutoscalingSettingsRequestV1",
    "UpdateChainletEnvironmentInstanceTypeRequestV1",
    "UpdateChainletEnvironmentInstanceTypeResponseV1",
]


class ChainletEnvironmentSettingsV1(BaseModel):
    """Settings a chainlet gets in one environment."""

    chainlet_name: str = Field(description="Chainlet name")
    autoscaling_settings: AutoscalingSettingsV1 | None = Field(
        description="Autoscaling settings; null until the chainlet has deployed"
    )
    instance_type: InstanceTypeV1 = Field(description="Instance type it runs on")


class ChainletEnvironmentSettingsRequestV1(BaseModel):
    """Settings for one chainlet, given when an environment is created."""

    chainlet_name: str = Field(description="Chainlet name")
    autoscaling_settings: UpdateAutoscalingSettingsV1 | None = Field(
        default=None, description="Autoscaling settings to apply"
    )
    instance_type_id: str = Field(default="1x2", description="Instance type id to run on")


class ChainletEnvironmentAutoscalingSettingsUpdateV1(BaseModel):
    """New autoscaling settings for one chainlet."""

    chainlet_name: str = Field(description="Chainlet name")
    autoscaling_settings: UpdateAutoscalingSettingsV1 = Field(
        description="Autoscaling fields to change"
    )


class UpdateChainletEnvironmentAutoscalingSettingsRequestV1(BaseModel):
    """Autoscaling updates for several chainlets of an environment."""

    updates: list[ChainletEnvironmentAutoscalingSettingsUpdateV1] = Field(
        description="One entry per chainlet; an unknown chainlet name is an error"
    )


class UpdateAutoscalingSettingsResponseV1(BaseModel):
    """Answer to an autoscaling update."""

    status: UpdateAutoscalingSettingsStatusV1 = Field(description="Outcome of the update")
    message: str = Field(description="Human-readable outcome")


class ChainletEnvironmentInstanceTypeUpdateV1(BaseModel):
    """New instance type for one chainlet."""

    chainlet_name: str = Field(description="Chainlet name")
    instance_type_id: str = Field(description="Instance type id to run on")


class UpdateChainletEnvironmentInstanceTypeRequestV1(BaseModel):
    """Instance type changes for several chainlets, applied as one new deployment."""

    updates: list[ChainletEnvironmentInstanceTypeUpdateV1] = Field(
        description="One entry per chainlet; an unknown chainlet name is an error"
    )


class UpdateChainletEnvironmentInstanceTypeResponseV1(BaseModel):
    """Answer to an instance type change."""

    requires_redeployment: bool = Field(description="True when a new deployment was needed")
    chain_deployment: ChainDeploymentV1 | None = Field(
        description="The new deployment, when one was created"
    )
    chainlet_environment_settings: list[ChainletEnvironmentSettingsV1] = Field(
        description="Chainlet settings after the change"
    )
