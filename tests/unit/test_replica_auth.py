"""A replica answers only requests and websockets that carry its credential; text that reaches a
workspace names no internal address."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from chainyard import replica_auth
from chainyard.domain.addresses import without_addresses

KEY = "the-replica-key-0123456789abcdefghijklmnopq"


def _client() -> TestClient:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def talk(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/v1/models/model", hello),
            Route("/v1/models/model:predict", hello, methods=["POST"]),
            WebSocketRoute("/v1/websocket", talk),
        ]
    )
    return TestClient(replica_auth.guard(KEY, app))  # type: ignore[arg-type]


@pytest.mark.parametrize("presented", [None, "", "wrong", KEY[:-1], KEY + "x", KEY.upper()])
def test_requests_without_the_credential_are_refused_on_every_path(
    presented: str | None,
) -> None:
    client = _client()
    headers = {} if presented is None else {replica_auth.HEADER: presented}
    for method, path in (
        ("GET", "/v1/models/model"),
        ("POST", "/v1/models/model:predict"),
        ("GET", "/anything/else"),
    ):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"error": "this replica answers only its gateway"}
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/v1/websocket", headers=headers),
    ):
        pass
    assert refused.value.status_code == 401


def test_the_credential_opens_requests_and_websockets() -> None:
    client = _client()
    headers = replica_auth.headers(KEY)
    assert client.get("/v1/models/model", headers=headers).text == "hello"
    assert client.post("/v1/models/model:predict", headers=headers).text == "hello"
    with client.websocket_connect("/v1/websocket", headers=headers) as websocket:
        assert websocket.receive_text() == "hi"


def test_a_replica_needs_a_credential() -> None:
    with pytest.raises(ValueError):
        replica_auth.guard("", Starlette())  # type: ignore[arg-type]
    assert replica_auth.headers(None) == {}


@pytest.mark.parametrize(
    "text",
    [
        "Cannot connect to host 127.0.0.1:41234 ssl:default "
        "[Connect call failed ('127.0.0.1', 41234)]",
        "the Ray node 10.1.2.3 died",
        "http://[fe80::1]:8000/v1/models/model",
        "listening on 192.168.0.7:80",
    ],
)
def test_internal_addresses_are_hidden(text: str) -> None:
    hidden = without_addresses(text)
    assert hidden.count("<internal address>") >= 1
    for leaked in ("127.0.0.1", "41234", "10.1.2.3", "fe80", "192.168", ":80"):
        assert leaked not in hidden


def test_other_numbers_stay() -> None:
    assert without_addresses("truss 0.9.1, exit code 3") == "truss 0.9.1, exit code 3"
