"""The public async inference routes (gateway/async_routes.py), on SQLite and PostgreSQL: every
path form enqueues (201 and an id), reports, counts and cancels; bodies, webhook targets, sizes,
keys, targets and the workspace limit are refused as Baseten's spec says.

Nothing claims a request here: the servers run no async runner, so a request stays QUEUED until
canceled (the runner's tests are its own)."""

from __future__ import annotations

import dataclasses
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from chainyard.config import ServerConfig
from chainyard.gateway import async_routes
from chainyard.services import api_keys
from tests.support import postgres
from tests.support.server import Api, fast_config, hello_manifest

# A server that only serves the API claims nothing (the runner's setting, where it exists).
NO_RUNNER: dict[str, Any] = (
    {"run_async_runner": False}
    if "run_async_runner" in {f.name for f in dataclasses.fields(ServerConfig)}
    else {}
)
KIB = 1024


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, pathlib.Path]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("async-routes")
    if request.param == "sqlite":
        return f"sqlite:///{tmp / 'chainyard.db'}", tmp
    admin: str = request.getfixturevalue("postgres_admin_url")
    return postgres.create_database(admin, f"t_{uuid.uuid4().hex[:12]}"), tmp


@pytest.fixture(scope="module")
def server(module_url: tuple[str, pathlib.Path]) -> Iterator[Api]:
    """One server per database for the module; each test works on chains of its own."""
    from chainyard.server import create_app

    url, tmp = module_url
    config = fast_config(
        data_dir=tmp / "data", database_url=url, reconcile_interval=0.02, **NO_RUNNER
    )
    with TestClient(create_app(config)) as client:
        yield Api(client=client, config=config)


@dataclasses.dataclass
class Chain:
    id: str
    production: str
    # A second deployment, not promoted, and the development deployment.
    other: str
    development: str


def _chain(api: Api) -> Chain:
    name = f"async-{uuid.uuid4().hex[:8]}"
    first = api.deploy(hello_manifest(name))
    chain_id = first["chain_id"]
    production = first["chain_deployment"]["id"]
    api.wait_current(chain_id, production)
    other = {**hello_manifest(name, environment=None), "chain_id": chain_id}
    del other["chain_name"]
    second = api.deploy(other)["chain_deployment"]["id"]
    development = api.deploy({**hello_manifest(name, environment=None), "development": True})
    return Chain(chain_id, production, second, development["chain_deployment"]["id"])


@pytest.fixture
def chain(server: Api) -> Chain:
    return _chain(server)


def _host(chain_id: str, env: str | None = None) -> dict[str, str]:
    return {"Host": f"chain-{chain_id}{'-' + env if env else ''}.example.com"}


def _enqueue(
    api: Api,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    key: str | None = None,
) -> httpx.Response:
    return api.client.post(
        path,
        json={"model_input": {"max_value": 5}} if body is None else body,
        headers={**api.headers(key), **(headers or {})},
    )


def _created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"request_id"}
    request_id: str = body["request_id"]
    assert len(request_id) == 20
    return request_id


def _counts(api: Api, path: str, headers: dict[str, str] | None = None) -> tuple[int, int]:
    response = api.client.get(path, headers={**api.headers(), **(headers or {})})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "model_id",
        "deployment_id",
        "num_queued_requests",
        "num_in_progress_requests",
    }
    return body["num_queued_requests"], body["num_in_progress_requests"]


# -- every form ---------------------------------------------------------------------------------


