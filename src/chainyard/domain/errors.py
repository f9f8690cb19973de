"""The errors our use cases raise. `api/errors.py` maps them to HTTP in one place."""

from __future__ import annotations


class ChainyardError(Exception):
    """Base of every error that carries an HTTP status and a stable code for clients."""

    status_code = 500
    code = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Invalid(ChainyardError):
    status_code = 400
    code = "INVALID_ARGUMENT"


class Unauthorized(ChainyardError):
    status_code = 401
    code = "UNAUTHENTICATED"


class Forbidden(ChainyardError):
    status_code = 403
    code = "PERMISSION_DENIED"


class NotFound(ChainyardError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(ChainyardError):
    status_code = 409
    code = "CONFLICT"


class PayloadTooLarge(ChainyardError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(ChainyardError):
    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(ChainyardError):
    """A transient failure (database busy, runtime unreachable): the client may retry."""

    status_code = 503
    code = "UNAVAILABLE"
