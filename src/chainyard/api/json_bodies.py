"""Request bodies are JSON whatever their `Content-Type` says.

Baseten's documented `curl --data '{...}'` lines send no JSON content type (curl then says
`application/x-www-form-urlencoded`), and Baseten reads them as JSON. FastAPI would treat such a
body as bytes and refuse it, so the label is rewritten before routing. The binary types that
some endpoints really accept keep their meaning: multipart uploads (the deploy endpoint) and
msgpack or raw bytes (inference bodies, as truss sends them).
"""

from __future__ import annotations

from chainyard.api.limits import ASGIApp, Receive, Scope, Send

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
