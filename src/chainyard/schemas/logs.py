"""Chainlet logs."""

from __future__ import annotations

from pydantic import BaseModel, Field

from chainyard.schemas.common import LogLevelV1

__all__ = ["GetLogsResponseV1", "LogV1"]


class LogV1(BaseModel):
    """One log line."""

    timestamp: str = Field(description="Epoch time of the line, in nanoseconds, as a string")
    message: str = Field(description="The line")
    replica: str | None = Field(description="Replica that wrote it, if any")
    request_id: str | None = Field(default=None, description="Request it belongs to, if any")
    level: LogLevelV1 | None = Field(default=None, description="Severity, if known")


class GetLogsResponseV1(BaseModel):
    """A batch of log lines."""

    logs: list[LogV1] = Field(description="The lines")
