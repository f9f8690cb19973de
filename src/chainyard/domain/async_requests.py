"""Async requests (docs/async-inference.md): Baseten's statuses, how they change, the retry
schedule, and the checks of an `async_run_remote` body. Pure: no store, no clock.

A request lives in two stages. The *predict* stage: QUEUED until a server claims it, then
IN_PROGRESS while the chain runs (a failed attempt the retry config allows goes back to waiting,
still IN_PROGRESS). It ends with an *outcome*: SUCCEEDED, FAILED or EXPIRED. A request with a
webhook then has a *webhook* stage: the outcome is delivered, and only then is the request done.

What the status says during the webhook stage:
- a success is not reported before its webhook has it: the status stays IN_PROGRESS (webhook
  PENDING) and becomes SUCCEEDED once delivered, or WEBHOOK_FAILED after the last try;
- a failure or an expiry is reported at once (FAILED, EXPIRED) with the webhook PENDING, which
  then becomes SUCCEEDED or FAILED; the status does not change again.
So a terminal status never changes, and WEBHOOK_FAILED always means "ran, but the result could
not be delivered". Without a webhook, webhook_status is NO_WEBHOOK_PROVIDED from start to end.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any, Literal
from urllib.parse import urlsplit

from chainyard.domain.errors import Invalid, PayloadTooLarge
from chainyard.domain.text import check_json_text


class RequestStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"
    WEBHOOK_FAILED = "WEBHOOK_FAILED"


class WebhookStatus(enum.StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    NO_WEBHOOK_PROVIDED = "NO_WEBHOOK_PROVIDED"


class ErrorCode(enum.StrEnum):
    """`AsyncRequestError.code` of the inference spec."""

    MODEL_PREDICT_ERROR = "MODEL_PREDICT_ERROR"
    MODEL_PREDICT_TIMEOUT = "MODEL_PREDICT_TIMEOUT"
    MODEL_NOT_READY = "MODEL_NOT_READY"
    MODEL_DOES_NOT_EXIST = "MODEL_DOES_NOT_EXIST"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    MODEL_INVALID_INPUT = "MODEL_INVALID_INPUT"
    ASYNC_REQUEST_NOT_SUPPORTED = "ASYNC_REQUEST_NOT_SUPPORTED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


# Statuses that count toward a workspace's limit and that a server may still act on.
OPEN = frozenset({RequestStatus.QUEUED, RequestStatus.IN_PROGRESS})
TERMINAL = frozenset(RequestStatus) - OPEN

# Every status change a request may make (a status may also stay as it is).
TRANSITIONS: frozenset[tuple[RequestStatus, RequestStatus]] = frozenset(
    {
        (RequestStatus.QUEUED, RequestStatus.IN_PROGRESS),
        (RequestStatus.QUEUED, RequestStatus.EXPIRED),
        (RequestStatus.QUEUED, RequestStatus.CANCELED),
        (RequestStatus.IN_PROGRESS, RequestStatus.SUCCEEDED),
        (RequestStatus.IN_PROGRESS, RequestStatus.FAILED),
        (RequestStatus.IN_PROGRESS, RequestStatus.WEBHOOK_FAILED),
    }
)


def may_move(before: RequestStatus, after: RequestStatus) -> bool:
    return before == after or (before, after) in TRANSITIONS


@dataclasses.dataclass(frozen=True)
class AsyncTarget:
    """What a request asked to run on, as its path said: an environment (by name), the chain's
    development deployment, or one deployment (whose id the request row holds)."""

    kind: Literal["environment", "development", "deployment"]
    environment: str | None = None

    def __post_init__(self) -> None:
        if (self.kind == "environment") != (self.environment is not None):
            raise ValueError("an environment target, and only one, names its environment")


ENVIRONMENT, DEVELOPMENT, DEPLOYMENT = "environment", "development", "deployment"


# -- the request's fields, with Baseten's ranges and defaults -------------------------------------

MAX_BODY_BYTES = 256 * 1024
PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT = 0, 2, 0
QUEUE_SECONDS_MIN, QUEUE_SECONDS_MAX, QUEUE_SECONDS_DEFAULT = 10, 72 * 3600, 600
MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX, MAX_ATTEMPTS_DEFAULT = 1, 10, 3
INITIAL_DELAY_MS_MIN, INITIAL_DELAY_MS_MAX, INITIAL_DELAY_MS_DEFAULT = 0, 10_000, 1000
MAX_DELAY_MS_MIN, MAX_DELAY_MS_MAX, MAX_DELAY_MS_DEFAULT = 0, 60_000, 5000
MAX_WEBHOOK_URL_LENGTH = 2048
# Arrays and objects in arrays and objects: the request is encoded again to be stored, sent to
# the chain and to the webhook, each time by a recursive encoder with its own stack to spare.
MAX_DEPTH = 128
# QUEUED plus IN_PROGRESS requests a workspace may hold (Baseten's per-organization limit).
WORKSPACE_LIMIT = 50_000
# How often a request may lose its server mid-run (the lease ran out) and still be run again:
# a request that kills every server that takes it must end, not take them all down in turn.
MAX_LOST_LEASES = 5

FIELDS = frozenset(
    {
        "model_input",
        "webhook_endpoint",
        "priority",
        "max_time_in_queue_seconds",
        "inference_retry_config",
    }
)
RETRY_FIELDS = frozenset({"max_attempts", "initial_delay_ms", "max_delay_ms"})


@dataclasses.dataclass(frozen=True)
class RetryConfig:
    """`inference_retry_config` with its defaults filled in: up to `max_attempts` predict calls,
    waiting `initial_delay_ms` after the first failure, doubling each time, at most
    `max_delay_ms`."""

    max_attempts: int = MAX_ATTEMPTS_DEFAULT
    initial_delay_ms: int = INITIAL_DELAY_MS_DEFAULT
    max_delay_ms: int = MAX_DELAY_MS_DEFAULT

    def delay_ms(self, failed_attempts: int) -> int:
        """The wait before the next attempt, after `failed_attempts` (>= 1) failed ones."""
        if failed_attempts < 1:
            raise ValueError("failed_attempts starts at 1")
        # Capped before the power can grow without bound (max_attempts is at most 10 anyway).
        factor: int = 1 << min(failed_attempts - 1, 32)
        return min(self.max_delay_ms, self.initial_delay_ms * factor)

    def allows_another(self, attempts: int) -> bool:
        """Whether another attempt may follow `attempts` failed ones."""
        return attempts < self.max_attempts

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RetryConfig:
        return cls(**(data or {}))


@dataclasses.dataclass(frozen=True)
class AsyncRequestSpec:
    """A checked `async_run_remote` body, defaults filled in."""

    model_input: dict[str, Any]
    webhook_endpoint: str | None = None
    priority: int = PRIORITY_DEFAULT
    max_time_in_queue_seconds: int = QUEUE_SECONDS_DEFAULT
    retry: RetryConfig = dataclasses.field(default_factory=RetryConfig)


def parse_body(body: bytes) -> AsyncRequestSpec:
    """Checks a raw `async_run_remote` body: at most 256 KiB (else PayloadTooLarge, 413), JSON,
    then `check`. Raises Invalid (400) with a message naming the field."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the async request body is {len(body)} bytes; at most {MAX_BODY_BYTES} bytes "
            "(256 KiB) are accepted",
            code="PAYLOAD_TOO_LARGE",
        )
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _too_deep() from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(
            f"the async request body is not valid JSON: {exc}", code="INVALID_REQUEST"
        ) from exc
    if _depth(data) > MAX_DEPTH:
        raise _too_deep()
    # Stored, then sent to the chain and maybe to a webhook: text that no encoder takes would
    # fail there, long after the 201.
    check_json_text(data)
    return check(data)


