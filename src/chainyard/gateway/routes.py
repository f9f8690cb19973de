"""Baseten's inference paths for chains: run_remote and wake, per environment or deployment or on
the chain's development deployment, on `/chains/{chain_id}/...` or on the bare path when the Host
header is `chain-{chain_id}.<domain>`; plus the internal route that replicas' stubs use to call
their dependencies."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from chainyard.domain.errors import (
    ChainyardError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
)
from chainyard.gateway import direct
from chainyard.gateway.route_cache import RouteCache
from chainyard.gateway.router import ReplicaRouter, ReplicasGone, inference_error
from chainyard.services import api_keys, inference
from chainyard.services.context import Actor, Core

router = APIRouter(tags=["inference"])


async def _core(request: Request) -> Core:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(_core)]

WAKE_TIMEOUT = 120.0
# `chain-{chain_id}.<domain>`, or the regional `chain-{chain_id}-{env_name}.<domain>`.
_HOST = re.compile(r"^chain-([a-z0-9]+)(?:-([a-z0-9][a-z0-9-]*))?\.", re.IGNORECASE)


def error_answer(exc: ChainyardError) -> Response:
    if isinstance(exc, NotFound):
        return inference_error(404, exc.message, "model_does_not_exist")
    if isinstance(exc, Unauthorized | Forbidden):
        return inference_error(exc.status_code, exc.message, "unauthorized")
    if isinstance(exc, RateLimited):
        retry_after = max(1, math.ceil(exc.retry_after))
        return inference_error(429, exc.message, "rate_limited", retry_after=retry_after)
    if exc.status_code == 429:
        return inference_error(429, exc.message, "rate_limited")
    if exc.status_code >= 500:
        return inference_error(503, exc.message, "internal_baseten_error")
    return inference_error(exc.status_code, exc.message, "client_error")


async def request_actor(request: Request, core: Core) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("bearer", "api-key") or not value.strip():
        raise Unauthorized("missing API key: send 'Authorization: Api-Key <key>'")
    # A key seen lately is known without the store, so without a hop to a thread. One seen
    # longer ago is believed once more while the store is asked again in the background: a key
    # revoked here is forgotten at once (api_keys.revoke), one revoked by another server within
    # AUTH_CACHE_SECONDS and a request.
    known = api_keys.cached_actor(core, value.strip())
    if known is not None:
        return known
    remembered = api_keys.remembered_actor(core, value.strip())
    if remembered is not None:
        _recheck_key(core, value.strip())
        return remembered
    return await run_in_threadpool(
        api_keys.authenticate, core, value.strip(), client_address(request)
    )


# Background re-reads of remembered keys, by the key's digest: one at a time per key.
_rechecks: dict[str, asyncio.Task[None]] = {}


def _recheck_key(core: Core, raw: str) -> None:
    digest = api_keys.hash_key(raw)
    if digest in _rechecks:
        return

    async def run() -> None:
        try:
            await run_in_threadpool(api_keys.recheck, core, raw)
        except ChainyardError:
            pass  # the store is unavailable: the next request past the cache tries again
        finally:
            _rechecks.pop(digest, None)

    _rechecks[digest] = asyncio.get_running_loop().create_task(run())


def client_address(connection: HTTPConnection) -> str:
    """Where a request or websocket comes from, for the failed-authentication limit."""
    return connection.client.host if connection.client else "unknown"


def _router(request: Request) -> ReplicaRouter:
    result: ReplicaRouter = request.app.state.router
    return result


async def guarded(call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except ChainyardError as exc:
        return error_answer(exc)


def _routes(request: Request) -> RouteCache[inference.Target]:
    result: RouteCache[inference.Target] = request.app.state.routes
    return result


async def resolve_target(
    request: Request,
    core: Core,
    chain_id: str,
    environment: str | None,
    deployment_id: str | None,
    *,
    development: bool = False,
    fresh: bool = False,
) -> inference.Target:
    """Where the request goes: remembered (gateway/route_cache.py), or read from the store when
    unknown or when `fresh` (what was remembered led nowhere)."""
    actor = await request_actor(request, core)
    if not actor.can_invoke:
        raise Forbidden(f"an API key of type {actor.key_type} may not call chains")
    routes = _routes(request)
    key = (actor.workspace_id, chain_id, environment, deployment_id, development)

    async def lookup() -> inference.Target:
        return await run_in_threadpool(
            inference.resolve,
            core,
            actor,
            chain_id,
            environment=environment,
            deployment_id=deployment_id,
            development=development,
        )

    if not fresh:
        if (known := routes.get(key)) is not None:
            return known
        if (old := routes.stale(key)) is not None:

            async def again() -> inference.Target | None:
                target = await lookup()
                return target if target.cacheable else None

            routes.refresh(key, again)
            return old
    generation = routes.generation
    target = await lookup()
    if target.cacheable:
        routes.put(key, target, generation)
    return target


async def _run(
    request: Request,
    core: Core,
    chain_id: str,
    *,
    environment: str | None = None,
    deployment_id: str | None = None,
    development: bool = False,
) -> Response:
    async def resolve() -> inference.Target:
        return await resolve_target(
            request,
            core,
            chain_id,
            environment,
            deployment_id,
            development=development,
            fresh=True,
        )

    async def call() -> Response:
        target = await resolve_target(
            request, core, chain_id, environment, deployment_id, development=development
        )
        return await _dispatch(request, core, target, resolve)

    return await guarded(call)


async def ready_or_woken(
    replicas: ReplicaRouter, core: Core, target: inference.Target
) -> list[str]:
    """Addresses of the ready replicas of the target's chainlet; with none, wakes its deployment
    and holds the caller until one is ready (none when none became ready in time)."""
    addresses = replicas.ready_addresses(target.chainlet_id)
    if not addresses:
        await run_in_threadpool(inference.wake, core, target.deployment_id)
        addresses = await replicas.wait_for_replica(target.chainlet_id, WAKE_TIMEOUT)
    return addresses


def not_ready() -> Response:
    return inference_error(503, "no replica of the chain became ready in time", "model_not_ready")


async def _dispatch(
    request: Request,
    core: Core,
    target: inference.Target,
    resolve: Callable[[], Awaitable[inference.Target]] | None = None,
    *,
    read_timeout: float | None = None,
) -> Response:
    """Forwards to a ready replica of `target`'s chainlet. With none ready, first looks again in
    the store where the request should go (a promotion may have just moved the environment), then
    wakes the deployment and holds the request until a replica is ready."""
    replicas = _router(request)
    for attempt in range(2):
        if resolve is not None and (attempt or not replicas.ready_addresses(target.chainlet_id)):
            target = await resolve()
        addresses = await ready_or_woken(replicas, core, target)
        if not addresses:
            return not_ready()
        try:
            # Passed only when set: a sync call keeps the router's own bound.
            longer = {} if read_timeout is None else {"read_timeout": read_timeout}
            return await replicas.forward(
                request, target.chainlet_id, addresses, limit=target.predict_concurrency, **longer
            )
        except ReplicasGone:
            continue
    return inference_error(503, "the chain's replicas went away; retry", "model_unavailable")


async def _wake(
    request: Request,
    core: Core,
    chain_id: str,
    *,
    environment: str | None = None,
    deployment_id: str | None = None,
    development: bool = False,
) -> Response:
    async def call() -> Response:
        target = await resolve_target(
            request, core, chain_id, environment, deployment_id, development=development
        )
        await run_in_threadpool(inference.wake, core, target.deployment_id)
        return JSONResponse({}, status_code=202)

    return await guarded(call)


def _host_match(request: Request) -> re.Match[str]:
    match = _HOST.match(request.headers.get("host", ""))
    if match is None:
        raise NotFound("use /chains/{chain_id}/..., or a Host header chain-{chain_id}.<domain>")
    return match


def chain_from_host(request: Request) -> str:
    return _host_match(request).group(1).lower()


def regional_from_host(request: Request) -> tuple[str, str]:
    """(chain id, environment) of a regional hostname; the path then names neither."""
    match = _host_match(request)
    if match.group(2) is None:
        raise NotFound(
            "the bare path needs a regional Host header chain-{chain_id}-{env_name}.<domain>"
        )
    return match.group(1).lower(), match.group(2)


# -- /chains/{chain_id}/... ---------------------------------------------------------------------


@router.post("/chains/{chain_id}/environments/{env_name}/run_remote")
async def run_environment(
    chain_id: str, env_name: str, request: Request, core: CoreDep
) -> Response:
    return await _run(request, core, chain_id, environment=env_name)


@router.post("/chains/{chain_id}/production/run_remote")
async def run_production(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _run(request, core, chain_id, environment="production")


@router.post("/chains/{chain_id}/deployment/{deployment_id}/run_remote")
async def run_deployment(
    chain_id: str, deployment_id: str, request: Request, core: CoreDep
) -> Response:
    return await _run(request, core, chain_id, deployment_id=deployment_id)


@router.post("/chains/{chain_id}/development/run_remote")
async def run_development(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _run(request, core, chain_id, development=True)


@router.post("/chains/{chain_id}/environments/{env_name}/wake", status_code=202)
async def wake_environment(
    chain_id: str, env_name: str, request: Request, core: CoreDep
) -> Response:
    return await _wake(request, core, chain_id, environment=env_name)


@router.post("/chains/{chain_id}/production/wake", status_code=202)
async def wake_production(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _wake(request, core, chain_id, environment="production")


@router.post("/chains/{chain_id}/deployment/{deployment_id}/wake", status_code=202)
async def wake_deployment(
    chain_id: str, deployment_id: str, request: Request, core: CoreDep
) -> Response:
    return await _wake(request, core, chain_id, deployment_id=deployment_id)


@router.post("/chains/{chain_id}/development/wake", status_code=202)
async def wake_development(chain_id: str, request: Request, core: CoreDep) -> Response:
    return await _wake(request, core, chain_id, development=True)


# -- Baseten's own form: chain id in the Host header --------------------------------------------


@router.post("/environments/{env_name}/run_remote")
async def host_run_environment(env_name: str, request: Request, core: CoreDep) -> Response:
    return await guarded(
        lambda: _run(request, core, chain_from_host(request), environment=env_name)
    )


@router.post("/production/run_remote")
async def host_run_production(request: Request, core: CoreDep) -> Response:
    return await guarded(
        lambda: _run(request, core, chain_from_host(request), environment="production")
    )


@router.post("/deployment/{deployment_id}/run_remote")
async def host_run_deployment(deployment_id: str, request: Request, core: CoreDep) -> Response:
    return await guarded(
        lambda: _run(request, core, chain_from_host(request), deployment_id=deployment_id)
    )


@router.post("/development/run_remote")
async def host_run_development(request: Request, core: CoreDep) -> Response:
    return await guarded(lambda: _run(request, core, chain_from_host(request), development=True))


@router.post("/environments/{env_name}/wake", status_code=202)
async def host_wake_environment(env_name: str, request: Request, core: CoreDep) -> Response:
    return await guarded(
        lambda: _wake(request, core, chain_from_host(request), environment=env_name)
    )


@router.post("/production/wake", status_code=202)
async def host_wake_production(request: Request, core: CoreDep) -> Response:
    return await guarded(
        lambda: _wake(request, core, chain_from_host(request), environment="production")
    )


@router.post("/deployment/{deployment_id}/wake", status_code=202)
async def host_wake_deployment(deployment_id: str, request: Request, core: CoreDep) -> Response:
    return await guarded(
        lambda: _wake(request, core, chain_from_host(request), deployment_id=deployment_id)
    )


@router.post("/development/wake", status_code=202)
async def host_wake_development(request: Request, core: CoreDep) -> Response:
    return await guarded(lambda: _wake(request, core, chain_from_host(request), development=True))


# -- regional hostnames: the environment is in the Host header, the path is bare -------------


@router.post("/run_remote")
async def regional_run(request: Request, core: CoreDep) -> Response:
    async def call() -> Response:
        chain_id, env_name = regional_from_host(request)
        return await _run(request, core, chain_id, environment=env_name)

    return await guarded(call)


@router.post("/wake", status_code=202)
async def regional_wake(request: Request, core: CoreDep) -> Response:
    async def call() -> Response:
        chain_id, env_name = regional_from_host(request)
        return await _wake(request, core, chain_id, environment=env_name)

    return await guarded(call)


# -- internal: replica to replica, through the gateway -----------------------------------------


async def _internal_target(request: Request, core: Core, chainlet_id: str) -> inference.Target:
    """The dependency a replica's chain key opens (401/403 otherwise), from memory when known."""
    _, _, token = request.headers.get("authorization", "").partition(" ")
    target = inference.cached_internal(core, chainlet_id, token.strip())
    if target is None:
        target = await run_in_threadpool(
            inference.resolve_internal, core, chainlet_id, token.strip()
        )
    return target