def test_every_path_form_enqueues_reports_and_counts(server: Api, chain: Chain) -> None:
    c = chain.id
    production = [
        _enqueue(server, f"/chains/{c}/production/async_run_remote"),
        _enqueue(server, f"/chains/{c}/environments/production/async_run_remote"),
        _enqueue(server, "/production/async_run_remote", headers=_host(c)),
        _enqueue(server, "/environments/production/async_run_remote", headers=_host(c)),
        _enqueue(server, "/async_run_remote", headers=_host(c, "production")),
    ]
    other = [
        _enqueue(server, f"/chains/{c}/deployment/{chain.other}/async_run_remote"),
        _enqueue(server, f"/deployment/{chain.other}/async_run_remote", headers=_host(c)),
    ]
    development = [
        _enqueue(server, f"/chains/{c}/development/async_run_remote"),
        _enqueue(server, "/development/async_run_remote", headers=_host(c)),
    ]
    for responses, deployment in (
        (production, chain.production),
        (other, chain.other),
        (development, chain.development),
    ):
        for response in responses:
            request_id = _created(response)
            status = server.get(f"/async_request/{request_id}")
            assert status.status_code == 200, status.text
            body = status.json()
            assert body["request_id"] == request_id
            assert body["chain_id"] == c and body["deployment_id"] == deployment
            assert body["status"] == "QUEUED"
            assert body["webhook_status"] == "NO_WEBHOOK_PROVIDED"
            assert body["errors"] == []
            assert body["created_at"] == body["status_at"]
            # The chain's path form answers it too.
            assert server.get(f"/chains/{c}/async_request/{request_id}").json() == body

    assert _counts(server, f"/chains/{c}/production/async_queue_status") == (5, 0)
    assert _counts(server, f"/chains/{c}/environments/production/async_queue_status") == (5, 0)
    assert _counts(server, "/production/async_queue_status", _host(c)) == (5, 0)
    assert _counts(server, "/environments/production/async_queue_status", _host(c)) == (5, 0)
    assert _counts(server, "/async_queue_status", _host(c, "production")) == (5, 0)
    assert _counts(server, f"/chains/{c}/deployment/{chain.other}/async_queue_status") == (2, 0)
    assert _counts(server, f"/deployment/{chain.other}/async_queue_status", _host(c)) == (2, 0)
    assert _counts(server, f"/chains/{c}/development/async_queue_status") == (2, 0)
    assert _counts(server, "/development/async_queue_status", _host(c)) == (2, 0)
    answer = server.get(f"/chains/{c}/production/async_queue_status").json()
    assert answer["model_id"] == c and answer["deployment_id"] == chain.production


def test_a_queued_request_is_canceled_once(server: Api, chain: Chain) -> None:
    c = chain.id
    first = _created(_enqueue(server, f"/chains/{c}/production/async_run_remote"))
    second = _created(_enqueue(server, "/production/async_run_remote", headers=_host(c)))
    assert _counts(server, f"/chains/{c}/production/async_queue_status") == (2, 0)

    canceled = server.delete(f"/chains/{c}/async_request/{first}")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json() == {
        "request_id": first,
        "canceled": True,
        "message": "the request was canceled",
    }
    status = server.get(f"/async_request/{first}").json()
    assert status["status"] == "CANCELED" and status["webhook_status"] == "NO_WEBHOOK_PROVIDED"
    again = server.client.delete(
        f"/async_request/{first}", headers={**server.headers(), **_host(c)}
    )
    assert again.status_code == 200
    assert again.json()["canceled"] is False
    assert "CANCELED" in again.json()["message"]
    assert _counts(server, f"/chains/{c}/production/async_queue_status") == (1, 0)

    # The Host form of cancel, whatever the Host says.
    assert server.delete(f"/async_request/{second}").json()["canceled"] is True
    assert _counts(server, f"/chains/{c}/production/async_queue_status") == (0, 0)


def test_a_webhook_request_waits_for_its_webhook(server: Api, chain: Chain) -> None:
    body = {"model_input": {}, "webhook_endpoint": "https://hooks.example.com/chainyard"}
    request_id = _created(_enqueue(server, f"/chains/{chain.id}/production/async_run_remote", body))
    status = server.get(f"/async_request/{request_id}").json()
    assert status["status"] == "QUEUED" and status["webhook_status"] == "PENDING"
    assert server.delete(f"/async_request/{request_id}").json()["canceled"] is True
    assert server.get(f"/async_request/{request_id}").json()["webhook_status"] == "CANCELED"


def test_an_enqueue_wakes_the_runner(server: Api, chain: Chain) -> None:
    state = server.client.app.state  # type: ignore[attr-defined]
    before = getattr(state, "async_enqueued", None)
    woken: list[int] = []
    state.async_enqueued = lambda: woken.append(1)
    try:
        _created(_enqueue(server, f"/chains/{chain.id}/production/async_run_remote"))
        server.wait_for(lambda: woken, what="the runner's wake-up")
        # A refused request wakes nothing.
        assert _enqueue(server, f"/chains/{chain.id}/production/async_run_remote", {}).is_error
        assert len(woken) == 1
    finally:
        state.async_enqueued = before


# -- refusals -----------------------------------------------------------------------------------

