"""The HTTP application: the FastAPI object, its middlewares, error answers and routers, around
parts the composition root (chainyard/server.py) built and wired.

api/ does not import the gateway: its routers, its fast lane and what it streams come in as an
`Inference`, so that this file owns the order of the whole stack in one place.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from chainyard import __version__
from chainyard.api import errors, in_flight, json_bodies, limits
from chainyard.api.routes import (
    api_keys,
    catalogue,
    chains,
    dashboard,
    deploy,
    development,
    environments,
    live,
    observability,
    secrets,
    webhook_secrets,
)
from chainyard.services.artifacts import MAX_ARCHIVE_BYTES

DEVELOPMENT_PATCH = re.compile(r"/v1/chains/[^/]+/development/patch")


@dataclasses.dataclass(frozen=True)
class Inference:
    """The gateway's share of the HTTP app."""

    routers: Sequence[APIRouter]
    # Routes that are not an APIRouter's (the WebSocket ones), added to the app.
    install: Callable[[FastAPI], None]
    # In front of the whole framework (its middlewares included); inside the request count.
    lane: Callable[[ASGIApp], ASGIApp]
    # Paths whose bodies the gateway streams and counts, up to `max_body_bytes`.
    streams_body: Callable[[str], bool]
    max_body_bytes: int
    # (method, path) of requests held open on purpose, which the request count leaves out.
    long_polls: Callable[[str, str], bool] = lambda _method, _path: False


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    max_request_bytes: int
    # 0: no per-client rate limit.
    rate_limit_per_second: float


class ChainyardApp(FastAPI):
    """The FastAPI app, with a front for HTTP requests: the request count, then the gateway's
    fast lane, which serves inference without entering the framework (FastAPI's own middlewares,
    its telemetry among them, cost more per request than a no-op chainlet's answer); what the
    lane does not serve goes on to FastAPI as usual."""

    front: ASGIApp | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if self.front is not None and scope["type"] == "http":
            scope["app"] = self  # what Starlette sets, for handlers that read `request.app`
            await self.front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def framework(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, send)


def build_http_app(
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    state: Mapping[str, object],
    settings: HttpSettings,
    inference: Inference,
    requests: in_flight.RequestCounter,
    health: Callable[[], Mapping[str, object]],
) -> FastAPI:
    """`state` goes on `app.state` for the routes; `health` fills `/healthz` once the lifespan
    has set `app.state.ready`."""
    app = ChainyardApp(
        title="chainyard",
        version=__version__,
        description="Self-hosted chains serving, wire-compatible with Baseten's chains API.",
        lifespan=lifespan,
        dependencies=[Depends(limits.rate_limit), Depends(json_bodies.valid_text)],
    )
    for name, value in state.items():
        setattr(app.state, name, value)
    app.state.ready = False
    app.state.rate_limiter = (
        limits.RateLimiter(settings.rate_limit_per_second)
        if settings.rate_limit_per_second > 0
        else None
    )
    errors.install(app)
    app.add_middleware(
        limits.BodyLimit,
        limit=settings.max_request_bytes,
        # The deploy upload carries the source archive, besides its manifest; a patch, files
        # of the source (all of them when it does not start from a known tree).
        limits_by_path={"/v1/chains/deploy": MAX_ARCHIVE_BYTES + 2 * 2**20},
        limits_by_pattern=[(DEVELOPMENT_PATCH, MAX_ARCHIVE_BYTES + 4 * 2**20)],
        # Inference bodies stream through the gateway, which counts them (gateway/bodies.py).
        streamed=inference.streams_body,
        streamed_limit=inference.max_body_bytes,
    )
    app.add_middleware(json_bodies.JsonBodies)
    # Outermost: a request counts from the moment it arrives. Inference skips the framework
    # (gateway/fast_lane.py), not the count.
    app.front = in_flight.CountRequests(
        inference.lane(app.framework), counter=requests, long_polls=inference.long_polls
    )
    for module in (
        deploy,
        development,
        chains,
        environments,
        catalogue,
        secrets,
        api_keys,
        webhook_secrets,
    ):
        app.include_router(module.router)
    for router in inference.routers:
        app.include_router(router)
    inference.install(app)
    app.include_router(observability.router)
    app.include_router(live.router)
    dashboard.install(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        if not app.state.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__, **health()})

    return app
