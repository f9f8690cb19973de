"""The HTTP face of one replica: truss's chainlet wire format around one chainlet instance.

POST /v1/models/model:predict  body: run_remote's arguments as a JSON object; answer: the result
GET  /v1/models/model          readiness: answered by chains/replica_health.py, which wraps this app
WS   /v1/websocket             a WebSocket chainlet's run_remote (chains/replica_ws.py)

A chains.ModelBase is served the same way, its `predict` in place of `run_remote`.

The predict call is every request a replica serves, so it is a plain ASGI function: the body read
from `receive`, the answer written with two `send`s, the headers read once into a dict (which
truss's request context reads several times). Starlette's routing and middlewares, which cost more
than a no-op chainlet's whole answer, serve only the rest (the websocket, a wrong method, 404).
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chainyard.chains import binary, kinds, replica_ws, truss_compat

PREDICT_PATH = "/v1/models/model:predict"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _user_frames(detail: dict[str, Any], source_dir: pathlib.Path) -> dict[str, Any]:
    # truss trims frames by its own file layout; ours differs, so keep the user's source frames.
    frames = detail.get("user_stack_trace") or []
    mine = [f for f in frames if str(f.get("filename", "")).startswith(str(source_dir))]
    return {**detail, "user_stack_trace": mine or frames}


def header_dict(scope: Scope) -> dict[str, str]:
    """The request's headers by lowercase name (the last of a repeated one)."""
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers") or ()
    }


async def read_body(receive: Receive) -> bytes | None:
    """The whole body; None when the caller went away before sending it."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return parts[0] if len(parts) == 1 else b"".join(parts)


async def answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_app(
    chainlet: Any, desc: Any, *, predict_concurrency: int, source_dir: pathlib.Path
) -> ASGIApp:
    import fastapi
    import pydantic

    from chainyard.chains import streaming

    arguments = truss_compat.input_model(desc)
    endpoint = desc.endpoint
    # truss computes these on every read.
    is_websocket, is_streaming, is_async = (
        endpoint.is_websocket,
        endpoint.is_streaming,
        endpoint.is_async,
    )
    run_remote = kinds.endpoint_method(chainlet, desc)
    result_model = None if is_streaming else truss_compat.output_model(desc)
    slots = asyncio.Semaphore(max(1, predict_concurrency))
    read_timeout = truss_compat.streaming_read_timeout(desc)

    def error(exc: fastapi.HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if isinstance(detail, dict):
            detail = _user_frames(detail, source_dir)
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    def stream_error(exc: Exception) -> Response:
        if isinstance(exc, fastapi.HTTPException):
            return error(exc)
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    async def result_of(headers: dict[str, str], body: bytes) -> Response | tuple[bytes, bytes]:
        """The answer: an encoded result and its content type, or a response of its own (an
        error, a stream)."""
        if is_websocket:
            return replica_ws.http_refused(desc)
        # msgpack in, msgpack out, as truss does (chains/binary.py).
        as_binary = binary.is_binary(headers.get("content-type"))
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
        if is_streaming:
            return await streaming.stream_response(
                lambda: run_remote(**kwargs),
                slots=slots,
                context=lambda: truss_compat.request_context(headers),
                error_response=stream_error,
                read_timeout=read_timeout,
                request_id=headers.get("x-baseten-request-id"),
            )
        try:
            async with slots:
                with truss_compat.request_context(headers):
                    if is_async:
                        result = await run_remote(**kwargs)
                    else:
                        result = await asyncio.to_thread(run_remote, **kwargs)
        except fastapi.HTTPException as exc:
            return error(exc)
        assert result_model is not None
        if as_binary:
            encoded = binary.encode(result_model(result).model_dump(mode="python"))
            return encoded, binary.ANSWER_TYPE.encode()
        return result_model(result).model_dump_json().encode(), b"application/json"

    async def predict(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            return
        headers = header_dict(scope)
        outcome = await result_of(headers, body)
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
        else:
            await answer(send, 200, *outcome)

    async def refuse_method(request: Any) -> Response:
        return JSONResponse({"error": "use POST"}, status_code=405, headers={"Allow": "POST"})

    rest = Starlette(
        routes=[
            Route(PREDICT_PATH, refuse_method, methods=["GET", "PUT", "PATCH", "DELETE"]),
            replica_ws.route(chainlet, desc),
        ]
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PREDICT_PATH:
            await predict(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app
