"""WebSocket chainlets on the replica: `run_remote(self, websocket: chains.WebSocketProtocol)`.

WS /v1/websocket  (truss's own path) accepts the connection and hands `run_remote` an object with
                  truss's WebSocketProtocol (truss_chains' own wrapper around the connection).

Close codes as truss's server sends them: 1000 when `run_remote` returns, 1011 when it raises (the
traceback goes to the replica's log), 1003 when the chainlet has no WebSocket endpoint. The
gateway relays them to the client unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from chainyard.chains import kinds, truss_compat

log = logging.getLogger("chainyard.replica")

PATH = "/v1/websocket"
NORMAL = 1000
UNSUPPORTED_DATA = 1003
INTERNAL_ERROR = 1011
# truss's server: its reason for 1011 and its cap on one message (100 MiB).
CHAINLET_ERROR_REASON = "Internal Server Error (in model/chainlet)."
MAX_MESSAGE_BYTES = 100 * 2**20


def route(chainlet: Any, desc: Any) -> WebSocketRoute:
    serves = kinds.is_websocket(desc)

    async def serve(websocket: WebSocket) -> None:
        await websocket.accept()
        if not serves:
            await _close(
                websocket,
                UNSUPPORTED_DATA,
                f"WebSocket is not implemented on this deployment: `{desc.name}` takes JSON "
                "requests on run_remote",
            )
            return
        await _run(websocket, kinds.endpoint_method(chainlet, desc))

    return WebSocketRoute(PATH, serve)


async def _run(websocket: WebSocket, method: Any) -> None:
    from truss_chains.remote_chainlet import utils

    try:
        # truss's request scope (request ids for stub calls); it turns any exception into an
        # HTTPException, raised from the original.
        with truss_compat.request_context(websocket.headers):
            await method(utils.WebsocketWrapperFastAPI(websocket))
    except Exception as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if isinstance(cause, WebSocketDisconnect):
            log.info("the client closed the websocket (code %s)", cause.code)
            return
        request_id = websocket.headers.get("x-baseten-request-id", "")
        log.error(
            "run_remote raised on a websocket (request %s):\n%s",
            request_id,
            "".join(traceback.format_exception(cause)).rstrip(),
        )
        await _close(websocket, INTERNAL_ERROR, CHAINLET_ERROR_REASON)
        return
    await _close(websocket, NORMAL, None)


async def _close(websocket: WebSocket, code: int, reason: str | None) -> None:
    # Closed already, by run_remote itself (RuntimeError) or by the client (uvicorn's
    # ClientDisconnected, an OSError).
    with contextlib.suppress(RuntimeError, OSError):
        await websocket.close(code=code, reason=reason)


def http_refused(desc: Any) -> Response:
    """The answer to a JSON request for a WebSocket chainlet."""
    return JSONResponse(
        {
            "error": f"`{desc.name}` serves a WebSocket: connect to the websocket URL "
            "(.../websocket) instead of calling run_remote"
        },
        status_code=400,
    )


def uvicorn_options(desc: Any) -> dict[str, Any]:
    """The replica server's WebSocket settings: truss's message cap, and the pings of the
    chainlet's `options.transport` (chains.WebsocketOptions), as truss's server applies them."""
    options: dict[str, Any] = {"ws_max_size": MAX_MESSAGE_BYTES}
    transport = desc.chainlet_cls.remote_config.options.transport
    interval = getattr(transport, "ping_interval_seconds", None)
    timeout = getattr(transport, "ping_timeout_seconds", None)
    if interval is not None:
        options["ws_ping_interval"] = interval
    if timeout is not None:
        options["ws_ping_timeout"] = timeout
    return options
