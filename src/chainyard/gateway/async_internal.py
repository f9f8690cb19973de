"""The route the async runner calls its chains through (async_runner/calls.py): the same gateway,
so the same replica limits, demand and wake from zero as a sync call.

The runner authenticated nobody: the request was authorized when it was enqueued. The route is
opened by the server's own secret instead (`Authorization: Bearer <secret>`), made at each start
and handed to its worker processes, never stored; anything else is a 401. It resolves the
deployment's entrypoint without an actor (`services.inference.deployment_entry`: a deployment
that is gone, INACTIVE or failed is a 404 model_does_not_exist) and dispatches as `run_remote`
does, except that the replica may take an hour (Baseten's run limit for async requests) rather
than the router's bound on a sync call.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from chainyard.gateway.route_cache import RouteCache
from chainyard.gateway.router import inference_error
from chainyard.gateway.routes import CoreDep, _dispatch, guarded
from chainyard.services import inference
from chainyard.services.context import Core

router = APIRouter(tags=["inference"])

PREFIX = "/internal/async"
# Baseten runs an async request for up to an hour: the replica may stay silent that long.
RUN_LIMIT_SECONDS = 3600.0
# The path ends in run_remote so that the gateway's fast lane takes it (gateway/fast_lane.py).
RUN_PATH = PREFIX + "/deployments/{deployment_id}/run_remote"
PING_PATH = PREFIX + "/ping"


def run_path(deployment_id: str) -> str:
    return RUN_PATH.format(deployment_id=deployment_id)


def authorized(request: Request) -> bool:
    """Whether the request carries this server's async secret (compared in constant time)."""
    secret: str | None = getattr(request.app.state, "async_secret", None)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if not secret or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), secret.encode())


def _refused() -> Response:
    return inference_error(401, "not this server's async runner", "unauthorized")


async def _target(request: Request, core: Core, deployment_id: str) -> inference.Target:
    """The deployment's entrypoint, remembered with the other routes (dropped on each write to
    the routing tables, gateway/route_cache.py)."""
    routes: RouteCache[inference.Target] = request.app.state.routes
    key = ("async", deployment_id)
    if (known := routes.get(key)) is not None:
        return known
    generation = routes.generation
    target = await run_in_threadpool(inference.deployment_entry, core, deployment_id)
    routes.put(key, target, generation)
    return target


@router.post(RUN_PATH, include_in_schema=False)
async def async_run_remote(deployment_id: str, request: Request, core: CoreDep) -> Response:
    if not authorized(request):
        return _refused()

    async def call() -> Response:
        target = await _target(request, core, deployment_id)
        return await _dispatch(request, core, target, read_timeout=RUN_LIMIT_SECONDS)

    return await guarded(call)


@router.get(PING_PATH, include_in_schema=False)
async def async_ping(request: Request) -> Response:
    """The runner's check that its gateway serves, and is its own server's (the secret)."""
    if not authorized(request):
        return _refused()
    return Response(status_code=204)
