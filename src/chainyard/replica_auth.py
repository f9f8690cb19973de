"""Replicas answer only the gateway: every request and websocket must carry the replica's own
credential, a random token the runtime generated for this one replica and handed to it privately
(the local runtime in the fork command on the host's stdin, the Ray runtime in the actor's
arguments). Without it the answer is 401 (a websocket's handshake is refused with 401), whatever
the path, so that another process on the machine or the cluster cannot reach a replica past the
gateway's authentication, limits and accounting.

Imported by replicas, the runtimes and the gateway; it imports nothing of ours.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# The header that carries it. Its own name: a caller's `Authorization` is never forwarded to a
# replica, and this header is never passed on from a caller.
HEADER = "x-chainyard-replica-key"

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def headers(credential: str | None) -> dict[str, str]:
    """What a request to a replica sends along (nothing when the replica has no credential)."""
    return {HEADER: credential} if credential else {}


def _presented(scope: MutableMapping[str, Any]) -> bytes:
    name = HEADER.encode()
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value)
    return b""


def guard(credential: str, app: ASGIApp) -> ASGIApp:
    """ASGI wrapper that lets through only requests and websockets that carry `credential`."""
    if not credential:
        raise ValueError("a replica needs a credential: it would answer anyone without one")
    expected = credential.encode()

    async def guarded(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        kind = scope.get("type")
        if kind in ("http", "websocket") and hmac.compare_digest(_presented(scope), expected):
            await app(scope, receive, send)
            return
        if kind == "http":
            await _refuse_http(scope, receive, send)
        elif kind == "websocket":
            await _refuse_websocket(scope, receive, send)

    return guarded


_REFUSAL = b'{"error":"this replica answers only its gateway"}'
_REFUSAL_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_REFUSAL)).encode()),
]


async def _refuse_http(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[Any], Awaitable[None]],
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": _REFUSAL_HEADERS,
        }
    )
    await send({"type": "http.response.body", "body": _REFUSAL})


async def _refuse_websocket(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[Any], Awaitable[None]],
) -> None:
    message = await receive()  # the handshake ("websocket.connect")
    if message.get("type") != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": _REFUSAL_HEADERS,
            }
        )
        await send({"type": "websocket.http.response.body", "body": _REFUSAL})
    else:
        # A server without the denial extension answers a close before accept with 403.
        await send({"type": "websocket.close", "code": 1008})
