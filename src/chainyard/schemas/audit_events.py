"""Audit-log payloads for the events chainyard records (chains, secrets, API keys, webhook
secrets).

Every payload is a closed object (additionalProperties: false in the spec) tagged by
``event_type``; ``AuditLogEventDataV1`` is the tagged union of all of them.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuditLogApiKeyTypeV1",
    "AuditLogEventApiKeyCreatedV1",
    "AuditLogEventApiKeyDeletedV1",
    "AuditLogEventAutoscalingSettingsV1",
    "AuditLogEventChainDeletedV1",
    "AuditLogEventChainDeployedV1",
    "AuditLogEventChainDeploymentActivatedV1",
    "AuditLogEventChainDeploymentDeactivatedV1",
    "AuditLogEventChainDeploymentDeletedV1",
    "AuditLogEventChainDeploymentPromotedV1",
    "AuditLogEventChainEnvironmentCreatedV1",
    "AuditLogEventChainEnvironmentUpdatedV1",
    "AuditLogEventChainletAutoscalingSettingsChangedV1",
    "AuditLogEventChainletInstanceTypeChangedV1",
    "AuditLogEventDataV1",
    "AuditLogEventSecretDeletedV1",
    "AuditLogEventSecretUpdatedV1",
    "AuditLogEventWebhookSigningSecretCreatedV1",
    "AuditLogEventWebhookSigningSecretRotatedV1",
]

_CLOSED = ConfigDict(extra="forbid")


class AuditLogApiKeyTypeV1(enum.StrEnum):
    """Kind of API key named in an API-key event."""

    PERSONAL = "PERSONAL"
    CREATOR_SERVICE_ACCOUNT = "CREATOR_SERVICE_ACCOUNT"
    MANAGE_API_KEYS_SERVICE_ACCOUNT = "MANAGE_API_KEYS_SERVICE_ACCOUNT"
    INVOKE_ALL_MODELS_SERVICE_ACCOUNT = "INVOKE_ALL_MODELS_SERVICE_ACCOUNT"
    INVOKE_ALLOWED_MODELS_SERVICE_ACCOUNT = "INVOKE_ALLOWED_MODELS_SERVICE_ACCOUNT"
    INVOKE_SCOPED_ENVS_AND_MODELS_SERVICE_ACCOUNT = "INVOKE_SCOPED_ENVS_AND_MODELS_SERVICE_ACCOUNT"
    EXPORT_METRICS_ALL_MODELS_SERVICE_ACCOUNT = "EXPORT_METRICS_ALL_MODELS_SERVICE_ACCOUNT"
    EXPORT_METRICS_ALLOWED_MODELS_SERVICE_ACCOUNT = "EXPORT_METRICS_ALLOWED_MODELS_SERVICE_ACCOUNT"
    INVOKE_ALL_SHARED_ENDPOINTS_SERVICE_ACCOUNT = "INVOKE_ALL_SHARED_ENDPOINTS_SERVICE_ACCOUNT"
    INVOKE_ALLOWED_SHARED_ENDPOINTS_SERVICE_ACCOUNT = (
        "INVOKE_ALLOWED_SHARED_ENDPOINTS_SERVICE_ACCOUNT"
    )


class AuditLogEventAutoscalingSettingsV1(BaseModel):
    """Snapshot of autoscaling settings kept in an audit event."""

    model_config = _CLOSED

    min_replica: int
    max_replica: int
    concurrency_target: int
    autoscaling_window: int | None
    scale_down_delay: int | None
    target_utilization_percentage: int | None
    target_in_flight_tokens: int | None
    max_scale_down_rate: float | None


class AuditLogEventChainDeployedV1(BaseModel):
    """A chain deployment was created."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_DEPLOYED"]
    chain_id: str
    chain_name: str
    chain_deployment_id: str
    chain_deployment_name: str | None
    is_primary: bool
    publish: bool


class AuditLogEventChainDeploymentActivatedV1(BaseModel):
    """A chain deployment was activated."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_DEPLOYMENT_ACTIVATED"]
    chain_id: str
    chain_name: str
    chain_deployment_id: str
    chain_deployment_name: str | None


class AuditLogEventChainDeploymentDeactivatedV1(BaseModel):
    """A chain deployment was deactivated."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_DEPLOYMENT_DEACTIVATED"]
    chain_id: str
    chain_name: str
    chain_deployment_id: str
    chain_deployment_name: str | None


