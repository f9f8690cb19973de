"""The fast lane serves the inference routes it is given with their own handlers, and hands
everything else to the app behind it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response

from chainyard.gateway.fast_lane import FastLane

router = APIRouter()


@router.post("/chains/{chain_id}/environments/{env_name}/run_remote")
async def run(chain_id: str, env_name: str, request: Request, core: Any) -> Response:
    body = await request.body()
    return JSONResponse({"lane": chain_id, "env": env_name, "core": core, "body": body.decode()})


@router.post("/chains/{chain_id}/environments/{env_name}/wake")
async def wake(chain_id: str, env_name: str, request: Request, core: Any) -> Response:
    return JSONResponse({"not": "an inference route"})


def _client() -> httpx.AsyncClient:
    app = FastAPI()

    @app.api_route("/{rest:path}", methods=["GET", "POST"])
    async def framework(rest: str) -> dict[str, str]:
        return {"framework": rest}

    lane = FastLane(app, routes=router.routes, max_body_bytes=10, core="the-core")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=lane), base_url="http://t")


def test_inference_posts_take_the_lane_and_the_rest_the_app() -> None:
    async def main() -> None:
        async with _client() as client:
            answer = await client.post("/chains/abc/environments/prod/run_remote", content=b"{}")
            assert answer.json() == {"lane": "abc", "env": "prod", "core": "the-core", "body": "{}"}
            # Not a POST, not an inference route, or no such path: the app's.
            for method, path in (
                ("GET", "/chains/abc/environments/prod/run_remote"),
                ("POST", "/chains/abc/environments/prod/wake"),
                ("POST", "/chains/abc/environments/prod/run_remote/more"),
            ):
                other = await client.request(method, path)
                assert "framework" in other.json(), (method, path)

    asyncio.run(main())


def test_a_declared_body_over_the_limit_is_refused_before_the_handler() -> None:
    async def main() -> None:
        async with _client() as client:
            answer = await client.post("/chains/a/environments/p/run_remote", content=b"x" * 11)
            assert answer.status_code == 413
            assert answer.json()["error_code"] == "payload_too_large"

    asyncio.run(main())


def test_the_gateway_s_development_routes_take_the_lane() -> None:
    """The lane takes every inference POST ending in /run_remote or /predict, the development
    ones included; wake stays with the framework."""
    from chainyard.gateway import model_routes
    from chainyard.gateway import routes as gateway_routes

    lane = FastLane(
        FastAPI(),
        routes=[*gateway_routes.router.routes, *model_routes.router.routes],
        max_body_bytes=10,
        core=None,
    )
    taken = {route.path for route in lane._routes}
    assert {
        "/chains/{chain_id}/development/run_remote",
        "/development/run_remote",
        "/models/{model_id}/development/predict",
        "/development/predict",
    } <= taken
    assert not {"/chains/{chain_id}/development/wake", "/development/wake"} & taken
