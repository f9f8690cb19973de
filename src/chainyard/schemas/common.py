"""Enums shared by several resources of the wire format."""

from __future__ import annotations

import enum

__all__ = [
    "APIKeyCategory",
    "DeploymentStatusV1",
    "LogLevelV1",
    "PromotionCleanupStrategyV1",
    "RollingDeployStrategyV1",
    "SortOrderV1",
    "UpdateAutoscalingSettingsStatusV1",
]


class DeploymentStatusV1(enum.StrEnum):
    """Lifecycle status of a chain deployment or of one of its chainlets."""

    BUILDING = "BUILDING"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    LOADING_MODEL = "LOADING_MODEL"
    ACTIVE = "ACTIVE"
    UNHEALTHY = "UNHEALTHY"
    BUILD_FAILED = "BUILD_FAILED"
    BUILD_STOPPED = "BUILD_STOPPED"
    DEACTIVATING = "DEACTIVATING"
    INACTIVE = "INACTIVE"
    FAILED = "FAILED"
    UPDATING = "UPDATING"
    SCALED_TO_ZERO = "SCALED_TO_ZERO"
    WAKING_UP = "WAKING_UP"


class PromotionCleanupStrategyV1(enum.StrEnum):
    """What happens to the previous deployment once a promotion finishes."""

    KEEP = "KEEP"
    SCALE_TO_ZERO = "SCALE_TO_ZERO"
    DEACTIVATE = "DEACTIVATE"


class RollingDeployStrategyV1(enum.StrEnum):
    """How a rolling deploy replaces replicas."""

    REPLICA = "REPLICA"


class UpdateAutoscalingSettingsStatusV1(enum.StrEnum):
    """Outcome of an autoscaling settings update."""

    ACCEPTED = "ACCEPTED"
    QUEUED = "QUEUED"
    UNCHANGED = "UNCHANGED"


class APIKeyCategory(enum.StrEnum):
    """Scope an API key grants."""

    PERSONAL = "PERSONAL"
    WORKSPACE_MANAGE_ALL = "WORKSPACE_MANAGE_ALL"
    WORKSPACE_EXPORT_METRICS = "WORKSPACE_EXPORT_METRICS"
    WORKSPACE_INVOKE = "WORKSPACE_INVOKE"
    WORKSPACE_MANAGE_API_KEYS = "WORKSPACE_MANAGE_API_KEYS"


class LogLevelV1(enum.StrEnum):
    """Severity of a log line."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class SortOrderV1(enum.StrEnum):
    """Time ordering of returned log lines."""

    ASC = "asc"
    DESC = "desc"