@router.post("/internal/chainlets/{chainlet_id}/predict", include_in_schema=False)
async def internal_predict(chainlet_id: str, request: Request, core: CoreDep) -> Response:
    async def call() -> Response:
        target = await _internal_target(request, core, chainlet_id)
        return await _dispatch(request, core, target)

    return await guarded(call)


@router.get("/internal/chainlets/{chainlet_id}/replicas", include_in_schema=False)
async def internal_replicas(chainlet_id: str, request: Request, core: CoreDep) -> Response:
    """A replica's long-poll for the ready replicas of one of its dependencies (address and
    credential), answered once they differ from the version it has (`since`) or after `wait`
    seconds; its report of the calls it made to them directly (`caller`, `load`) counts toward
    the dependency's demand. Opened by the same chain key as the dependency route, so only for
    a declared dependency in the caller's own deployment (gateway/direct.py)."""

    async def call() -> Response:
        target = await _internal_target(request, core, chainlet_id)
        replicas = _router(request)
        if not replicas.direct_calls:
            return JSONResponse({"enabled": False})
        query = request.query_params
        wait = direct.parse_wait(query.get("wait"))
        caller = query.get("caller", "")[:64]
        if caller:
            load = direct.parse_load(query.get("load"))
            replicas.direct_demand.report(target.chainlet_id, caller, load, wait=wait)
        source = replicas.runtime
        peers, version = await direct.peers_changed(
            lambda: replicas.ready_replicas(target.chainlet_id),
            lambda: source.generation,
            source.changed,
            query.get("since", ""),
            wait,
            replicas.stopping,
        )
        return JSONResponse(
            {
                "enabled": True,
                "version": version,
                "replicas": [{"address": a, "key": k} for a, k in peers if k],
            }
        )

    return await guarded(call)
