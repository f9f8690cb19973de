"""Baseten's async inference paths for chains (docs/async-inference.md): `async_run_remote`
enqueues a request and answers its id (201), `async_request/{request_id}` reports or cancels
it, `async_queue_status` counts a target's queue. The same three forms as run_remote
(gateway/routes.py): `/chains/{chain_id}/...`; the bare path with a Host header
`chain-{chain_id}.<domain>`; and the regional bare path (`chain-{chain_id}-{env}.<domain>`).

Nothing here runs a chain: the request is stored, and a runner (async_runner/) takes it from the
store. Enqueueing is an inference route (the fast lane serves it, gateway/fast_lane.py): its body
is read here, at most 256 KiB, rather than by the app's body-size middleware.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from chainyard.domain import async_requests as d
from chainyard.domain.errors import ChainyardError, Invalid, NotFound, PayloadTooLarge
from chainyard.gateway import bodies
from chainyard.gateway.routes import (
    CoreDep,
    chain_from_host,
    error_answer,
    regional_from_host,
    request_actor,
    resolve_target,
)
from chainyard.schemas.async_requests import (
    AsyncQueueStatusResponse,
    AsyncRequestStatusResponse,
    AsyncRunRemoteRequest,
    AsyncRunRemoteResponse,
    CancelAsyncRequestResponse,
)
from chainyard.services import async_requests
from chainyard.services.context import Core
from chainyard.webhooks import targets

router = APIRouter(tags=["inference"])

# QUEUED plus IN_PROGRESS requests a workspace may hold; a module attribute so tests can lower it.
WORKSPACE_LIMIT = d.WORKSPACE_LIMIT
REQUEST_NOT_FOUND = "ASYNC_REQUEST_NOT_FOUND"


# -- answers --------------------------------------------------------------------------------


def _json(model: Any, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _refusal(status: int, exc: ChainyardError, error_code: str) -> Response:
    # The inference spec's shape; `code` says which check refused (INVALID_WEBHOOK_ENDPOINT...).
    body = {"error": exc.message, "error_code": error_code, "code": exc.code}
    return JSONResponse(body, status_code=status)


def _error(exc: ChainyardError) -> Response:
    if isinstance(exc, PayloadTooLarge):
        return _refusal(413, exc, "payload_too_large")
    if isinstance(exc, Invalid):
        return _refusal(400, exc, "client_error")
    if isinstance(exc, NotFound) and exc.code == REQUEST_NOT_FOUND:
        return _refusal(404, exc, "client_error")
    return error_answer(exc)


async def _guarded(call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except ChainyardError as exc:
        return _error(exc)


# -- enqueue --------------------------------------------------------------------------------


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the async request body is larger than {d.MAX_BODY_BYTES} bytes (256 KiB), the most "
        "accepted",
        code="PAYLOAD_TOO_LARGE",
    )


async def _read_body(request: Request) -> bytes:
    """The whole body, refused (413) as soon as it is known to pass 256 KiB: by its declared
    length before anything is read, else once that much has arrived."""
    length = bodies.declared_length(request)
    if length is not None and length > d.MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > d.MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise Invalid("the client went away while sending the body") from exc
    return b"".join(chunks)


def _policy(request: Request) -> targets.TargetPolicy:
    policy: targets.TargetPolicy | None = getattr(request.app.state, "webhook_policy", None)
    # Without one (an app built without serving_app) the strictest: public https targets only.
    return policy if policy is not None else targets.TargetPolicy()


def _on_enqueued(request: Request) -> Callable[[], None] | None:
    """What wakes the runner once a request is committed (app.state.async_enqueued, set where a
    runner serves), called on the event loop: enqueue's commit runs in a worker thread."""
    wake = getattr(request.app.state, "async_enqueued", None)
    if not callable(wake):
        return None
    loop = asyncio.get_running_loop()

    def woken() -> None:
        loop.call_soon_threadsafe(wake)

    return woken


def _target(environment: str | None, deployment_id: str | None, development: bool) -> d.AsyncTarget:
    if development:
        return d.AsyncTarget("development")
    if deployment_id is not None:
        return d.AsyncTarget("deployment")
    return d.AsyncTarget("environment", environment or "production")


async def _enqueue(
    request: Request,
    core: Core,
    chain_id: str,
    *,
    environment: str | None = None,
    deployment_id: str | None = None,
    development: bool = False,
) -> Response:
    length = bodies.declared_length(request)
    if length is not None and length > d.MAX_BODY_BYTES:
        raise _too_large()  # before the key is even looked at: nothing of it will be read
    actor = await request_actor(request, core)
    spec = d.parse_body(await _read_body(request))
    if spec.webhook_endpoint is not None:
        targets.parse(spec.webhook_endpoint, _policy(request))
    # An environment's request is resolved again when claimed (a promotion moves it); this
    # resolution checks the target exists and is served now (404 otherwise).
    resolved = await resolve_target(
        request, core, chain_id, environment, deployment_id, development=development
    )
    answer = await run_in_threadpool(
        async_requests.enqueue,
        core.db,
        actor,
        chain_id=chain_id,
        deployment_id=resolved.deployment_id,
        target=_target(environment, deployment_id, development),
        spec=spec,
        workspace_limit=WORKSPACE_LIMIT,
        on_enqueued=_on_enqueued(request),
    )
    return _json(answer, 201)


