"""Autoscaling settings, as stored and as requested."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

__all__ = ["AutoscalingSettingsV1", "UpdateAutoscalingSettingsV1"]


class AutoscalingSettingsV1(BaseModel):
    """Effective autoscaling settings of a chainlet."""

    min_replica: int = Field(description="Lowest replica count")
    max_replica: int = Field(description="Highest replica count")
    autoscaling_window: int | None = Field(
        description="Seconds of traffic looked at when deciding to scale"
    )
    scale_down_delay: int | None = Field(description="Seconds to wait before removing a replica")
    concurrency_target: int = Field(description="Concurrent requests per replica before scaling up")
    target_utilization_percentage: int | None = Field(
        description="Utilization percentage the autoscaler aims for"
    )
    target_in_flight_tokens: int | None = Field(
        default=None, description="In-flight token target (early access)"
    )
    max_scale_down_rate: int | None = Field(
        default=None, description="Largest percentage of replicas removed per window"
    )


class UpdateAutoscalingSettingsV1(BaseModel):
    """Partial autoscaling update: only the fields that are sent change."""

    # The spec closes this object (additionalProperties: false), so a misspelt key is an error
    # rather than a silently ignored no-op.
    model_config = ConfigDict(extra="forbid")

    min_replica: StrictInt | None = Field(default=None, description="Lowest replica count")
    max_replica: StrictInt | None = Field(default=None, description="Highest replica count")
    autoscaling_window: StrictInt | None = Field(
        default=None, description="Seconds of traffic looked at when deciding to scale"
    )
    scale_down_delay: StrictInt | None = Field(
        default=None, description="Seconds to wait before removing a replica"
    )
    concurrency_target: StrictInt | None = Field(
        default=None, description="Concurrent requests per replica before scaling up"
    )
    target_utilization_percentage: StrictInt | None = Field(
        default=None, description="Utilization percentage the autoscaler aims for"
    )
    target_in_flight_tokens: StrictInt | None = Field(
        default=None, description="In-flight token target (early access)"
    )
    max_scale_down_rate: Annotated[StrictInt, Field(ge=1, le=50)] | None = Field(
        default=None, description="Largest percentage of replicas removed per window (1-50)"
    )
