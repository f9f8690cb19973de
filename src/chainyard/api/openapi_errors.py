"""Error answers in the OpenAPI document.

FastAPI documents a route's success answer and a 422 that we never send (api/errors.py answers a
request that fails validation with 400). Clients generated from the document, and the fuzzer that
checks every answer against it (tests/fuzz), need the error answers as they really are, so this
module rewrites each operation's responses once, when the document is first built:

- management operations answer {"error", "code"} (429 adds `retry_after`), see api/errors.py;
- inference operations (tag "inference") answer as Baseten's inference API does, {"error",
  "error_code"}, and pass a chainlet's own error answer through, so their errors are open objects.
  Their request body is any JSON value (the chain's `run_remote` input), which the routes read
  themselves and so FastAPI cannot see.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import FastAPI

from chainyard.schemas import ErrorResponse

OpenAPI = dict[str, Any]

ERROR = "ErrorResponse"
RATE_LIMITED = "RateLimitedResponse"
INFERENCE_ERROR = "InferenceErrorResponse"
INFERENCE_TAG = "inference"

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# What each status means on this API. Every management operation documents all of them: each
# can be reached by any route (a bad key, a refused body size, the rate limit, a busy database),
# or by most, and a client handles them by status, not by route.
_MANAGEMENT = {
    400: "Invalid request: malformed JSON, a wrong type, or a value the operation refuses",
    401: "Missing, malformed or unknown API key",
    403: "The API key's type may not do this",
    404: "No such resource in the API key's workspace",
    409: "The resource's state refuses the change (it exists already, a promotion is running...)",
    413: "The request body is larger than the server accepts",
    429: "Too many requests with this API key to this endpoint; retry after `retry_after` seconds",
    503: "The server cannot reach its database just now; retry",
}
_INFERENCE = {
    400: "The chainlet refused its input",
    401: "Missing, malformed or unknown API key",
    403: "The API key's type may not call chains",
    404: "No such chain, environment or deployment, or it has no active deployment",
    413: "The request body is larger than the server accepts",
    429: "Too many requests: the rate limit, or every replica busy with a full queue",
    500: "The chain raised an exception: truss's detail in `error`, `error_code` application_error",
    502: "The chainlet's replica is unreachable, or broke the connection",
    503: "No replica of the chain became ready in time, or the replicas went away",
    504: "The chainlet did not answer in time",
}

_RETRY_AFTER_HEADER = {
    "description": "Whole seconds to wait before retrying",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def _schemas() -> dict[str, OpenAPI]:
    error = ErrorResponse.model_json_schema()
    # Closed and with the code's documented form, so a checker notices a stray field or code.
    error["additionalProperties"] = False
    error["properties"]["code"]["pattern"] = "^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$"
    rate_limited = copy.deepcopy(error)
    rate_limited["title"] = RATE_LIMITED
    rate_limited["description"] = "A rate-limited request"
    rate_limited["properties"]["retry_after"] = {
        "type": "number",
        "minimum": 0,
        "description": "Seconds to wait before retrying",
    }
    rate_limited["required"] = [*error["required"], "retry_after"]
    inference_error = {
        "title": INFERENCE_ERROR,
        "description": (
            "An inference error, as Baseten's inference API answers it; a chainlet's own error "
            "answer comes with its extra fields"
        ),
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "anyOf": [{"type": "string"}, {"type": "object"}],
                "description": (
                    "Human-readable message; for a chainlet's exception, truss's structured "
                    "detail (exception class, message, traceback)"
                ),
            },
            "error_code": {"type": "string", "description": "Machine-readable code"},
            "code": {"type": "string", "description": "Code of an error met before routing"},
            "detail": {"description": "What went wrong underneath, when known"},
            "retry_after": {"type": "number", "description": "Seconds to wait before retrying"},
        },
    }
    return {ERROR: error, RATE_LIMITED: rate_limited, INFERENCE_ERROR: inference_error}


def _json(ref: str) -> OpenAPI:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _management_responses() -> dict[str, OpenAPI]:
    out: dict[str, OpenAPI] = {}
    for status, description in _MANAGEMENT.items():
        response: OpenAPI = {"description": description}
        if status == 429:
            response["content"] = _json(RATE_LIMITED)
            response["headers"] = {"Retry-After": {**_RETRY_AFTER_HEADER, "required": True}}
        else:
            response["content"] = _json(ERROR)
        out[str(status)] = response
    return out


def _inference_responses() -> dict[str, OpenAPI]:
    out: dict[str, OpenAPI] = {}
    for status, description in _INFERENCE.items():
        response: OpenAPI = {"description": description, "content": _json(INFERENCE_ERROR)}
        if status == 429:
            # A chainlet's own 429 passes through without the header.
            response["headers"] = {"Retry-After": _RETRY_AFTER_HEADER}
        out[str(status)] = response
    return out


def _document_inference(path: str, operation: OpenAPI) -> None:
    if path.endswith("/run_remote") and operation.get("requestBody") is None:
        operation["requestBody"] = {
            "required": True,
            "description": "JSON input matching the chain's `run_remote` method signature",
            "content": {"application/json": {"schema": {}}},
        }
    # A chain's own answer; the async operations' answers are ours, documented by their routes.
    ok = operation.get("responses", {}).get("200")
    if ok is not None and path.endswith(("/run_remote", "/predict")):
        ok["description"] = "The chain's output: JSON, or a stream of bytes"
        ok["content"] = {
            "application/json": {"schema": {}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }


def document_errors(spec: OpenAPI) -> OpenAPI:
    """Rewrites `spec` in place: our error answers on every operation, FastAPI's 422 gone."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_schemas())
    management = _management_responses()
    inference = _inference_responses()
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if INFERENCE_TAG in operation.get("tags", ()):
                _document_inference(path, operation)
                errors = inference
            else:
                errors = management
            for status, response in errors.items():
                responses.setdefault(status, copy.deepcopy(response))
    # FastAPI's validation-error components are dead once no 422 refers to them (the second is
    # referred to by the first only).
    for name in ("HTTPValidationError", "ValidationError"):
        rest = {k: v for k, v in schemas.items() if k != name}
        if f'"#/components/schemas/{name}"' not in json.dumps([spec["paths"], rest]):
            schemas.pop(name, None)
    return spec


def install(app: FastAPI) -> None:
    """Makes `app.openapi()` build its document with `document_errors` (once, then cached)."""
    build = app.openapi

    def openapi() -> OpenAPI:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
