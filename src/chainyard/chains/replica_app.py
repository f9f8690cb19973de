"""The HTTP face of one replica: truss's chainlet wire format around one chainlet instance.

POST /v1/models/model:predict  body: run_remote's arguments as a JSON object; answer: the result
GET  /v1/models/model          readiness (runs `is_healthy` when the chainlet defines it)
"""

from __future__ import annotations

import asyncio
import inspect
import pathlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chainyard.chains import binary, streaming, truss_compat


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
    result_model = None if endpoint.is_streaming else truss_compat.output_model(desc)
    slots = asyncio.Semaphore(max(1, predict_concurrency))
    health = getattr(chainlet, "is_healthy", None) if desc.health_check else None
    read_timeout = truss_compat.streaming_read_timeout(desc)

    def error(exc: fastapi.HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if isinstance(detail, dict):
            detail = _user_frames(detail, source_dir)
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    async def predict(request: Request) -> Response:
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
                lambda: chainlet.run_remote(**kwargs),
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
                        result = await chainlet.run_remote(**kwargs)
                    else:
                        result = await asyncio.to_thread(chainlet.run_remote, **kwargs)
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

    async def ready(_request: Request) -> Response:
        if health is not None:
            try:
                healthy = health()
                if inspect.isawaitable(healthy):
                    healthy = await healthy
            except Exception as exc:
                return JSONResponse({"ready": False, "error": repr(exc)}, status_code=503)
            if not healthy:
                return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True})

    return Starlette(
        routes=[
            Route("/v1/models/model:predict", predict, methods=["POST"]),
            Route("/v1/models/model", ready, methods=["GET"]),
        ]
    )
