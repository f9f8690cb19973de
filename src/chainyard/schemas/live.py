"""Live figures for the dashboard (chainyard extensions, not in Baseten's spec): an
environment's chainlets, and a chain's async queue per deployment.

Not exported from `chainyard.schemas`: that package is the Baseten wire format, checked against the
spec; these models are ours and only the dashboard's endpoints answer with them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chainyard.schemas.common import DeploymentStatusV1

__all__ = [
    "ChainAsyncQueue",
    "ChainletLive",
    "DeploymentAsyncQueue",
    "DeploymentLive",
    "EnvironmentLive",
    "LiveSeries",
]


class LiveSeries(BaseModel):
    """Change points, oldest first: each value holds from its time until the next point's time
    (the last one until the answer's `now`). Columns rather than rows keep the answer small."""

    t: list[float] = Field(description="Epoch seconds of each point")
    ready: list[int] = Field(description="Ready replicas")
    starting: list[int] = Field(description="Replicas starting")
    in_flight: list[int] = Field(description="Requests running on the chainlet's replicas")
    queued: list[int] = Field(description="Requests held at the gateway for a replica")


class ChainletLive(BaseModel):
    """One chainlet: what the store wants and what runs now."""

    id: str = Field(description="Chainlet id")
    name: str = Field(description="Chainlet name")
    status: DeploymentStatusV1 = Field(description="Chainlet status")
    instance_type_id: str = Field(description="Instance type it runs on")
    instance_type_name: str = Field(description="Human-readable name of the instance type")
    replicas_desired: int = Field(description="Replicas the control plane wants")
    replicas_ready: int = Field(description="Replicas serving now")
    replicas_starting: int = Field(description="Replicas starting now")
    in_flight: int = Field(description="Requests running now")
    queued: int = Field(description="Requests held at the gateway now")
    series: LiveSeries = Field(description="The figures over the requested window")


class DeploymentLive(BaseModel):
    """The current or the candidate deployment of the environment."""

    id: str = Field(description="Chain deployment id")
    role: Literal["current", "candidate"] = Field(description="What it is to the environment")
    status: DeploymentStatusV1 = Field(description="Deployment status")
    chainlets: list[ChainletLive] = Field(description="Its chainlets")


class EnvironmentLive(BaseModel):
    """Answer of GET /v1/chains/{chain_id}/environments/{env_name}/live."""

    chain_id: str = Field(description="Id of the chain")
    environment: str = Field(description="Environment name")
    now: float = Field(description="Epoch seconds at which the figures were read")
    window_seconds: int = Field(description="How far back the series go")
    sample_interval_seconds: float = Field(description="Seconds between two samples")
    deployments: list[DeploymentLive] = Field(
        description="The current deployment, then the candidate while a promotion runs"
    )


class DeploymentAsyncQueue(BaseModel):
    """The open async requests of one deployment, named as `async_queue_status` names them."""

    deployment_id: str = Field(description="Chain deployment id")
    num_queued_requests: int = Field(description="QUEUED requests that will run on it")
    num_in_progress_requests: int = Field(description="IN_PROGRESS requests on it")


class ChainAsyncQueue(BaseModel):
    """Answer of GET /v1/chains/{chain_id}/async_queue."""

    chain_id: str = Field(description="Id of the chain")
    deployments: list[DeploymentAsyncQueue] = Field(
        description="Deployments with queued or in-progress async requests, by id; "
        "a deployment not listed has none"
    )
