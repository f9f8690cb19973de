"""Error body of every non-2xx answer (ours; the Baseten spec does not define one)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["ErrorResponse"]


class ErrorResponse(BaseModel):
    """An error answer."""

    error: str = Field(description="Human-readable message")
    code: str = Field(description="Machine-readable code, UPPER_SNAKE_CASE")
