"""Request bodies are JSON whatever their `Content-Type` says.

Baseten's documented `curl --data '{...}'` lines send no JSON content type (curl then says
`application/x-www-form-urlencoded`), and Baseten reads them as JSON. FastAPI would treat such a
body as bytes and refuse it, so the label is rewritten before routing. The binary types that
some endpoints really accept keep their meaning: multipart uploads (the deploy endpoint) and
msgpack or raw bytes (inference bodies, as truss sends them).

`valid_text` refuses JSON bodies whose text is not valid Unicode.
"""

from __future__ import annotations

from fastapi import Request

from chainyard.api.limits import ASGIApp, Receive, Scope, Send
from chainyard.domain.text import check_json_text

JSON = b"application/json"
_BINARY_PREFIXES = (
    b"multipart/",
    b"application/octet-stream",
    b"application/msgpack",
    b"application/x-msgpack",
    b"application/vnd.msgpack",
)


def is_json_or_binary(content_type: bytes) -> bool:
    value = content_type.strip().lower()
    media = value.split(b";", 1)[0].strip()
    if media == JSON or media.endswith(b"+json"):
        return True
    return value.startswith(_BINARY_PREFIXES)


class JsonBodies:
    """Relabels every other request body (no `Content-Type`, form-encoded, text) as JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            headers = scope.get("headers", [])
            kept = [(k, v) for k, v in headers if k != b"content-type"]
            labels = [v for k, v in headers if k == b"content-type"]
            if len(labels) != 1 or not is_json_or_binary(labels[0]):
                scope = {**scope, "headers": [*kept, (b"content-type", JSON)]}
        await self.app(scope, receive, send)


async def valid_text(request: Request) -> None:
    """App-wide dependency: a JSON body whose strings are not all valid Unicode is a 400
    `INVALID_TEXT` before any handler runs (domain/text.py says why they would fail later).

    Only routes that declare a body model are checked: FastAPI has parsed their body already, and
    `Request.json` hands out that parse again. Routes that read their body themselves (the deploy
    upload, parsed by pydantic, which refuses such text itself; inference, streamed to chainlets)
    are left alone."""
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return
    if not await request.body():
        return
    try:
        document = await request.json()
    except ValueError:
        return  # FastAPI answers an unparsable body itself
    check_json_text(document)
