"""Every error leaves the server as {"error": "<message>", "code": "<UPPER_SNAKE>"}.

`install` also documents those answers in the app's OpenAPI document (api/openapi_errors.py), so
the document and the handlers are set up together.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chainyard.api import openapi_errors
from chainyard.domain.errors import ChainyardError, RateLimited
from chainyard.domain.text import storable

log = logging.getLogger("chainyard.api")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def error_body(message: str, code: str) -> dict[str, str]:
    # A message quoting invalid text (a lone surrogate, domain/text.py) must still encode, or the
    # error answer itself becomes a 500 and the connection is dropped.
    return {"error": storable(message), "code": code}


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid request: " + "; ".join(parts)


def install(app: FastAPI) -> None:
    openapi_errors.install(app)

    @app.exception_handler(ChainyardError)
    async def _ours(_request: Request, exc: ChainyardError) -> JSONResponse:
        body: dict[str, object] = {**error_body(exc.message, exc.code)}
        headers = {}
        if isinstance(exc, RateLimited):
            body["retry_after"] = exc.retry_after
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body(_describe_validation(exc), "INVALID_REQUEST"), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse(
            error_body(str(exc.detail), code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal error", "INTERNAL"), status_code=500)
