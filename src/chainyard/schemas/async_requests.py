"""Async inference (docs/async-inference.md): the bodies and answers of `async_run_remote`,
`/async_request/{request_id}` and `async_queue_status`, named and shaped as in Baseten's
inference spec (`AsyncRequestStatusResponse`, `AsyncRequestError`; the others are inline
there)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainyard.domain import async_requests as d

__all__ = [
    "AsyncErrorCode",
    "AsyncQueueStatusResponse",
    "AsyncRequestError",
    "AsyncRequestStatus",
    "AsyncRequestStatusResponse",
    "AsyncRunRemoteRequest",
    "AsyncRunRemoteResponse",
    "AsyncWebhookStatus",
    "CancelAsyncRequestResponse",
    "InferenceRetryConfig",
]

# The domain's enums, spelled out so that the wire schema lists them inline as the spec does
# (a test pins them to domain.async_requests).
AsyncRequestStatus = Literal[
    "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "EXPIRED", "CANCELED", "WEBHOOK_FAILED"
]
AsyncWebhookStatus = Literal["PENDING", "SUCCEEDED", "FAILED", "CANCELED", "NO_WEBHOOK_PROVIDED"]
AsyncErrorCode = Literal[
    "MODEL_PREDICT_ERROR",
    "MODEL_PREDICT_TIMEOUT",
    "MODEL_NOT_READY",
    "MODEL_DOES_NOT_EXIST",
    "MODEL_UNAVAILABLE",
    "MODEL_INVALID_INPUT",
    "ASYNC_REQUEST_NOT_SUPPORTED",
    "INTERNAL_SERVER_ERROR",
]


class InferenceRetryConfig(BaseModel):
    """Exponential backoff between attempts of the predict call."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(
        default=d.MAX_ATTEMPTS_DEFAULT,
        ge=d.MAX_ATTEMPTS_MIN,
        le=d.MAX_ATTEMPTS_MAX,
        description="Attempts of the predict call, the first one included",
    )
    initial_delay_ms: int = Field(
        default=d.INITIAL_DELAY_MS_DEFAULT,
        ge=d.INITIAL_DELAY_MS_MIN,
        le=d.INITIAL_DELAY_MS_MAX,
        description="Wait after the first failed attempt, doubled after each further one",
    )
    max_delay_ms: int = Field(
        default=d.MAX_DELAY_MS_DEFAULT,
        ge=d.MAX_DELAY_MS_MIN,
        le=d.MAX_DELAY_MS_MAX,
        description="The longest wait between two attempts",
    )


class AsyncRunRemoteRequest(BaseModel):
    """The body of `async_run_remote` (at most 256 KiB). The routes check it with
    `domain.async_requests.parse_body`; this model documents it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_input: dict[str, Any] = Field(
        description="The arguments of the chain's run_remote, by name"
    )
    webhook_endpoint: str | None = Field(
        default=None,
        max_length=d.MAX_WEBHOOK_URL_LENGTH,
        description="URL that receives the result, signed (X-BASETEN-SIGNATURE); none: the "
        "result is not kept",
    )
    priority: int = Field(
        default=d.PRIORITY_DEFAULT,
        ge=d.PRIORITY_MIN,
        le=d.PRIORITY_MAX,
        description="0 runs first, 2 last",
    )
    max_time_in_queue_seconds: int = Field(
        default=d.QUEUE_SECONDS_DEFAULT,
        ge=d.QUEUE_SECONDS_MIN,
        le=d.QUEUE_SECONDS_MAX,
        description="A request still queued after this long expires (EXPIRED)",
    )
    inference_retry_config: InferenceRetryConfig | None = Field(
        default=None, description="Retries of the predict call; defaults when left out"
    )


class AsyncRunRemoteResponse(BaseModel):
    """Answer (201) to `async_run_remote`: the request is stored and will run."""

    request_id: str = Field(description="The ID of the async request")


class AsyncRequestError(BaseModel):
    code: AsyncErrorCode = Field(description="The type of error that occurred")
    message: str = Field(description="Details of the error")


class AsyncRequestStatusResponse(BaseModel):
    """`GET /async_request/{request_id}`. chainyard runs chains only: `chain_id` is always there
    and `model_id` never is (Baseten sends it for model requests only)."""

    request_id: str = Field(description="The ID of the async request")
    chain_id: str = Field(description="The ID of the chain that executed the request")
    deployment_id: str = Field(description="The ID of the deployment that executed the request")
    status: AsyncRequestStatus = Field(description="The status of the async request")
    webhook_status: AsyncWebhookStatus = Field(
        description="The status of sending the prediction result to the provided webhook"
    )
    created_at: datetime = Field(description="When the request was created (UTC)")
    status_at: datetime = Field(description="When the request's status last changed (UTC)")
    # Required, and documented with its default, as the spec has it.
    errors: list[AsyncRequestError] = Field(
        description="Errors that occurred; empty if none", json_schema_extra={"default": []}
    )


class CancelAsyncRequestResponse(BaseModel):
    """`DELETE /async_request/{request_id}`: only a QUEUED request can be canceled."""

    request_id: str = Field(description="The ID of the async request")
    canceled: bool = Field(description="Whether the request was canceled")
    message: str = Field(description="Why it was, or was not, canceled")


class AsyncQueueStatusResponse(BaseModel):
    """`async_queue_status`. Baseten names a model here; for a chain, `model_id` holds the
    chain's id (docs/api-compatibility.md)."""

    model_config = ConfigDict(protected_namespaces=())

    model_id: str = Field(description="The ID of the chain (Baseten: the model)")
    deployment_id: str = Field(description="The ID of the deployment")
    num_queued_requests: int = Field(description="Requests QUEUED, awaiting processing")
    num_in_progress_requests: int = Field(description="Requests IN_PROGRESS")
