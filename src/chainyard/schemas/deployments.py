"""Chain deployments and their chainlets."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chainyard.schemas.autoscaling import AutoscalingSettingsV1
from chainyard.schemas.common import DeploymentStatusV1

__all__ = [
    "ChainDeploymentTombstoneV1",
    "ChainDeploymentV1",
    "ChainDeploymentsV1",
    "ChainletV1",
    "DeactivateResponseV1",
]


class ChainletV1(BaseModel):
    """One chainlet of a chain deployment."""

    id: str = Field(description="Chainlet id")
    name: str = Field(description="Chainlet name")
    autoscaling_settings: AutoscalingSettingsV1 | None = Field(
        description="Autoscaling settings; null until the chainlet has deployed"
    )
    instance_type_name: str = Field(description="Name of the instance type it runs on")
    active_replica_count: int = Field(description="Replicas currently serving")
    status: DeploymentStatusV1 = Field(description="Chainlet status")


class ChainDeploymentV1(BaseModel):
    """One deployment of a chain."""

    id: str = Field(description="Chain deployment id")
    created_at: datetime = Field(description="Creation time (ISO 8601)")
    chain_id: str = Field(description="Id of the chain")
    environment: str | None = Field(description="Environment it serves, if any")
    chainlets: list[ChainletV1] = Field(description="Its chainlets")
    status: DeploymentStatusV1 = Field(description="Deployment status")
    is_development: bool = Field(
        default=False,
        description="True for the chain's development deployment (chainyard extension, as on "
        "Baseten's model deployments): outside every environment, at most one replica, "
        "live-patched by `chainyard push --watch`",
    )


class ChainDeploymentsV1(BaseModel):
    """All deployments of a chain."""

    deployments: list[ChainDeploymentV1] = Field(description="The deployments")


class ChainDeploymentTombstoneV1(BaseModel):
    """Answer to deleting a chain deployment."""

    id: str = Field(description="Chain deployment id")
    deleted: bool = Field(description="True when the deployment is gone")
    chain_id: str = Field(description="Id of the chain")


class DeactivateResponseV1(BaseModel):
    """Answer to deactivating a deployment."""

    success: bool = Field(default=True, description="True when deactivation was accepted")
