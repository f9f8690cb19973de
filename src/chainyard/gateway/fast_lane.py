"""The inference routes, served without the web framework in the way.

Every inference request used to cross FastAPI's routing over a hundred management routes, its
dependency solving (which ran a plain `def` dependency in a worker thread), FastAPI's own
middlewares (its telemetry among them) and four written for the management API, at a cost
several times that of the replica's own answer. This lane sits in front of all of them
(api/app.py::ChainyardApp): a POST to one of the inference routes (`run_remote`,
`async_run_remote`, a model's `predict`, a replica's call to its dependency) goes straight to
the route's own function with a Starlette `Request`; anything else goes on to the framework.

The routes are taken from the gateway's routers, so the lane serves exactly the paths, parameters
and handlers that FastAPI would. What the skipped middlewares did for these paths is done here or
by the handler: the size of a declared body is checked first (as `api.limits.BodyLimit` does),
the request is counted (`api.in_flight`), and the body's content type is read by the gateway,
which sends anything but the binary types on as JSON (`gateway.bodies`), as `JsonBodies` would have
relabelled it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from chainyard.gateway.bodies import refuse_too_large
from chainyard.gateway.router import inference_error

log = logging.getLogger("chainyard.gateway")

Endpoint = Callable[..., Awaitable[Response]]


def _inference(route: APIRoute) -> bool:
    return "POST" in (route.methods or ()) and route.path.endswith(
        ("/run_remote", "/async_run_remote", "/predict")
    )


class FastLane:
    def __init__(
        self, app: ASGIApp, *, routes: Sequence[Any], max_body_bytes: int, core: Any
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.core = core
        self._routes = [r for r in routes if isinstance(r, APIRoute) and _inference(r)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        for route in self._routes:
            match = route.path_regex.match(path)
            if match is None:
                continue
            params = {
                name: route.param_convertors[name].convert(value)
                for name, value in match.groupdict().items()
            }
            if await refuse_too_large(scope, send, self.max_body_bytes):
                return
            request = Request(scope, receive)
            try:
                response = await route.endpoint(**params, request=request, core=self.core)
            except Exception:
                # What the framework's last-resort handler did for these routes.
                log.exception("unhandled error on POST %s", path)
                response = inference_error(500, "internal error", "internal_baseten_error")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