async def _queue_status(
    request: Request,
    core: Core,
    chain_id: str,
    *,
    environment: str | None = None,
    deployment_id: str | None = None,
    development: bool = False,
) -> Response:
    actor = await request_actor(request, core)
    resolved = await resolve_target(
        request, core, chain_id, environment, deployment_id, development=development
    )
    answer = await run_in_threadpool(
        async_requests.queue_status,
        core.db,
        actor,
        chain_id=chain_id,
        deployment_id=resolved.deployment_id,
        target=_target(environment, deployment_id, development),
    )
    return _json(answer)


# -- one request ----------------------------------------------------------------------------


async def _status(
    request: Request, core: Core, request_id: str, chain_id: str | None = None
) -> AsyncRequestStatusResponse:
    """The request's status; on a chain's path, a request of another chain is not found."""
    actor = await request_actor(request, core)
    answer = await run_in_threadpool(async_requests.status, core.db, actor, request_id)
    if chain_id is not None and answer.chain_id != chain_id:
        raise NotFound(f"async request '{request_id}' not found", code=REQUEST_NOT_FOUND)
    return answer


async def _cancel(
    request: Request, core: Core, request_id: str, chain_id: str | None = None
) -> Response:
    if chain_id is not None:
        await _status(request, core, request_id, chain_id)
    actor = await request_actor(request, core)
    answer = await run_in_threadpool(async_requests.cancel, core.db, actor, request_id)
    return _json(answer)


