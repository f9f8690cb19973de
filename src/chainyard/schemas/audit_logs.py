"""Audit-log entries of a chain and the enums used to filter them."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from chainyard.schemas.audit_events import AuditLogEventDataV1

__all__ = [
    "AuditLogActorTypeV1",
    "AuditLogActorV1",
    "AuditLogEntryV1",
    "AuditLogEventTypeGroupV1",
    "AuditLogEventTypeV1",
    "AuditLogSortDirectionV1",
    "AuditLogSourceV1",
    "ListAuditLogsResponseV1",
    "PaginationResponseV1",
]


class AuditLogEventTypeV1(enum.StrEnum):
    """Kind of action an audit-log entry records.

    The full list is kept, not only the chain events chainyard writes, so that every value of
    the published enum parses.
    """

    MODEL_DEPLOYED = "MODEL_DEPLOYED"
    MODEL_DEPLOYMENT_ACTIVATED = "MODEL_DEPLOYMENT_ACTIVATED"
    MODEL_DEPLOYMENT_DEACTIVATED = "MODEL_DEPLOYMENT_DEACTIVATED"
    MODEL_DEPLOYMENT_RETRIED = "MODEL_DEPLOYMENT_RETRIED"
    MODEL_DEPLOYMENT_PROMOTED = "MODEL_DEPLOYMENT_PROMOTED"
    MODEL_DEPLOYMENT_AUTOSCALING_SETTINGS_CHANGED = "MODEL_DEPLOYMENT_AUTOSCALING_SETTINGS_CHANGED"
    MODEL_DEPLOYMENT_REQUEST_BACKPRESSURE_SETTINGS_CHANGED = (
        "MODEL_DEPLOYMENT_REQUEST_BACKPRESSURE_SETTINGS_CHANGED"
    )
    MODEL_DEPLOYMENT_INSTANCE_TYPE_CHANGED = "MODEL_DEPLOYMENT_INSTANCE_TYPE_CHANGED"
    MODEL_DEPLOYMENT_DELETED = "MODEL_DEPLOYMENT_DELETED"
    MODEL_DELETED = "MODEL_DELETED"
    CHAIN_DEPLOYED = "CHAIN_DEPLOYED"
    CHAIN_DEPLOYMENT_ACTIVATED = "CHAIN_DEPLOYMENT_ACTIVATED"
    CHAIN_DEPLOYMENT_DEACTIVATED = "CHAIN_DEPLOYMENT_DEACTIVATED"
    CHAIN_DEPLOYMENT_PROMOTED = "CHAIN_DEPLOYMENT_PROMOTED"
    CHAINLET_AUTOSCALING_SETTINGS_CHANGED = "CHAINLET_AUTOSCALING_SETTINGS_CHANGED"
    CHAINLET_INSTANCE_TYPE_CHANGED = "CHAINLET_INSTANCE_TYPE_CHANGED"
    CHAIN_DEPLOYMENT_DELETED = "CHAIN_DEPLOYMENT_DELETED"
    CHAIN_DELETED = "CHAIN_DELETED"
    CHAIN_ENVIRONMENT_CREATED = "CHAIN_ENVIRONMENT_CREATED"
    CHAIN_ENVIRONMENT_UPDATED = "CHAIN_ENVIRONMENT_UPDATED"
    SECRET_UPDATED = "SECRET_UPDATED"
    SECRET_DELETED = "SECRET_DELETED"
    API_KEY_CREATED = "API_KEY_CREATED"
    API_KEY_DELETED = "API_KEY_DELETED"
    GATEWAY_ENDPOINT_CREATED = "GATEWAY_ENDPOINT_CREATED"
    GATEWAY_ENDPOINT_UPDATED = "GATEWAY_ENDPOINT_UPDATED"
    GATEWAY_ENDPOINT_DELETED = "GATEWAY_ENDPOINT_DELETED"
    USER_INVITED = "USER_INVITED"
    USER_JOINED_ORGANIZATION = "USER_JOINED_ORGANIZATION"
    WEBHOOK_SIGNING_SECRET_CREATED = "WEBHOOK_SIGNING_SECRET_CREATED"
    WEBHOOK_SIGNING_SECRET_ROTATED = "WEBHOOK_SIGNING_SECRET_ROTATED"
    WEBHOOK_SIGNING_SECRET_DELETED = "WEBHOOK_SIGNING_SECRET_DELETED"
    USER_ROLE_UPDATED = "USER_ROLE_UPDATED"
    USER_TEAM_ROLE_UPDATED = "USER_TEAM_ROLE_UPDATED"
    USER_REMOVED = "USER_REMOVED"
    DIRECTORY_GROUP_ROLE_UPDATED = "DIRECTORY_GROUP_ROLE_UPDATED"
    REQUIRE_GROUP_BASED_ADMINS_ENABLED = "REQUIRE_GROUP_BASED_ADMINS_ENABLED"
    ENVIRONMENT_CREATED = "ENVIRONMENT_CREATED"
    ENVIRONMENT_UPDATED = "ENVIRONMENT_UPDATED"
    ENVIRONMENT_DELETED = "ENVIRONMENT_DELETED"
    REPLICA_TERMINATED = "REPLICA_TERMINATED"
    MODEL_PROMOTION_CONTROL_ACTION = "MODEL_PROMOTION_CONTROL_ACTION"
    SSH_CERTIFICATE_SIGNED = "SSH_CERTIFICATE_SIGNED"


class AuditLogEventTypeGroupV1(enum.StrEnum):
    """Coarse group of event types, used as a filter."""

    DEPLOYED = "DEPLOYED"
    PROMOTED = "PROMOTED"
    ACTIVATED_DEACTIVATED = "ACTIVATED_DEACTIVATED"
    AUTOSCALING_SETTINGS = "AUTOSCALING_SETTINGS"
    REQUEST_BACKPRESSURE_SETTINGS = "REQUEST_BACKPRESSURE_SETTINGS"
    INSTANCE_TYPE_CHANGED = "INSTANCE_TYPE_CHANGED"
    ENVIRONMENT_SETTINGS = "ENVIRONMENT_SETTINGS"
    REPLICA_TERMINATED = "REPLICA_TERMINATED"
    DELETED = "DELETED"
    SECRETS = "SECRETS"
    API_KEYS = "API_KEYS"
    GATEWAY = "GATEWAY"
    WEBHOOK_SIGNING_SECRETS = "WEBHOOK_SIGNING_SECRETS"
    USER_MANAGEMENT = "USER_MANAGEMENT"
    DIRECTORY_GROUP_MANAGEMENT = "DIRECTORY_GROUP_MANAGEMENT"
    SSH = "SSH"


class AuditLogActorTypeV1(enum.StrEnum):
    """Kind of actor behind an audited action."""

    USER = "USER"
    API_KEY = "API_KEY"
    BASETEN_USER = "BASETEN_USER"
    BASETEN_SYSTEM = "BASETEN_SYSTEM"
    TOMBSTONE_USER = "TOMBSTONE_USER"


class AuditLogSourceV1(enum.StrEnum):
    """Surface an audited action came from."""

    UI = "UI"
    API = "API"
    MCP = "MCP"
    SYSTEM = "SYSTEM"
    OTHER = "OTHER"


class AuditLogSortDirectionV1(enum.StrEnum):
    """Order of returned entries by creation time."""

    DESC = "DESC"
    ASC = "ASC"


class AuditLogActorV1(BaseModel):
    """Who performed an audited action."""

    type: AuditLogActorTypeV1 = Field(description="Kind of actor")
    email: str | None = Field(default=None, description="User email, for user actors")
    api_key_prefix: str | None = Field(default=None, description="Key prefix, for key actors")
    api_key_name: str | None = Field(default=None, description="Key name, for key actors")


class AuditLogEntryV1(BaseModel):
    """One audit-log entry."""

    id: str = Field(description="Entry id")
    created: datetime = Field(description="When the action happened (ISO 8601)")
    event_type: AuditLogEventTypeV1 = Field(description="Kind of action")
    event_data: AuditLogEventDataV1 = Field(description="Details, tagged by event_type")
    source: AuditLogSourceV1 | None = Field(default=None, description="Where the action came from")
    actor: AuditLogActorV1 = Field(description="Who did it")
    client_name: str | None = Field(default=None, description="Client name, if known")
    client_version: str | None = Field(default=None, description="Client version, if known")
    client_session_id: str | None = Field(
        default=None, description="Opaque id grouping actions of one client session"
    )

    # The tag is repeated at the top level and inside the payload; a mismatch would make the
    # entry self-contradictory for clients that dispatch on either one.
    @model_validator(mode="after")
    def _event_type_matches_payload(self) -> AuditLogEntryV1:
        if self.event_data.event_type != self.event_type.value:
            raise ValueError(
                f"event_type {self.event_type.value!r} does not match "
                f"event_data.event_type {self.event_data.event_type!r}"
            )
        return self


class PaginationResponseV1(BaseModel):
    """Where a page sits in a listing."""

    has_more: bool = Field(description="True when more items follow")
    cursor: str | None = Field(default=None, description="Cursor for the next page, if any")


class ListAuditLogsResponseV1(BaseModel):
    """A page of audit-log entries, newest first unless asked otherwise."""

    items: list[AuditLogEntryV1] = Field(description="The entries")
    pagination: PaginationResponseV1 = Field(description="Paging state")