class AuditLogEventChainDeploymentPromotedV1(BaseModel):
    """A chain deployment was promoted into an environment."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_DEPLOYMENT_PROMOTED"]
    chain_id: str
    chain_name: str
    chain_deployment_id: str
    chain_deployment_name: str | None
    environment_name: str | None
    environment_id: str | None


# Inherits the settings snapshot so the new values come first, in the spec's field order.
class AuditLogEventChainletAutoscalingSettingsChangedV1(AuditLogEventAutoscalingSettingsV1):
    """A chainlet's autoscaling settings changed; the new values are top-level fields."""

    model_config = _CLOSED

    event_type: Literal["CHAINLET_AUTOSCALING_SETTINGS_CHANGED"]
    chain_id: str
    chain_name: str
    chain_deployment_id: str
    chain_deployment_name: str | None
    chainlet_name: str
    chainlet_id: str
    previous_settings: AuditLogEventAutoscalingSettingsV1 | None


class AuditLogEventChainletInstanceTypeChangedV1(BaseModel):
    """A chainlet's instance type changed."""

    model_config = _CLOSED

    event_type: Literal["CHAINLET_INSTANCE_TYPE_CHANGED"]
    chain_id: str
    chain_name: str
    chain_deployment_id: str
    chain_deployment_name: str | None
    chainlet_name: str
    chainlet_id: str
    instance_type_name: str


class AuditLogEventChainDeploymentDeletedV1(BaseModel):
    """A chain deployment was deleted."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_DEPLOYMENT_DELETED"]
    chain_id: str
    chain_name: str
    chain_deployment_id: str
    # Named deployment_name (not chain_deployment_name) in the spec, unlike its siblings.
    deployment_name: str | None


class AuditLogEventChainDeletedV1(BaseModel):
    """A chain was deleted."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_DELETED"]
    chain_id: str
    chain_name: str
    chain_deployment_name: str | None


class AuditLogEventChainEnvironmentCreatedV1(BaseModel):
    """A chain environment was created."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_ENVIRONMENT_CREATED"]
    chain_id: str
    chain_name: str
    environment_name: str
    redeploy_on_promotion: bool | None
    ramp_up_while_promoting: bool | None
    ramp_up_duration_seconds: int | None


class AuditLogEventChainEnvironmentUpdatedV1(BaseModel):
    """A chain environment's settings changed."""

    model_config = _CLOSED

    event_type: Literal["CHAIN_ENVIRONMENT_UPDATED"]
    chain_id: str
    chain_name: str
    environment_name: str
    redeploy_on_promotion: bool | None
    ramp_up_while_promoting: bool | None
    ramp_up_duration_seconds: int | None


class AuditLogEventSecretUpdatedV1(BaseModel):
    """A secret was created or its value replaced."""

    model_config = _CLOSED

    event_type: Literal["SECRET_UPDATED"]
    secret_id: str
    secret_name: str


class AuditLogEventSecretDeletedV1(BaseModel):
    """A secret was deleted."""

    model_config = _CLOSED

    event_type: Literal["SECRET_DELETED"]
    secret_id: str
    secret_name: str


class AuditLogEventApiKeyCreatedV1(BaseModel):
    """An API key was created."""

    model_config = _CLOSED

    event_type: Literal["API_KEY_CREATED"]
    api_key_id: str
    api_key_type: AuditLogApiKeyTypeV1
    prefix: str


class AuditLogEventApiKeyDeletedV1(BaseModel):
    """An API key was revoked."""

    model_config = _CLOSED

    event_type: Literal["API_KEY_DELETED"]
    api_key_id: str
    api_key_type: AuditLogApiKeyTypeV1
    prefix: str


class AuditLogEventWebhookSigningSecretCreatedV1(BaseModel):
    """A webhook signing secret was created."""

    model_config = _CLOSED

    event_type: Literal["WEBHOOK_SIGNING_SECRET_CREATED"]
    webhook_signing_secret_id: str


class AuditLogEventWebhookSigningSecretRotatedV1(BaseModel):
    """A webhook signing secret was replaced by a new one (it signs until its grace period
    ends)."""

    model_config = _CLOSED

    event_type: Literal["WEBHOOK_SIGNING_SECRET_ROTATED"]
    webhook_signing_secret_id: str


AuditLogEventDataV1 = Annotated[
    AuditLogEventChainDeployedV1
    | AuditLogEventChainDeploymentActivatedV1
    | AuditLogEventChainDeploymentDeactivatedV1
    | AuditLogEventChainDeploymentPromotedV1
    | AuditLogEventChainletAutoscalingSettingsChangedV1
    | AuditLogEventChainletInstanceTypeChangedV1
    | AuditLogEventChainDeploymentDeletedV1
    | AuditLogEventChainDeletedV1
    | AuditLogEventChainEnvironmentCreatedV1
    | AuditLogEventChainEnvironmentUpdatedV1
    | AuditLogEventSecretUpdatedV1
    | AuditLogEventSecretDeletedV1
    | AuditLogEventApiKeyCreatedV1
    | AuditLogEventApiKeyDeletedV1
    | AuditLogEventWebhookSigningSecretCreatedV1
    | AuditLogEventWebhookSigningSecretRotatedV1,
    Field(discriminator="event_type"),
]
