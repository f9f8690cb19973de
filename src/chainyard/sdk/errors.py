"""Errors the SDK raises: one class per kind of failure a caller handles differently.

Every error is a `ChainyardError`. An answer from the server with a non-2xx status is a
`ChainyardAPIError` (status, code, message); the subclass says which kind. Waits that give up
or end badly are `WaitError`s, so that a script can tell "the server said no" from "the
deployment did not come up".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "ChainyardAPIError",
    "ChainyardError",
    "Conflict",
    "ConnectionFailed",
    "DeploymentFailed",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PayloadTooLarge",
    "PromotionFailed",
    "PromotionTimeout",
    "RateLimited",
    "ServerError",
    "StreamBrokenOff",
    "Unauthorized",
    "WaitError",
    "WaitTimeout",
    "error_from_response",
]


class ChainyardError(Exception):
    """Base of everything the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectionFailed(ChainyardError):
    """The server could not be reached, or did not answer in time."""


class ChainyardAPIError(ChainyardError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class Invalid(ChainyardAPIError):
    """400 or 422: the request was malformed or broke a rule; nothing changed."""


class Unauthorized(ChainyardAPIError):
    """401: no API key, or one the server does not know."""


class Forbidden(ChainyardAPIError):
    """403: the key is valid but may not do this (e.g. an invoke-only key managing chains)."""


class NotFound(ChainyardAPIError):
    """404: no such resource in the key's workspace."""


class Conflict(ChainyardAPIError):
    """409: the resource is in a state that forbids this now (e.g. PROMOTION_IN_PROGRESS)."""


class PayloadTooLarge(ChainyardAPIError):
    """413: the request body is over the server's limit."""


class RateLimited(ChainyardAPIError):
    """429: too many requests; `retry_after` says how many seconds to wait."""

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ChainyardAPIError):
    """5xx: the server failed or is unavailable; retrying later may help."""


class StreamBrokenOff(ChainyardError):
    """A streamed answer ended without its end: the chain failed after it began to answer (200
    was already sent). `received` is how many bytes came before the break."""

    def __init__(self, message: str, *, received: int, request_id: str | None) -> None:
        super().__init__(message)
        self.received = received
        self.request_id = request_id


class WaitError(ChainyardError):
    """A wait for a deployment or a promotion did not end well."""

    def __init__(
        self,
        message: str,
        *,
        chain_id: str,
        deployment_id: str | None,
        status: str | None,
        environment: str | None = None,
    ) -> None:
        super().__init__(message)
        self.chain_id = chain_id
        self.deployment_id = deployment_id
        self.status = status
        self.environment = environment


class DeploymentFailed(WaitError):
    """The deployment ended in a failed status (BUILD_FAILED, DEPLOY_FAILED, ...)."""


class PromotionFailed(DeploymentFailed):
    """The deployment will not become the environment's current one: it failed, was deleted, or
    the promotion was abandoned. The environment keeps serving what it served before."""


class WaitTimeout(WaitError, TimeoutError):
    """The deadline passed while the deployment was still on its way."""


class PromotionTimeout(WaitTimeout):
    """The deadline passed while the promotion was still in progress; it may still finish."""


_BY_STATUS: dict[int, type[ChainyardAPIError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Invalid,
}


def _message_of(error: object, fallback: str) -> str:
    # A chainlet's exception comes back as truss's structured object rather than a string.
    if isinstance(error, str) and error:
        return error
    if isinstance(error, Mapping):
        for key in ("exception_message", "message", "detail"):
            value = error.get(key)
            if isinstance(value, str) and value:
                name = error.get("exception_cls_name")
                return f"{name}: {value}" if isinstance(name, str) and name else value
        return json.dumps(error)[:500]
    return fallback


def _retry_after(body: Mapping[str, Any] | None, headers: httpx.Headers) -> float | None:
    candidates: list[object] = [body.get("retry_after") if body else None]
    candidates.append(headers.get("retry-after"))
    for value in candidates:
        if isinstance(value, bool) or value is None:
            continue
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def error_from_response(response: httpx.Response) -> ChainyardAPIError:
    """The typed error for a non-2xx answer, from the management API's `{"error", "code"}` body
    or the inference API's `{"error", "error_code"}` body (or no JSON body at all)."""
    status = response.status_code
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None
    mapping: Mapping[str, Any] | None = body if isinstance(body, Mapping) else None
    fallback = response.text[:500].strip() or response.reason_phrase or f"HTTP {status}"
    message = _message_of(mapping.get("error") if mapping else None, fallback)
    raw_code = (mapping.get("code") or mapping.get("error_code")) if mapping else None
    code = str(raw_code).upper() if raw_code else f"HTTP_{status}"
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "body": body,
        "headers": dict(response.headers),
    }
    if status == 429:
        return RateLimited(message, retry_after=_retry_after(mapping, response.headers), **common)
    if status >= 500:
        return ServerError(message, **common)
    return _BY_STATUS.get(status, ChainyardAPIError)(message, **common)
