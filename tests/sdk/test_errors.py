"""How answers become typed errors, including those a live test server does not produce on
demand (429, 413, 5xx, non-JSON bodies)."""

from __future__ import annotations

import httpx
import pytest

from chainyard.sdk import (
    ChainyardAPIError,
    ChainyardError,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
)
from chainyard.sdk.errors import error_from_response


def _response(status: int, body: object = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, text="upstream exploded", headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, Invalid),
        (422, Invalid),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (418, ChainyardAPIError),
    ],
)
def test_status_maps_to_a_class(status: int, cls: type[ChainyardAPIError]) -> None:
    error = error_from_response(_response(status, {"error": "nope", "code": "SOME_CODE"}))
    assert type(error) is cls
    assert isinstance(error, ChainyardError)
    assert (error.status, error.code, error.message) == (status, "SOME_CODE", "nope")
    assert str(error) == f"{status} SOME_CODE: nope"


def test_rate_limited_reads_retry_after_from_the_body_then_the_header() -> None:
    from_body = error_from_response(
        _response(429, {"error": "busy", "code": "RATE_LIMITED", "retry_after": 2.5})
    )
    assert isinstance(from_body, RateLimited) and from_body.retry_after == 2.5
    from_header = error_from_response(
        _response(429, {"error": "busy", "error_code": "rate_limited"}, **{"Retry-After": "7"})
    )
    assert isinstance(from_header, RateLimited) and from_header.retry_after == 7.0
    assert from_header.code == "RATE_LIMITED"
    unknown = error_from_response(_response(429, {"error": "busy"}, **{"Retry-After": "soon"}))
    assert isinstance(unknown, RateLimited) and unknown.retry_after is None


def test_inference_and_non_json_bodies() -> None:
    chainlet = error_from_response(
        _response(
            500,
            {
                "error": {"exception_cls_name": "ValueError", "exception_message": "bad input"},
                "error_code": "application_error",
            },
        )
    )
    assert isinstance(chainlet, ServerError)
    assert chainlet.message == "ValueError: bad input"
    assert chainlet.code == "APPLICATION_ERROR"
    plain = error_from_response(_response(502))
    assert isinstance(plain, ServerError)
    assert (plain.code, plain.message) == ("HTTP_502", "upstream exploded")


def test_the_client_raises_them_and_sends_the_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/secrets":
            return _response(429, {"error": "slow down", "code": "RATE_LIMITED", "retry_after": 1})
        if request.url.path == "/v1/chains/deploy":
            return _response(413, {"error": "too big", "code": "PAYLOAD_TOO_LARGE"})
        raise httpx.ConnectError("refused", request=request)

    with Client("http://chainyard.test/", "k.secret", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(RateLimited) as limited:
            c.secrets.list()
        assert limited.value.retry_after == 1
        with pytest.raises(PayloadTooLarge):
            c.chains.deploy({"chain_name": "x", "chainlets": [{"name": "A"}]}, source=b"tar")
        with pytest.raises(ConnectionFailed) as refused:
            c.instance_types.list()
        assert "chainyard.test" in str(refused.value)
    assert seen[0].headers["authorization"] == "Bearer k.secret"
    assert seen[0].headers["user-agent"].startswith("chainyard-sdk/")
    assert seen[1].headers["content-type"].startswith("multipart/form-data")


def test_ids_are_escaped_into_one_path_segment() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return _response(404, {"error": "no", "code": "NOT_FOUND"})

    with (
        Client("http://h", "k", transport=httpx.MockTransport(handler)) as c,
        pytest.raises(NotFound),
    ):
        c.environments.get("ch/../x", "prod uction?")
    assert paths == ["/v1/chains/ch%2F..%2Fx/environments/prod%20uction%3F"]


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINYARD_URL", "http://from-env:9000/")
    monkeypatch.setenv("CHAINYARD_API_KEY", "env.key")
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json={"secrets": []})

    with Client(transport=httpx.MockTransport(handler)) as c:
        assert c.url == "http://from-env:9000"
        assert c.secrets.list().secrets == []
    assert captured[0].headers["authorization"] == "Bearer env.key"


def test_an_answer_of_the_wrong_shape_is_a_chainyard_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"not": "chains"})

    client = Client("http://h", "k", transport=httpx.MockTransport(handler))
    with client, pytest.raises(ChainyardError, match="unexpected answer to GET /v1/chains") as exc:
        client.chains.list()
    assert not isinstance(exc.value, ChainyardAPIError)


def test_waits_slow_down_when_rate_limited() -> None:
    answers = [
        _response(429, {"error": "slow down", "code": "RATE_LIMITED", "retry_after": 0.01}),
        httpx.Response(
            200,
            json={
                "id": "d1",
                "created_at": "2026-01-01T00:00:00Z",
                "chain_id": "c1",
                "environment": None,
                "chainlets": [],
                "status": "ACTIVE",
            },
        ),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    with Client("http://h", "k", transport=httpx.MockTransport(handler)) as c:
        done = c.deployments.wait_until_active("c1", "d1", timeout=5, poll_interval=0.01)
    assert done.status.value == "ACTIVE" and answers == []
