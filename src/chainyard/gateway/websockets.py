"""WebSocket chains through the gateway: Baseten's websocket URLs, relayed to a replica.

Baseten's URL of a WebSocket chain is its run_remote URL with `/websocket` for `/run_remote`
(truss_chains forms it so): `wss://chain-{chain_id}.<domain>/environments/{env}/websocket`,
`/production/websocket`, `/deployment/{id}/websocket`, `/development/websocket`. chainyard serves
those (the chain id in the Host header; `model-{id}` hosts too, for a chains.ModelBase pushed on
its own) and the path forms `/chains/{chain_id}/.../websocket`.

A connection is authenticated and resolved as run_remote is (`Authorization: Api-Key <key>` or
`Bearer`; an environment's current deployment, the chain's development deployment, or the named
one). It wakes a deployment scaled to zero and waits for a replica as run_remote does. A refusal
before the connection is accepted is an HTTP answer with the inference error body (401, 403, 404,
503), as for run_remote. Once accepted, messages flow both ways, text and bytes as sent, and the
first side to close closes the other with the same code. An open connection counts as a request
in flight of the entry chainlet, which the autoscaler scales on; it holds no predict_concurrency
slot (truss's server runs WebSocket endpoints outside its predict semaphore).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from chainyard import replica_auth
from chainyard.domain.errors import ChainyardError, NotFound, Unauthorized
from chainyard.gateway import routes
from chainyard.gateway.router import ReplicaRouter, inference_error
from chainyard.services import api_keys, inference
from chainyard.services.context import Actor, Core

log = logging.getLogger("chainyard.gateway")

# As truss's server, which caps a message at 100 MiB.
MAX_MESSAGE_BYTES = 100 * 2**20
CONNECT_TIMEOUT = 10.0
_REPLICA_PATH = "/v1/websocket"
_HOST = re.compile(r"^(?:chain|model)-([a-z0-9]+)(?:-[a-z0-9-]+)?\.", re.IGNORECASE)
# Not passed to the replica: the handshake's own headers, and the caller's key.
_NOT_FORWARDED = frozenset(
    {
        "host",
        "authorization",
        "connection",
        "upgrade",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
        # The replica's credential is the gateway's to send, never a caller's.
        replica_auth.HEADER,
    }
)
# Close codes that may not be sent in a close frame (RFC 6455 7.4.1): "no status", "abnormal".
_NO_STATUS = 1005
_ABNORMAL = 1006
_INTERNAL_ERROR = 1011


def install(app: FastAPI) -> None:
    """Adds the websocket routes. Plain Starlette routes: the app's HTTP dependencies (the rate
    limit) take a Request, which a WebSocket is not."""
    for path, where in (
        ("/chains/{chain_id}/environments/{env_name}/websocket", "environment"),
        ("/chains/{chain_id}/production/websocket", "production"),
        ("/chains/{chain_id}/deployment/{deployment_id}/websocket", "deployment"),
        ("/chains/{chain_id}/development/websocket", "development"),
        ("/environments/{env_name}/websocket", "environment"),
        ("/production/websocket", "production"),
        ("/deployment/{deployment_id}/websocket", "deployment"),
        ("/development/websocket", "development"),
    ):
        app.router.routes.append(WebSocketRoute(path, _endpoint(where)))


def _endpoint(where: str) -> Callable[[WebSocket], Awaitable[None]]:
    async def endpoint(websocket: WebSocket) -> None:
        params = websocket.path_params
        environment = {"environment": params.get("env_name"), "production": "production"}.get(where)
        deployment_id = params.get("deployment_id") if where == "deployment" else None
        await _serve(
            websocket,
            params.get("chain_id"),
            environment,
            deployment_id,
            development=where == "development",
        )

    return endpoint


def _chain_from_host(connection: HTTPConnection) -> str:
    match = _HOST.match(connection.headers.get("host", ""))
    if match is None:
        raise NotFound("use /chains/{chain_id}/..., or a Host header chain-{chain_id}.<domain>")
    return match.group(1).lower()


async def _authenticate(core: Core, connection: HTTPConnection) -> Actor:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "api-key") or not value.strip():
        raise Unauthorized("missing API key: send 'Authorization: Api-Key <key>'")
    return await run_in_threadpool(
        api_keys.authenticate, core, value.strip(), routes.client_address(connection)
    )


async def _serve(
    websocket: WebSocket,
    chain_id: str | None,
    environment: str | None,
    deployment_id: str | None,
    *,
    development: bool = False,
) -> None:
    core: Core = websocket.app.state.core
    replicas: ReplicaRouter = websocket.app.state.router

    async def resolve() -> inference.Target:
        actor = await _authenticate(core, websocket)
        return await run_in_threadpool(
            inference.resolve,
            core,
            actor,
            chain_id or _chain_from_host(websocket),
            environment=environment,
            deployment_id=deployment_id,
            development=development,
        )

    request_id = websocket.headers.get("x-baseten-request-id") or uuid.uuid4().hex
    headers = {k: v for k, v in websocket.headers.items() if k.lower() not in _NOT_FORWARDED}
    headers["x-baseten-request-id"] = request_id
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    ) as session:
        try:
            connected = await _connect(session, core, replicas, resolve, headers)
        except ChainyardError as exc:
            await _deny(websocket, routes.error_answer(exc))
            return
        if isinstance(connected, Response):
            await _deny(websocket, connected)
            return
        target, address, upstream = connected
        replicas.in_flight[target.chainlet_id] += 1
        replicas.requests_total[target.chainlet_id] += 1
        replicas.load[address] += 1
        try:
            try:
                await websocket.accept(headers=[(b"x-baseten-request-id", request_id.encode())])
            except (RuntimeError, OSError, WebSocketDisconnect):
                return  # the client left while the replica was being found or woken
            await _relay(websocket, upstream)
        finally:
            replicas.in_flight[target.chainlet_id] -= 1
            replicas.release_slot(target.chainlet_id, address)
            await upstream.close()


async def _connect(
    session: aiohttp.ClientSession,
    core: Core,
    replicas: ReplicaRouter,
    resolve: Callable[[], Awaitable[inference.Target]],
    headers: dict[str, str],
) -> tuple[inference.Target, str, aiohttp.ClientWebSocketResponse] | Response:
    """Opens the connection to a ready replica of the target's entry chainlet, waking the
    deployment when none is ready. A replica that refuses the connection is passed over; with
    none left, the target is resolved once more (a promotion may have just moved it)."""
    for _attempt in range(2):
        target = await resolve()
        addresses = await routes.ready_or_woken(replicas, core, target)
        if not addresses:
            return routes.not_ready()
        # Least loaded first: open connections count as load.
        for address in sorted(addresses, key=lambda a: replicas.load[a]):
            try:
                upstream = await session.ws_connect(
                    address + _REPLICA_PATH,
                    headers={**headers, **replicas.credential_headers(target.chainlet_id, address)},
                    max_msg_size=MAX_MESSAGE_BYTES,
                    autoclose=False,
                )
            except aiohttp.WSServerHandshakeError as exc:
                return inference_error(
                    502,
                    "the chainlet's replica refused the websocket",
                    "model_unavailable",
                    f"{exc.status} {exc.message}",
                )
            except (aiohttp.ClientError, TimeoutError):
                continue  # not delivered: another replica can take it
            return target, address, upstream
    return inference_error(503, "the chain's replicas went away; retry", "model_unavailable")


async def _deny(websocket: WebSocket, response: Response) -> None:
    """Refuses the handshake with an HTTP answer; where the server cannot send one, closes with
    1008 (policy) or 1011 and the message as the reason."""
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        code = 1008 if response.status_code in (401, 403, 404) else _INTERNAL_ERROR
        body = bytes(response.body).decode(errors="replace")
        await websocket.close(code=code, reason=body[:120])


async def _relay(websocket: WebSocket, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Both directions at once, until one side closes; then closes the other side alike."""

    async def client_to_replica() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                code = _sendable(int(message.get("code") or 1000))
                await upstream.close(code=code, message=(message.get("reason") or "").encode())
                return
            if message.get("text") is not None:
                await upstream.send_str(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send_bytes(message["bytes"])

    async def replica_to_client() -> None:
        while True:
            message = await upstream.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                await websocket.send_text(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await websocket.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.CLOSE:
                code, reason = _sendable(int(message.data or 1000)), message.extra or None
                with contextlib.suppress(Exception):
                    await upstream.close(code=code)  # answers the replica's close frame
                await _close(websocket, code, reason)
                return
            elif message.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                await _close(websocket, _sendable(upstream.close_code or _ABNORMAL), None)
                return
            elif message.type == aiohttp.WSMsgType.ERROR:
                log.warning("websocket to the replica failed: %s", upstream.exception())
                await _close(websocket, _INTERNAL_ERROR, "the chainlet's replica went away")
                return

    done: set[asyncio.Task[None]] = set()
    tasks = [
        asyncio.create_task(client_to_replica()),
        asyncio.create_task(replica_to_client()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
    for task in done:
        exc = task.exception()
        # OSError: uvicorn's ClientDisconnected, a send to a client that has gone.
        if exc is not None and not isinstance(exc, WebSocketDisconnect | OSError):
            log.warning("websocket relay stopped: %r", exc)


async def _close(websocket: WebSocket, code: int, reason: str | None) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await websocket.close(code=code, reason=reason)


def _sendable(code: int) -> int:
    """A close code that may go in a close frame: "no status" becomes normal, an abnormal end
    (no close frame at all) an internal error."""
    if code == _NO_STATUS:
        return 1000
    if code == _ABNORMAL or not (1000 <= code <= 1014 or 3000 <= code <= 4999):
        return _INTERNAL_ERROR
    return code
