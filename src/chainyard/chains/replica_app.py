"""The HTTP face of one replica: truss's chainlet wire format around one chainlet instance.

POST /v1/models/model:predict  body: run_remote's arguments as a JSON object; answer: the result
GET  /v1/models/model          readiness: answered by chains/replica_health.py, which wraps this app
WS   /v1/websocket             a WebSocket chainlet's run_remote (chains/replica_ws.py)

A chains.ModelBase is served the same way, its `predict` in place of `run_remote`.
"""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chainyard.chains import binary, kinds, replica_ws, streaming, truss_compat


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
    read_timeout = truss_compat.streaming_read_timeout(desc)

    def error(exc: fastapi.HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if isinstance(detail, dict):
            detail = _user_frames(detail, source_dir)
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    async def predict(request: Request) -> Response:
        if endpoint.is_websocket:
            return replica_ws.http_refused(desc)
        body = await request.body()
        # msgpack in, msgpack out, as truss does (chains/binary.py).
        as_binary = binary.is_binary(request.headers.get("content-type"))
        try:
            if as_binary:
                inputs = arguments.model_validate(binary.decode(body) if body else {})
            else:
                inputs = arguments.model_validate_json(body or b"{}")
        except binary.NotMsgpack as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except pydantic.ValidationError as exc:
            message = binary.missing_numpy_hint(str(exc)) if as_binary else str(exc)
            return JSONResponse({"error": message}, status_code=400)
        kwargs = truss_compat.set_fields(inputs)
        if endpoint.is_streaming:
            return await streaming.stream_response(
                lambda: run_remote(**kwargs),
                slots=slots,
                context=lambda: truss_compat.request_context(request.headers),
                error_response=stream_error,
                read_timeout=read_timeout,
                request_id=request.headers.get("x-baseten-request-id"),
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
        if as_binary:
            answer = binary.encode(result_model(result).model_dump(mode="python"))
            return Response(answer, media_type=binary.ANSWER_TYPE)
        return Response(result_model(result).model_dump_json(), media_type="application/json")

    def stream_error(exc: Exception) -> Response:
        if isinstance(exc, fastapi.HTTPException):
            return error(exc)
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    return Starlette(
        routes=[
            Route("/v1/models/model:predict", predict, methods=["POST"]),
            replica_ws.route(chainlet, desc),
        ]
    )