def _no_constant(name: str) -> object:
    # Python's JSON reader takes NaN and Infinity, which are not JSON: PostgreSQL's json type
    # and the chain's reader would refuse them later.
    raise ValueError(f"{name} is not a JSON value")


def _too_deep() -> Invalid:
    return _invalid(f"the async request body is nested more than {MAX_DEPTH} levels deep")


def _depth(document: object) -> int:
    """How deeply arrays and objects nest in a parsed document (without recursion)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            items: Any = value.values()
        elif isinstance(value, list):
            items = value
        else:
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            stack.extend((item, level + 1) for item in items)
    return deepest


def check(data: object) -> AsyncRequestSpec:
    """Checks a decoded `async_run_remote` body (see the module's docstring for the fields).
    A field given as null takes its default; any other field is refused."""
    if not isinstance(data, dict):
        raise _invalid("the async request body must be a JSON object with a `model_input` field")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise _invalid(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in the async request; the fields are {', '.join(sorted(FIELDS))}"
        )
    if "model_input" not in data:
        raise _invalid("`model_input` is required: the chain's run_remote arguments")
    model_input = data["model_input"]
    if not isinstance(model_input, dict):
        raise _invalid(
            "`model_input` must be a JSON object: the arguments of the chain's run_remote, "
            f"by name (got {_json_type(model_input)})"
        )
    return AsyncRequestSpec(
        model_input=model_input,
        webhook_endpoint=check_webhook_endpoint(data.get("webhook_endpoint")),
        priority=_int_in(
            data.get("priority"), "priority", PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT
        ),
        max_time_in_queue_seconds=_int_in(
            data.get("max_time_in_queue_seconds"),
            "max_time_in_queue_seconds",
            QUEUE_SECONDS_MIN,
            QUEUE_SECONDS_MAX,
            QUEUE_SECONDS_DEFAULT,
        ),
        retry=check_retry_config(data.get("inference_retry_config")),
    )


def check_webhook_endpoint(value: object) -> str | None:
    """The URL's form only (http or https, a host); whether its host may be called is the
    webhook target check's business (webhooks/targets.py). Empty or null: no webhook."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid(f"`webhook_endpoint` must be a URL string (got {_json_type(value)})")
    if len(value) > MAX_WEBHOOK_URL_LENGTH:
        raise _invalid(f"`webhook_endpoint` is longer than {MAX_WEBHOOK_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"`webhook_endpoint` is not a valid URL: {exc}") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _invalid(
            f"`webhook_endpoint` must be an https:// (or http://) URL with a host, got {value!r}"
        )
    if port == 0 or any(c.isspace() for c in value):
        raise _invalid(f"`webhook_endpoint` is not a valid URL: {value!r}")
    return value


def check_retry_config(value: object) -> RetryConfig:
    if value is None:
        return RetryConfig()
    if not isinstance(value, dict):
        raise _invalid(
            "`inference_retry_config` must be an object with max_attempts, initial_delay_ms "
            f"and max_delay_ms (got {_json_type(value)})"
        )
    unknown = sorted(set(value) - RETRY_FIELDS)
    if unknown:
        raise _invalid(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
            f"`inference_retry_config`; the fields are {', '.join(sorted(RETRY_FIELDS))}"
        )
    return RetryConfig(
        max_attempts=_int_in(
            value.get("max_attempts"),
            "inference_retry_config.max_attempts",
            MAX_ATTEMPTS_MIN,
            MAX_ATTEMPTS_MAX,
            MAX_ATTEMPTS_DEFAULT,
        ),
        initial_delay_ms=_int_in(
            value.get("initial_delay_ms"),
            "inference_retry_config.initial_delay_ms",
            INITIAL_DELAY_MS_MIN,
            INITIAL_DELAY_MS_MAX,
            INITIAL_DELAY_MS_DEFAULT,
        ),
        max_delay_ms=_int_in(
            value.get("max_delay_ms"),
            "inference_retry_config.max_delay_ms",
            MAX_DELAY_MS_MIN,
            MAX_DELAY_MS_MAX,
            MAX_DELAY_MS_DEFAULT,
        ),
    )


def _int_in(value: object, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    # JSON has one number type: 2.0 is the integer 2, 2.5 is not one. A boolean is not a number.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(
            f"`{name}` must be an integer from {low} to {high} (got {_json_type(value)})"
        )
    if not low <= value <= high:
        raise _invalid(f"`{name}` must be from {low} to {high}, inclusive (got {value})")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid(message: str) -> Invalid:
    return Invalid(message, code="INVALID_REQUEST")


# -- how each event moves a request ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Move:
    """Where an event leaves a request: its status and webhook status, and the outcome still to
    be delivered to its webhook (None: nothing to deliver)."""

    status: RequestStatus
    webhook_status: WebhookStatus
    outcome: RequestStatus | None = None


def initial_webhook_status(has_webhook: bool) -> WebhookStatus:
    return WebhookStatus.PENDING if has_webhook else WebhookStatus.NO_WEBHOOK_PROVIDED


def _ended(outcome: RequestStatus, has_webhook: bool) -> Move:
    if not has_webhook:
        return Move(outcome, WebhookStatus.NO_WEBHOOK_PROVIDED)
    # A success waits for its webhook (module docstring); a failure or expiry is final at once.
    shown = RequestStatus.IN_PROGRESS if outcome == RequestStatus.SUCCEEDED else outcome
    return Move(shown, WebhookStatus.PENDING, outcome)


def succeeded(has_webhook: bool) -> Move:
    return _ended(RequestStatus.SUCCEEDED, has_webhook)


def failed(has_webhook: bool) -> Move:
    return _ended(RequestStatus.FAILED, has_webhook)


def expired(has_webhook: bool) -> Move:
    return _ended(RequestStatus.EXPIRED, has_webhook)


def canceled(has_webhook: bool) -> Move:
    return Move(
        RequestStatus.CANCELED,
        WebhookStatus.CANCELED if has_webhook else WebhookStatus.NO_WEBHOOK_PROVIDED,
    )


def webhook_done(outcome: RequestStatus, delivered: bool) -> Move:
    """The end of the webhook stage of a request whose predict stage ended with `outcome`."""
    if outcome not in (RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.EXPIRED):
        raise ValueError(f"no webhook is delivered for an outcome {outcome}")
    if delivered:
        return Move(outcome, WebhookStatus.SUCCEEDED)
    if outcome == RequestStatus.SUCCEEDED:
        return Move(RequestStatus.WEBHOOK_FAILED, WebhookStatus.FAILED)
    return Move(outcome, WebhookStatus.FAILED)


def expiry_error(max_time_in_queue_seconds: int) -> dict[str, str]:
    # The spec's codes have none for expiry: the model did not take the request in time, which
    # is what MODEL_UNAVAILABLE says. The status (EXPIRED) and the message say the rest.
    return error(
        ErrorCode.MODEL_UNAVAILABLE,
        f"the request waited in the queue longer than max_time_in_queue_seconds "
        f"({max_time_in_queue_seconds} s) and expired before it ran",
    )


MAX_ERROR_MESSAGE = 4000


def error(code: ErrorCode | str, message: str) -> dict[str, str]:
    """One entry of a request's `errors` (an AsyncRequestError), its message cut to a bound."""
    checked = ErrorCode(code)
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 1] + "…"
    return {"code": checked.value, "message": message}
