"""`client.async_requests`: async inference (docs/async-inference.md). A request is stored at
once and runs later; its result goes to the webhook it names, signed. For the blocking and the
async client (whose methods are coroutines: two meanings of "async", one for each).

    request_id = client.async_requests.submit(
        chain_id, {"max_value": 5}, webhook_endpoint="https://example.com/hook"
    )
    client.async_requests.status(request_id).status  # "QUEUED", then ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from chainyard.schemas import (
    AsyncQueueStatusResponse,
    AsyncRequestStatusResponse,
    AsyncRunRemoteResponse,
    CancelAsyncRequestResponse,
    InferenceRetryConfig,
)
from chainyard.sdk import _ops

if TYPE_CHECKING:
    from chainyard.sdk.async_client import AsyncClient
    from chainyard.sdk.client import Client

__all__ = ["AsyncAsyncRequests", "AsyncRequests"]

T = TypeVar("T")

RetryConfig = InferenceRetryConfig | Mapping[str, Any]


# -- the requests, shared by both clients ---------------------------------------------------


def submit_op(
    chain_id: str,
    model_input: Mapping[str, Any],
    *,
    environment: str | None,
    deployment_id: str | None,
    development: bool,
    webhook_endpoint: str | None,
    priority: int | None,
    max_time_in_queue_seconds: int | None,
    inference_retry_config: RetryConfig | None,
) -> _ops.Op[AsyncRunRemoteResponse]:
    path = _ops._inference_path(
        chain_id, "async_run_remote", environment, deployment_id, development
    )
    body: dict[str, Any] = {"model_input": dict(model_input)}
    # Left out when not given: the server's defaults are Baseten's.
    optional = {
        "webhook_endpoint": webhook_endpoint,
        "priority": priority,
        "max_time_in_queue_seconds": max_time_in_queue_seconds,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if inference_retry_config is not None:
        body["inference_retry_config"] = _ops._dump(
            _ops._coerce(InferenceRetryConfig, inference_retry_config)
        )
    content = json.dumps(body).encode()
    return _ops.Op("POST", path, _ops.model(AsyncRunRemoteResponse), content=content)


def status_op(request_id: str) -> _ops.Op[AsyncRequestStatusResponse]:
    # The id alone names a request: the server answers this path whatever the Host.
    path = f"/async_request/{_ops._seg(request_id)}"
    return _ops.Op("GET", path, _ops.model(AsyncRequestStatusResponse))


def cancel_op(request_id: str) -> _ops.Op[CancelAsyncRequestResponse]:
    path = f"/async_request/{_ops._seg(request_id)}"
    return _ops.Op("DELETE", path, _ops.model(CancelAsyncRequestResponse))


def queue_status_op(
    chain_id: str, *, environment: str | None, deployment_id: str | None, development: bool
) -> _ops.Op[AsyncQueueStatusResponse]:
    path = _ops._inference_path(
        chain_id, "async_queue_status", environment, deployment_id, development
    )
    return _ops.Op("GET", path, _ops.model(AsyncQueueStatusResponse))


# -- the namespaces ---------------------------------------------------------------------------


class AsyncRequests:
    """Async inference: submit a request, follow it, cancel it while queued, count a queue."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _call(self, op: _ops.Op[T]) -> T:
        return self._client._call(op)

    def submit(
        self,
        chain_id: str,
        model_input: Mapping[str, Any],
        *,
        environment: str | None = None,
        deployment_id: str | None = None,
        development: bool = False,
        webhook_endpoint: str | None = None,
        priority: int | None = None,
        max_time_in_queue_seconds: int | None = None,
        inference_retry_config: RetryConfig | None = None,
    ) -> str:
        """Queues a call of the chain's entrypoint with `model_input` (its run_remote
        arguments) and returns the request's id. The target is production unless
        `environment`, `deployment_id` or `development=True` says otherwise. `priority` 0 runs
        first (default 0, at most 2); a request still queued after
        `max_time_in_queue_seconds` (10 to 259,200; default 600) expires; the result goes to
        `webhook_endpoint` (https), signed with the workspace's webhook secrets."""
        op = submit_op(
            chain_id,
            model_input,
            environment=environment,
            deployment_id=deployment_id,
            development=development,
            webhook_endpoint=webhook_endpoint,
            priority=priority,
            max_time_in_queue_seconds=max_time_in_queue_seconds,
            inference_retry_config=inference_retry_config,
        )
        return self._call(op).request_id

    def status(self, request_id: str) -> AsyncRequestStatusResponse:
        """Where the request stands: `status`, `webhook_status` and `errors`."""
        return self._call(status_op(request_id))

    def cancel(self, request_id: str) -> CancelAsyncRequestResponse:
        """Cancels a QUEUED request; any other is left alone (`canceled` False, and why)."""
        return self._call(cancel_op(request_id))

    def queue_status(
        self,
        chain_id: str,
        *,
        environment: str | None = None,
        deployment_id: str | None = None,
        development: bool = False,
    ) -> AsyncQueueStatusResponse:
        """The target's queued and in-progress requests (production unless told otherwise)."""
        return self._call(
            queue_status_op(
                chain_id,
                environment=environment,
                deployment_id=deployment_id,
                development=development,
            )
        )


class AsyncAsyncRequests:
    """Async inference: submit a request, follow it, cancel it while queued, count a queue."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _call(self, op: _ops.Op[T]) -> T:
        return await self._client._call(op)

    async def submit(
        self,
        chain_id: str,
        model_input: Mapping[str, Any],
        *,
        environment: str | None = None,
        deployment_id: str | None = None,
        development: bool = False,
        webhook_endpoint: str | None = None,
        priority: int | None = None,
        max_time_in_queue_seconds: int | None = None,
        inference_retry_config: RetryConfig | None = None,
    ) -> str:
        """Queues a call of the chain's entrypoint with `model_input` (its run_remote
        arguments) and returns the request's id. The target is production unless
        `environment`, `deployment_id` or `development=True` says otherwise. `priority` 0 runs
        first (default 0, at most 2); a request still queued after
        `max_time_in_queue_seconds` (10 to 259,200; default 600) expires; the result goes to
        `webhook_endpoint` (https), signed with the workspace's webhook secrets."""
        op = submit_op(
            chain_id,
            model_input,
            environment=environment,
            deployment_id=deployment_id,
            development=development,
            webhook_endpoint=webhook_endpoint,
            priority=priority,
            max_time_in_queue_seconds=max_time_in_queue_seconds,
            inference_retry_config=inference_retry_config,
        )
        return (await self._call(op)).request_id

    async def status(self, request_id: str) -> AsyncRequestStatusResponse:
        """Where the request stands: `status`, `webhook_status` and `errors`."""
        return await self._call(status_op(request_id))

    async def cancel(self, request_id: str) -> CancelAsyncRequestResponse:
        """Cancels a QUEUED request; any other is left alone (`canceled` False, and why)."""
        return await self._call(cancel_op(request_id))

    async def queue_status(
        self,
        chain_id: str,
        *,
        environment: str | None = None,
        deployment_id: str | None = None,
        development: bool = False,
    ) -> AsyncQueueStatusResponse:
        """The target's queued and in-progress requests (production unless told otherwise)."""
        return await self._call(
            queue_status_op(
                chain_id,
                environment=environment,
                deployment_id=deployment_id,
                development=development,
            )
        )