# -- the OpenAPI document ---------------------------------------------------------------------


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` put in place: the document of an operation whose
    body the route reads itself has nowhere else to keep them."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def _errors(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """Error answers whose meaning differs from run_remote's (api/openapi_errors.py documents
    the rest), in the inference error shape."""
    shape = {"$ref": "#/components/schemas/InferenceErrorResponse"}
    return {
        int(status.removeprefix("e")): {
            "description": text,
            "content": {"application/json": {"schema": shape}},
        }
        for status, text in descriptions.items()
    }


_NOT_FOUND_TARGET = "No such chain, environment or deployment, or it has no active deployment"
_ENQUEUE_DOC: dict[str, Any] = {
    "status_code": 201,
    "response_model": AsyncRunRemoteResponse,
    "responses": {
        201: {"description": "The request is stored and will run"},
        **_errors(
            e400="A field is missing, of the wrong type or out of its range, or the webhook "
            "endpoint is refused (`code` INVALID_WEBHOOK_ENDPOINT)",
            e404=_NOT_FOUND_TARGET,
            e413="The body is larger than 256 KiB",
            e429="The workspace holds 50,000 queued or in-progress async requests, its limit",
        ),
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "description": "The chain's run_remote input and how to run it (at most 256 KiB)",
            "content": {
                "application/json": {"schema": _inlined(AsyncRunRemoteRequest.model_json_schema())}
            },
        }
    },
}
_REQUEST_ERRORS = _errors(
    e404="No such request in the API key's workspace (`code` ASYNC_REQUEST_NOT_FOUND)"
)
_STATUS_DOC: dict[str, Any] = {
    "response_model": AsyncRequestStatusResponse,
    "responses": _REQUEST_ERRORS,
}
_CANCEL_DOC: dict[str, Any] = {
    "response_model": CancelAsyncRequestResponse,
    "responses": _REQUEST_ERRORS,
}
_QUEUE_DOC: dict[str, Any] = {
    "response_model": AsyncQueueStatusResponse,
    "responses": _errors(e404=_NOT_FOUND_TARGET),
}


# -- /chains/{chain_id}/... ---------------------------------------------------------------------


@router.post("/chains/{chain_id}/production/async_run_remote", **_ENQUEUE_DOC)
async def async_run_production(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _guarded(lambda: _enqueue(request, core, chain_id, environment="production"))


@router.post("/chains/{chain_id}/development/async_run_remote", **_ENQUEUE_DOC)
async def async_run_development(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _guarded(lambda: _enqueue(request, core, chain_id, development=True))


@router.post("/chains/{chain_id}/environments/{env_name}/async_run_remote", **_ENQUEUE_DOC)
async def async_run_environment(
    chain_id: str, env_name: str, request: Request, core: CoreDep
) -> Response:
    return await _guarded(lambda: _enqueue(request, core, chain_id, environment=env_name))


@router.post("/chains/{chain_id}/deployment/{deployment_id}/async_run_remote", **_ENQUEUE_DOC)
async def async_run_deployment(
    chain_id: str, deployment_id: str, request: Request, core: CoreDep
) -> Response:
    return await _guarded(lambda: _enqueue(request, core, chain_id, deployment_id=deployment_id))


@router.get("/chains/{chain_id}/production/async_queue_status", **_QUEUE_DOC)
async def async_queue_production(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _guarded(lambda: _queue_status(request, core, chain_id, environment="production"))


@router.get("/chains/{chain_id}/development/async_queue_status", **_QUEUE_DOC)
async def async_queue_development(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _guarded(lambda: _queue_status(request, core, chain_id, development=True))


@router.get("/chains/{chain_id}/environments/{env_name}/async_queue_status", **_QUEUE_DOC)
async def async_queue_environment(
    chain_id: str, env_name: str, request: Request, core: CoreDep
) -> Response:
    return await _guarded(lambda: _queue_status(request, core, chain_id, environment=env_name))


@router.get("/chains/{chain_id}/deployment/{deployment_id}/async_queue_status", **_QUEUE_DOC)
async def async_queue_deployment(
    chain_id: str, deployment_id: str, request: Request, core: CoreDep
) -> Response:
    return await _guarded(
        lambda: _queue_status(request, core, chain_id, deployment_id=deployment_id)
    )


@router.get("/chains/{chain_id}/async_request/{request_id}", **_STATUS_DOC)
async def async_request_status(
    chain_id: str, request_id: str, request: Request, core: CoreDep
) -> Response:
    async def call() -> Response:
        return _json(await _status(request, core, request_id, chain_id))

    return await _guarded(call)


@router.delete("/chains/{chain_id}/async_request/{request_id}", **_CANCEL_DOC)
async def async_request_cancel(
    chain_id: str, request_id: str, request: Request, core: CoreDep
) -> Response:
    return await _guarded(lambda: _cancel(request, core, request_id, chain_id))


# -- Baseten's own form: chain id in the Host header --------------------------------------------


@router.post("/production/async_run_remote", **_ENQUEUE_DOC)
async def host_async_run_production(request: Request, core: CoreDep) -> Response:
    return await _guarded(
        lambda: _enqueue(request, core, chain_from_host(request), environment="production")
    )


@router.post("/development/async_run_remote", **_ENQUEUE_DOC)
async def host_async_run_development(request: Request, core: CoreDep) -> Response:
    return await _guarded(
        lambda: _enqueue(request, core, chain_from_host(request), development=True)
    )


@router.post("/environments/{env_name}/async_run_remote", **_ENQUEUE_DOC)
async def host_async_run_environment(env_name: str, request: Request, core: CoreDep) -> Response:
    return await _guarded(
        lambda: _enqueue(request, core, chain_from_host(request), environment=env_name)
    )


@router.post("/deployment/{deployment_id}/async_run_remote", **_ENQUEUE_DOC)
async def host_async_run_deployment(
    deployment_id: str, request: Request, core: CoreDep
) -> Response:
    return await _guarded(
        lambda: _enqueue(request, core, chain_from_host(request), deployment_id=deployment_id)
    )


@router.get("/production/async_queue_status", **_QUEUE_DOC)
async def host_async_queue_production(request: Request, core: CoreDep) -> Response:
    return await _guarded(
        lambda: _queue_status(request, core, chain_from_host(request), environment="production")
    )


@router.get("/development/async_queue_status", **_QUEUE_DOC)
async def host_async_queue_development(request: Request, core: CoreDep) -> Response:
    return await _guarded(
        lambda: _queue_status(request, core, chain_from_host(request), development=True)
    )


@router.get("/environments/{env_name}/async_queue_status", **_QUEUE_DOC)
async def host_async_queue_environment(env_name: str, request: Request, core: CoreDep) -> Response:
    return await _guarded(
        lambda: _queue_status(request, core, chain_from_host(request), environment=env_name)
    )


@router.get("/deployment/{deployment_id}/async_queue_status", **_QUEUE_DOC)
async def host_async_queue_deployment(
    deployment_id: str, request: Request, core: CoreDep
) -> Response:
    return await _guarded(
        lambda: _queue_status(request, core, chain_from_host(request), deployment_id=deployment_id)
    )


# The id alone names a request: these answer whatever the Host header says, in the caller's
# workspace (another workspace's request is not found).
@router.get("/async_request/{request_id}", **_STATUS_DOC)
async def host_async_request_status(request_id: str, request: Request, core: CoreDep) -> Response:
    async def call() -> Response:
        return _json(await _status(request, core, request_id))

    return await _guarded(call)


@router.delete("/async_request/{request_id}", **_CANCEL_DOC)
async def host_async_request_cancel(request_id: str, request: Request, core: CoreDep) -> Response:
    return await _guarded(lambda: _cancel(request, core, request_id))


# -- regional hostnames: the environment is in the Host header, the path is bare -------------


@router.post("/async_run_remote", **_ENQUEUE_DOC)
async def regional_async_run(request: Request, core: CoreDep) -> Response:
    async def call() -> Response:
        chain_id, env_name = regional_from_host(request)
        return await _enqueue(request, core, chain_id, environment=env_name)

    return await _guarded(call)


@router.get("/async_queue_status", **_QUEUE_DOC)
async def regional_async_queue(request: Request, core: CoreDep) -> Response:
    async def call() -> Response:
        chain_id, env_name = regional_from_host(request)
        return await _queue_status(request, core, chain_id, environment=env_name)

    return await _guarded(call)
