"""`domain.async_requests`: the checks of an async_run_remote body (Baseten's ranges and
defaults), the retry schedule, and how each event moves a request's statuses."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest

from chainyard.domain import async_requests as d
from chainyard.domain.errors import Invalid, PayloadTooLarge
from chainyard.schemas import async_requests as wire

R, W = d.RequestStatus, d.WebhookStatus


def test_a_body_with_only_model_input_takes_baseten_defaults() -> None:
    spec = d.check({"model_input": {"x": 1}})
    assert spec == d.AsyncRequestSpec(model_input={"x": 1})
    assert spec.webhook_endpoint is None
    assert spec.priority == 0
    assert spec.max_time_in_queue_seconds == 600
    assert spec.retry == d.RetryConfig(max_attempts=3, initial_delay_ms=1000, max_delay_ms=5000)


def test_every_field_is_read_and_null_means_the_default() -> None:
    spec = d.check(
        {
            "model_input": {"prompt": "hi"},
            "webhook_endpoint": "https://example.com/hook?x=1",
            "priority": 2,
            "max_time_in_queue_seconds": 259_200,
            "inference_retry_config": {"max_attempts": 10, "initial_delay_ms": 0},
        }
    )
    assert spec.webhook_endpoint == "https://example.com/hook?x=1"
    assert (spec.priority, spec.max_time_in_queue_seconds) == (2, 259_200)
    assert spec.retry == d.RetryConfig(10, 0, 5000)
    nulls = d.check(
        {
            "model_input": {},
            "webhook_endpoint": None,
            "priority": None,
            "max_time_in_queue_seconds": None,
            "inference_retry_config": None,
        }
    )
    assert nulls == d.AsyncRequestSpec(model_input={})
    assert d.check({"model_input": {}, "webhook_endpoint": ""}).webhook_endpoint is None


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [
        ("priority", 0, 2),
        ("max_time_in_queue_seconds", 10, 259_200),
        ("inference_retry_config.max_attempts", 1, 10),
        ("inference_retry_config.initial_delay_ms", 0, 10_000),
        ("inference_retry_config.max_delay_ms", 0, 60_000),
    ],
)
def test_ranges_are_inclusive_and_a_value_outside_is_a_clear_400(
    field: str, low: int, high: int
) -> None:
    def body(value: object) -> dict[str, Any]:
        if field.startswith("inference_retry_config."):
            return {"model_input": {}, "inference_retry_config": {field.split(".")[1]: value}}
        return {"model_input": {}, field: value}

    d.check(body(low))
    d.check(body(high))
    d.check(body(float(high)))  # JSON's 2.0 is the integer 2
    for bad in (low - 1, high + 1):
        with pytest.raises(Invalid) as info:
            d.check(body(bad))
        assert info.value.code == "INVALID_REQUEST"
        assert f"`{field}` must be from {low} to {high}" in info.value.message
        assert str(bad) in info.value.message
    for wrong in (True, "1", 1.5, [1], {"a": 1}):
        with pytest.raises(Invalid, match=f"`{field}` must be an integer from {low} to {high}"):
            d.check(body(wrong))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "`model_input` is required"),
        ({"model_input": [1, 2]}, r"`model_input` must be a JSON object.*an array"),
        ({"model_input": "x"}, r"`model_input` must be a JSON object.*a string"),
        ({"model_input": {}, "extra": 1}, r"unknown field 'extra' in the async request"),
        ({"model_input": {}, "b": 1, "a": 2}, r"unknown fields 'a', 'b'"),
        (
            {"model_input": {}, "inference_retry_config": {"retries": 2}},
            r"unknown field 'retries' in `inference_retry_config`",
        ),
        ({"model_input": {}, "inference_retry_config": 3}, "must be an object"),
        ({"model_input": {}, "webhook_endpoint": 5}, "must be a URL string"),
        ({"model_input": {}, "webhook_endpoint": "ftp://h/x"}, "must be an https://"),
        ({"model_input": {}, "webhook_endpoint": "https:///path"}, "with a host"),
        ({"model_input": {}, "webhook_endpoint": "example.com/hook"}, "must be an https://"),
        ({"model_input": {}, "webhook_endpoint": "https://h:99999/"}, "not a valid URL"),
        ({"model_input": {}, "webhook_endpoint": "https://h/a b"}, "not a valid URL"),
        (
            {"model_input": {}, "webhook_endpoint": "https://h/" + "a" * 2048},
            "longer than 2048",
        ),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(body: object, message: str) -> None:
    with pytest.raises(Invalid, match=message) as info:
        d.check(body)
    assert info.value.status_code == 400


def test_http_webhooks_are_accepted_here_the_target_check_decides_the_rest() -> None:
    assert d.check_webhook_endpoint("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"


def test_parse_body_bounds_the_size_at_256_kib_and_wants_json() -> None:
    def sized(n: int) -> bytes:
        raw = json.dumps({"model_input": {"pad": ""}}).encode()
        return raw.replace(b'""', b'"' + b"a" * (n - len(raw)) + b'"')

    at_limit = sized(256 * 1024)
    assert len(at_limit) == 256 * 1024
    assert d.parse_body(at_limit).model_input["pad"].startswith("a")
    with pytest.raises(PayloadTooLarge, match="at most 262144 bytes") as info:
        d.parse_body(sized(256 * 1024 + 1))
    assert info.value.status_code == 413
    with pytest.raises(Invalid, match="not valid JSON"):
        d.parse_body(b"{model_input: 1}")
    with pytest.raises(Invalid, match="not valid JSON"):
        d.parse_body(b"\xff\xfe")


def test_parse_body_refuses_what_could_not_be_stored_or_sent_on() -> None:
    # NaN and Infinity are Python's, not JSON's: PostgreSQL and the chain would refuse them.
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(Invalid, match="not valid JSON"):
            d.parse_body(b'{"model_input": {"x": ' + constant + b"}}")
    # A lone surrogate decodes to a str that no UTF-8 encoder takes.
    with pytest.raises(Invalid, match="surrogate") as info:
        d.parse_body(b'{"model_input": {"x": "\\ud800"}}')
    assert info.value.code == "INVALID_TEXT"

    # Nesting: a bounded depth is kept; deeper (even past the parser's own limit) is a 400.
    def nested(levels: int) -> bytes:
        inner = b"[" * (levels - 2) + b"]" * (levels - 2)
        return b'{"model_input": {"x": ' + inner + b"}}"

    assert d.parse_body(nested(d.MAX_DEPTH)).model_input
    for levels in (d.MAX_DEPTH + 1, 100_000):
        with pytest.raises(Invalid, match="nested more than"):
            d.parse_body(nested(levels))


def test_the_retry_schedule_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    retry = d.RetryConfig(max_attempts=6, initial_delay_ms=100, max_delay_ms=1000)
    assert [retry.delay_ms(n) for n in range(1, 7)] == [100, 200, 400, 800, 1000, 1000]
    assert d.RetryConfig(initial_delay_ms=0).delay_ms(5) == 0
    # A cap below the initial delay caps it too.
    assert d.RetryConfig(initial_delay_ms=5000, max_delay_ms=10).delay_ms(1) == 10
    assert d.RetryConfig(max_attempts=10, initial_delay_ms=10_000).delay_ms(10**6) == 5000
    assert [retry.allows_another(n) for n in (1, 5, 6)] == [True, True, False]
    assert d.RetryConfig(max_attempts=1).allows_another(1) is False
    assert d.RetryConfig.from_json(retry.to_json()) == retry
    assert d.RetryConfig.from_json(None) == d.RetryConfig()
    with pytest.raises(ValueError):
        retry.delay_ms(0)


def test_moves_without_a_webhook_end_at_once() -> None:
    none = W.NO_WEBHOOK_PROVIDED
    assert d.initial_webhook_status(False) == none
    assert d.succeeded(False) == d.Move(R.SUCCEEDED, none)
    assert d.failed(False) == d.Move(R.FAILED, none)
    assert d.expired(False) == d.Move(R.EXPIRED, none)
    assert d.canceled(False) == d.Move(R.CANCELED, none)


def test_with_a_webhook_a_success_waits_for_it_and_failures_show_at_once() -> None:
    assert d.initial_webhook_status(True) == W.PENDING
    assert d.succeeded(True) == d.Move(R.IN_PROGRESS, W.PENDING, R.SUCCEEDED)
    assert d.failed(True) == d.Move(R.FAILED, W.PENDING, R.FAILED)
    assert d.expired(True) == d.Move(R.EXPIRED, W.PENDING, R.EXPIRED)
    assert d.canceled(True) == d.Move(R.CANCELED, W.CANCELED)
    assert d.webhook_done(R.SUCCEEDED, True) == d.Move(R.SUCCEEDED, W.SUCCEEDED)
    assert d.webhook_done(R.SUCCEEDED, False) == d.Move(R.WEBHOOK_FAILED, W.FAILED)
    for outcome in (R.FAILED, R.EXPIRED):
        assert d.webhook_done(outcome, True) == d.Move(outcome, W.SUCCEEDED)
        assert d.webhook_done(outcome, False) == d.Move(outcome, W.FAILED)
    with pytest.raises(ValueError):
        d.webhook_done(R.CANCELED, True)


def test_every_move_is_in_the_transition_table_and_terminal_statuses_stay() -> None:
    starts = {
        d.succeeded: R.IN_PROGRESS,
        d.failed: R.IN_PROGRESS,
        d.expired: R.QUEUED,
        d.canceled: R.QUEUED,
    }
    for event, start in starts.items():
        for has_webhook in (True, False):
            move = event(has_webhook)
            assert d.may_move(start, move.status), (event, has_webhook)
            if move.outcome is not None:
                done = d.webhook_done(move.outcome, delivered=False)
                assert d.may_move(move.status, done.status)
    for terminal in d.TERMINAL:
        assert not any(d.may_move(terminal, other) for other in R if other != terminal)
    assert not d.may_move(R.IN_PROGRESS, R.QUEUED)
    assert {R.QUEUED, R.IN_PROGRESS} == d.OPEN


def test_errors_use_the_spec_codes_and_bounded_messages() -> None:
    assert d.error("MODEL_PREDICT_ERROR", "boom") == {
        "code": "MODEL_PREDICT_ERROR",
        "message": "boom",
    }
    assert len(d.error(d.ErrorCode.INTERNAL_SERVER_ERROR, "x" * 10_000)["message"]) == 4000
    with pytest.raises(ValueError):
        d.error("NOT_A_CODE", "x")
    expiry = d.expiry_error(600)
    assert expiry["code"] == "MODEL_UNAVAILABLE"
    assert "600 s" in expiry["message"]


def test_targets_name_an_environment_exactly_when_they_are_one() -> None:
    assert d.AsyncTarget("environment", "production").environment == "production"
    assert d.AsyncTarget("development").environment is None
    with pytest.raises(ValueError):
        d.AsyncTarget("environment")
    with pytest.raises(ValueError):
        d.AsyncTarget("deployment", "production")


def test_the_wire_enums_are_the_domain_enums() -> None:
    assert set(typing.get_args(wire.AsyncRequestStatus)) == {s.value for s in R}
    assert set(typing.get_args(wire.AsyncWebhookStatus)) == {s.value for s in W}
    assert set(typing.get_args(wire.AsyncErrorCode)) == {c.value for c in d.ErrorCode}


def test_the_documenting_request_model_has_the_same_defaults_and_bounds() -> None:
    model = wire.AsyncRunRemoteRequest.model_validate({"model_input": {}})
    spec = d.check({"model_input": {}})
    assert model.priority == spec.priority
    assert model.max_time_in_queue_seconds == spec.max_time_in_queue_seconds
    assert wire.InferenceRetryConfig().model_dump() == spec.retry.to_json()
    schema = wire.AsyncRunRemoteRequest.model_json_schema()
    assert schema["properties"]["priority"]["maximum"] == d.PRIORITY_MAX
    assert schema["properties"]["max_time_in_queue_seconds"]["minimum"] == d.QUEUE_SECONDS_MIN
    assert schema["additionalProperties"] is False
