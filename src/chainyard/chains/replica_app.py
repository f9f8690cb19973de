"""The HTTP face of one replica: truss's chainlet wire format around one chainlet instance.

POST /v1/models/model:predict  body: run_remote's arguments as a JSON object; answer: the result
GET  /v1/models/model          readiness: answered by chains/replica_health.py, which wraps this app
WS   /v1/websocket             a WebSocket chainlet's run_remote (chains/replica_ws.py)

A chains.ModelBase is served the same way, its `predict` in place of `run_remote`.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chainyard.chains import kinds, replica_ws, truss_compat


def _user_frames(detail: dict[str, Any], source_dir: pathlib.Path) -> dict[str, Any]:
    # truss trims frames by its own file layout; ours differs, so keep the user's source frames.
    frames = detail.get("user_stack_trace") or []
    mine = [f for f in frames if str(f.get("filename", "")).startswith(str(source_dir))]
    return {**detail, "user_stack_trace": mine or frames}


def build_app(
    chainlet: Any, desc: Any, *, predict_concurrency: int, source_dir: pathlib.Path
) -> Starlette:
    import fastapi
    import pydantic

    arguments = truss_compat.input_model(desc)
    endpoint = desc.endpoint
    run_remote = kinds.endpoint_method(chainlet, desc)
    result_model = None if endpoint.is_streaming else truss_compat.output_model(desc)
    slots = asyncio.Semaphore(max(1, predict_concurrency))

    def error(exc: fastapi.HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if isinstance(detail, dict):
            detail = _user_frames(detail, source_dir)
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    async def predict(request: Request) -> Response:
        if endpoint.is_websocket:
            return replica_ws.http_refused(desc)
        body = await request.body()
        try:
            inputs = arguments.model_validate_json(body or b"{}")
        except pydantic.ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        kwargs = truss_compat.set_fields(inputs)
        if endpoint.is_streaming:
            return StreamingResponse(
                _stream(request, kwargs), media_type="application/octet-stream"
            )
        try:
            async with slots:
                with truss_compat.request_context(request.headers):
                    if endpoint.is_async:
                        result = await run_remote(**kwargs)
                    else:
                        result = await asyncio.to_thread(run_remote, **kwargs)
        except fastapi.HTTPException as exc:
            return error(exc)
        assert result_model is not None
        return Response(result_model(result).model_dump_json(), media_type="application/json")

    async def _stream(request: Request, kwargs: dict[str, Any]) -> AsyncIterator[bytes]:
        async with slots:
            with truss_compat.request_context(request.headers):
                async for chunk in run_remote(**kwargs):
                    yield chunk.encode() if isinstance(chunk, str) else chunk

    return Starlette(
        routes=[
            Route("/v1/models/model:predict", predict, methods=["POST"]),
            replica_ws.route(chainlet, desc),
        ]
    )