BAD_BODIES = [
    ({"model_input": {}, "extra": 1}, "'extra'"),
    ({"model_input": {}, "priority": 3}, "priority"),
    ({"model_input": {}, "priority": -1}, "priority"),
    ({"model_input": {}, "priority": "high"}, "priority"),
    ({"model_input": {}, "max_time_in_queue_seconds": 5}, "max_time_in_queue_seconds"),
    ({"model_input": {}, "max_time_in_queue_seconds": 259_201}, "max_time_in_queue_seconds"),
    (
        {"model_input": {}, "inference_retry_config": {"max_attempts": 11}},
        "inference_retry_config.max_attempts",
    ),
    (
        {"model_input": {}, "inference_retry_config": {"initial_delay_ms": -1}},
        "inference_retry_config.initial_delay_ms",
    ),
    (
        {"model_input": {}, "inference_retry_config": {"max_delay_ms": 60_001}},
        "inference_retry_config.max_delay_ms",
    ),
    ({"model_input": {}, "inference_retry_config": {"tries": 2}}, "'tries'"),
    ({"model_input": {}, "inference_retry_config": 3}, "inference_retry_config"),
    ({"model_input": [1, 2]}, "model_input"),
    ({"model_input": "x"}, "model_input"),
    ({}, "model_input"),
    ([], "JSON object"),
    ({"model_input": {}, "webhook_endpoint": 7}, "webhook_endpoint"),
    ({"model_input": {}, "webhook_endpoint": "ftp://example.com/x"}, "webhook_endpoint"),
]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
def test_a_bad_body_is_a_400_naming_the_field(
    server: Api, chain: Chain, body: Any, named: str
) -> None:
    response = _enqueue(server, f"/chains/{chain.id}/production/async_run_remote", body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_code"] == "client_error"
    assert error["code"] == "INVALID_REQUEST"
    assert named in error["error"]
    assert _counts(server, f"/chains/{chain.id}/production/async_queue_status") == (0, 0)


def test_bodies_that_are_not_json_are_400s(server: Api, chain: Chain) -> None:
    path = f"/chains/{chain.id}/production/async_run_remote"
    for raw in (b"", b"{model_input: 1}", b'{"model_input": {"x": NaN}}', b"\xff"):
        response = server.post(path, content=raw)
        assert response.status_code == 400, (raw, response.text)
        assert response.json()["error_code"] == "client_error"
    # Baseten's curl lines send no JSON content type: the body is JSON all the same.
    response = server.client.post(
        path,
        content=b'{"model_input": {}}',
        headers={**server.headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text


PRIVATE_WEBHOOKS = [
    "http://127.0.0.1:9999/hook",
    "https://127.0.0.1/hook",
    "https://localhost/hook",
    "https://10.1.2.3/hook",
    "https://[::1]/hook",
    "https://user:pw@hooks.example.com/hook",
]


@pytest.mark.parametrize("url", PRIVATE_WEBHOOKS)
def test_private_and_plain_webhooks_are_refused(server: Api, chain: Chain, url: str) -> None:
    response = _enqueue(
        server,
        f"/chains/{chain.id}/production/async_run_remote",
        {"model_input": {}, "webhook_endpoint": url},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_WEBHOOK_ENDPOINT"
    assert "webhook_endpoint" in response.json()["error"]


def test_an_operator_may_allow_private_webhooks(make_api: Any) -> None:
    api: Api = make_api(allow_private_webhooks=True, **NO_RUNNER)
    chain = _chain(api)
    response = _enqueue(
        api,
        f"/chains/{chain.id}/production/async_run_remote",
        {"model_input": {}, "webhook_endpoint": "http://127.0.0.1:9999/hook"},
    )
    request_id = _created(response)
    assert api.get(f"/async_request/{request_id}").json()["webhook_status"] == "PENDING"
    # Still a URL with a host, without credentials.
    response = _enqueue(
        api,
        f"/chains/{chain.id}/production/async_run_remote",
        {"model_input": {}, "webhook_endpoint": "http://user:pw@127.0.0.1/hook"},
    )
    assert response.status_code == 400


def test_a_body_over_256_kib_is_a_413(server: Api, chain: Chain) -> None:
    path = f"/chains/{chain.id}/production/async_run_remote"

    def sized(n: int) -> bytes:
        head = b'{"model_input": {"pad": "'
        tail = b'"}}'
        return head + b"a" * (n - len(head) - len(tail)) + tail

    assert server.post(path, content=sized(256 * KIB)).status_code == 201
    # Declared: refused before it is read.
    response = server.post(path, content=sized(256 * KIB + 1))
    assert response.status_code == 413, response.text
    assert response.json()["error_code"] == "payload_too_large"

    # Without a length (chunked): refused once more than 256 KiB has come.
    def chunks() -> Iterator[bytes]:
        body = sized(300 * KIB)
        for start in range(0, len(body), 64 * KIB):
            yield body[start : start + 64 * KIB]

    response = server.post(path, content=chunks())
    assert response.status_code == 413, response.text
    assert response.json()["error_code"] == "payload_too_large"
    assert _counts(server, f"/chains/{chain.id}/production/async_queue_status") == (1, 0)


def test_keys_are_checked_on_every_async_path(server: Api, chain: Chain) -> None:
    c = chain.id
    request_id = _created(_enqueue(server, f"/chains/{c}/production/async_run_remote"))
    calls = [
        ("POST", f"/chains/{c}/production/async_run_remote"),
        ("GET", f"/chains/{c}/production/async_queue_status"),
        ("GET", f"/async_request/{request_id}"),
        ("DELETE", f"/async_request/{request_id}"),
        ("GET", f"/chains/{c}/async_request/{request_id}"),
    ]
    manager = api_keys.admin_create_key(server.core, "default", "WORKSPACE_MANAGE_API_KEYS")
    for method, path in calls:
        body = {"json": {"model_input": {}}} if method == "POST" else {}
        missing = server.client.request(method, path, **body)
        assert missing.status_code == 401, (method, path, missing.text)
        assert missing.json()["error_code"] == "unauthorized"
        wrong = server.client.request(
            method, path, headers={"Authorization": "Api-Key nope.nope"}, **body
        )
        assert wrong.status_code == 401, (method, path, wrong.text)
        refused = server.client.request(method, path, headers=server.headers(manager), **body)
        assert refused.status_code == 403, (method, path, refused.text)
    # An invoke key may do all of it.
    invoke = api_keys.admin_create_key(server.core, "default", "WORKSPACE_INVOKE")
    assert _enqueue(server, calls[0][1], key=invoke).status_code == 201
    assert server.get(calls[2][1], key=invoke).status_code == 200
    assert server.delete(calls[3][1], key=invoke).json()["canceled"] is True


def test_unknown_targets_and_requests_are_404s(server: Api, chain: Chain) -> None:
    c = chain.id
    for path, headers in [
        ("/chains/nosuchchain/production/async_run_remote", {}),
        (f"/chains/{c}/environments/nosuchenv/async_run_remote", {}),
        (f"/chains/{c}/deployment/nosuchdep/async_run_remote", {}),
        ("/production/async_run_remote", {"Host": "api.example.com"}),
        ("/async_run_remote", _host(c)),  # a regional form needs the environment
        ("/async_run_remote", _host(c, "nosuchenv")),
    ]:
        response = _enqueue(server, path, headers=headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error_code"] == "model_does_not_exist"
        status_path = path.replace("async_run_remote", "async_queue_status")
        status = server.client.get(status_path, headers={**server.headers(), **headers})
        assert status.status_code == 404, (status_path, status.text)
    for method in ("GET", "DELETE"):
        response = server.client.request(
            method, "/async_request/nosuchrequest", headers=server.headers()
        )
        assert response.status_code == 404
        assert response.json()["code"] == "ASYNC_REQUEST_NOT_FOUND"


def test_another_workspace_or_chain_does_not_see_a_request(server: Api, chain: Chain) -> None:
    request_id = _created(_enqueue(server, f"/chains/{chain.id}/production/async_run_remote"))
    other = api_keys.admin_create_key(server.core, "other", "WORKSPACE_MANAGE_ALL")
    elsewhere = server.deploy(hello_manifest(f"async-{uuid.uuid4().hex[:8]}"))["chain_id"]
    for method in ("GET", "DELETE"):
        response = server.client.request(
            method, f"/async_request/{request_id}", headers=server.headers(other)
        )
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "ASYNC_REQUEST_NOT_FOUND"
        # Nor on the path of another chain of its workspace.
        response = server.client.request(
            method, f"/chains/{elsewhere}/async_request/{request_id}", headers=server.headers()
        )
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "ASYNC_REQUEST_NOT_FOUND"
    # Nor its chain's queue.
    response = server.get(f"/chains/{chain.id}/production/async_queue_status", key=other)
    assert response.status_code == 404
    assert server.get(f"/async_request/{request_id}").json()["status"] == "QUEUED"


def test_the_workspace_limit_is_a_429(
    server: Api, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit counts the workspace's open requests; this module's other tests leave some.
    open_now = _open_requests(server)
    monkeypatch.setattr(async_routes, "WORKSPACE_LIMIT", open_now + 2)
    path = f"/chains/{chain.id}/production/async_run_remote"
    first = _created(_enqueue(server, path))
    _created(_enqueue(server, path))
    refused = _enqueue(server, path)
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "5"
    assert refused.json()["error_code"] == "rate_limited"
    # A canceled request frees its place.
    assert server.delete(f"/async_request/{first}").json()["canceled"] is True
    _created(_enqueue(server, path))


def _open_requests(api: Api) -> int:
    from sqlalchemy import func, select

    from chainyard.store.async_requests import AsyncRequest

    with api.core.db.read() as session:
        count = session.scalar(
            select(func.count())
            .select_from(AsyncRequest)
            .where(AsyncRequest.status.in_(["QUEUED", "IN_PROGRESS"]))
        )
    return int(count or 0)
