"""Dependencies shared by the routers: the services core and the authenticated actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from chainyard.domain.errors import Forbidden, Unauthorized
from chainyard.services import api_keys
from chainyard.services.context import Actor, Core


async def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(get_core)]


def _presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        raise Unauthorized("missing Authorization header (use 'Bearer <api key>')")
    if scheme.lower() not in ("bearer", "api-key") or not value.strip():
        raise Unauthorized("Authorization must be 'Bearer <api key>' or 'Api-Key <api key>'")
    return value.strip()


async def get_actor(request: Request, core: CoreDep) -> Actor:
    raw = _presented_key(request)
    # A recently seen key needs neither the store nor a worker thread.
    actor = api_keys.cached_actor(core, raw)
    if actor is None:
        actor = await run_in_threadpool(api_keys.authenticate, core, raw, client_address(request))
    return actor


def client_address(request: Request) -> str:
    """Where the request comes from, for the failed-authentication limit (behind a proxy, uvicorn
    takes it from X-Forwarded-For when the proxy is one of its `--forwarded-allow-ips`)."""
    return request.client.host if request.client else "unknown"


async def get_manager(actor: Annotated[Actor, Depends(get_actor)]) -> Actor:
    if not actor.can_manage:
        raise Forbidden(
            f"an API key of type {actor.key_type} may not use the management API",
            code="PERMISSION_DENIED",
        )
    return actor


async def get_key_manager(actor: Annotated[Actor, Depends(get_actor)]) -> Actor:
    if not actor.can_manage_keys:
        raise Forbidden(f"an API key of type {actor.key_type} may not manage API keys")
    return actor


AnyActor = Annotated[Actor, Depends(get_actor)]
Manager = Annotated[Actor, Depends(get_manager)]
KeyManager = Annotated[Actor, Depends(get_key_manager)]
