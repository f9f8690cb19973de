"""Every error leaves the server as {"error": "<message>", "code": "<UPPER_SNAKE>"}."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chainyard.api import errors
from chainyard.domain.errors import Conflict, RateLimited
from chainyard.server import create_app
from tests.support.server import Api, fast_config, hello_manifest

_CODE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


def _error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"].strip()
    assert isinstance(body["code"], str) and _CODE.match(body["code"]), body
    if code is not None:
        assert body["code"] == code, body
    return body


def _raw(
    api: Api, method: str, path: str, content: bytes | str, content_type: str
) -> httpx.Response:
    headers = {**api.headers(), "Content-Type": content_type}
    response: httpx.Response = api.client.request(method, path, headers=headers, content=content)
    return response


def test_malformed_json_is_400_invalid_request(api: Api) -> None:
    chain_id = api.deploy(hello_manifest(environment=None))["chain_id"]
    env = f"/v1/chains/{chain_id}/environments"
    for method, path in (
        ("POST", "/v1/secrets"),
        ("POST", "/v1/api_keys"),
        ("POST", env),
        ("PATCH", f"{env}/production"),
        ("POST", f"{env}/production/promote"),
        ("PATCH", f"{env}/production/chainlet_settings/autoscaling_settings"),
        ("POST", f"{env}/production/chainlet_settings/instance_types/update"),
    ):
        for content in ('{"name": ', "{'single': 'quotes'}", "not json at all", "{}}", "\xff"):
            body = _error(_raw(api, method, path, content, "application/json"), 400)
            assert body["code"] == "INVALID_REQUEST", (method, path, content, body)
    # The deploy endpoint parses its manifest itself; a broken one is still a 400.
    for content in ('{"chain_name": ', "[]", "null", ""):
        _error(_raw(api, "POST", "/v1/chains/deploy", content, "application/json"), 400)
    # Nothing was created by any of it.
    assert api.get("/v1/secrets").json()["secrets"] == []
    assert [e["name"] for e in api.get(env).json()["environments"]] == []


def test_wrong_types_are_400(api: Api) -> None:
    chain_id = api.deploy(hello_manifest(environment=None))["chain_id"]
    env = f"/v1/chains/{chain_id}/environments"
    cases: list[tuple[str, str, Any]] = [
        ("POST", "/v1/secrets", {"name": 5, "value": "v"}),
        ("POST", "/v1/secrets", {"name": "n", "value": ["a"]}),
        ("POST", "/v1/secrets", ["name", "value"]),
        ("POST", "/v1/secrets", "a string"),
        ("POST", "/v1/api_keys", {"type": ["WORKSPACE_MANAGE_ALL"]}),
        ("POST", env, {"name": {"nested": True}}),
        ("POST", f"{env}/production/promote", {"deployment_id": 12}),
        ("PATCH", f"{env}/production", {"promotion_settings": {"rolling_deploy": "yes"}}),
        ("PATCH", f"{env}/production/chainlet_settings/autoscaling_settings", {"updates": "all"}),
        ("POST", f"{env}/production/chainlet_settings/instance_types/update", {"updates": [1]}),
        ("POST", "/v1/chains/deploy", {"chain_name": 7, "chainlets": []}),
        ("POST", "/v1/chains/deploy", {**hello_manifest(), "chainlets": "HelloWorld"}),
    ]
    for method, path, body in cases:
        response = api.client.request(method, path, headers=api.headers(), json=body)
        _error(response, 400)
    for path, params in (
        ("/v1/chains", {"limit": "ten"}),
        (f"/v1/chains/{chain_id}/audit_logs", {"limit": "x"}),
        (f"/v1/chains/{chain_id}/audit_logs", {"start_epoch_millis": "yesterday"}),
    ):
        body = _error(api.get(path, params=params), 400)
        assert body["code"] == "INVALID_REQUEST"
    assert api.get("/v1/secrets").json()["secrets"] == []


def test_unknown_paths_are_404_json(api: Api) -> None:
    for path in ("/v1/nope", "/nothing/here", "/v1/chains/abc/nope", "/v2/chains"):
        _error(api.get(path), 404, "NOT_FOUND")
        _error(api.client.get(path), 404)  # even without a key


def test_wrong_methods_are_405_json(api: Api) -> None:
    for method, path in (
        ("PUT", "/v1/secrets"),
        ("DELETE", "/v1/secrets"),
        ("PATCH", "/v1/api_keys"),
        ("POST", "/v1/instance_types"),
        ("PUT", "/v1/chains/abc"),
        ("PUT", "/v1/chains/deploy"),
    ):
        response = api.client.request(method, path, headers=api.headers())
        _error(response, 405, "METHOD_NOT_ALLOWED")
        assert "allow" in {h.lower() for h in response.headers}


def test_domain_errors_keep_their_code(api: Api) -> None:
    chain_id = api.deploy(hello_manifest(environment=None))["chain_id"]
    _error(api.get(f"/v1/chains/{chain_id}/environments/nosuchenv"), 404, "ENVIRONMENT_NOT_FOUND")
    _error(api.get("/v1/chains/nosuchchain"), 404, "CHAIN_NOT_FOUND")
    _error(api.delete("/v1/secrets/nosuchsecret"), 404, "SECRET_NOT_FOUND")
    created = api.post(f"/v1/chains/{chain_id}/environments", json={"name": "staging"})
    assert created.status_code == 200, created.text
    again = api.post(f"/v1/chains/{chain_id}/environments", json={"name": "staging"})
    body = _error(again, 409, "ENVIRONMENT_EXISTS")
    assert "staging" in body["error"]


def test_values_the_database_cannot_hold_are_4xx_not_500(api: Api) -> None:
    chain_id = api.deploy(hello_manifest(environment=None))["chain_id"]
    logs = f"/v1/chains/{chain_id}/deployments/d/chainlets/c/logs"
    for method, path, params in (
        ("GET", f"/v1/chains/{chain_id}/audit_logs", {"search": "a\x00b"}),
        ("GET", f"/v1/chains/{chain_id}/audit_logs", {"environment_names": "a\x00b"}),
        ("GET", f"/v1/chains/{chain_id}/audit_logs", {"chain_deployment_ids": "a\x00b"}),
        ("GET", "/v1/chains/a%00b", {}),
        ("GET", "/v1/chains/a%00b/audit_logs", {}),
        ("GET", f"/v1/chains/{chain_id}/environments/a%00b", {}),
        ("GET", logs, {"replica": "a\x00"}),
        ("DELETE", "/v1/api_keys/a%00b", {}),
        ("DELETE", "/v1/secrets/a%00b", {}),
        ("GET", "/v1/chains", {"after": "a\x00b"}),
    ):
        response = api.client.request(method, path, headers=api.headers(), params=params)
        # SQLite stores NUL characters, PostgreSQL refuses them: a 400 there, never a 500.
        assert response.status_code in (200, 400, 404), (path, params, response.text)
        if response.status_code != 200:
            _error(response, response.status_code)
    # Too long for its column (PostgreSQL checks; SQLite does not).
    long_name = api.post("/v1/api_keys", json={"type": "WORKSPACE_INVOKE", "name": "x" * 201})
    _error(long_name, 400)


def test_unexpected_exceptions_are_500_internal_without_details() -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    @app.get("/busy")
    def busy() -> None:
        raise RateLimited("slow down", retry_after=2.4)

    @app.get("/conflict")
    def conflict() -> None:
        raise Conflict("taken", code="NAME_TAKEN")

    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/boom")
    body = _error(response, 500, "INTERNAL")
    assert "secret detail" not in response.text
    assert body["error"] == "internal error"

    busy_response = client.get("/busy")
    assert busy_response.status_code == 429
    assert busy_response.json() == {
        "error": "slow down",
        "code": "RATE_LIMITED",
        "retry_after": 2.4,
    }
    assert busy_response.headers["Retry-After"] == "2"

    assert client.get("/conflict").json() == {"error": "taken", "code": "NAME_TAKEN"}


# -- found by the fuzzer (tests/fuzz) ------------------------------------------------------------


def test_null_rolling_deploy_fields_leave_them_as_they_were(api: Api) -> None:
    # Was a 500: the nulls replaced the stored values, and the effective config has no nulls.
    chain_id = api.deploy(hello_manifest(environment=None))["chain_id"]
    env = f"/v1/chains/{chain_id}/environments"
    assert api.post(env, json={"name": "staging"}).status_code == 200
    surge = {"promotion_settings": {"rolling_deploy_config": {"max_surge_percent": 50}}}
    assert api.patch(f"{env}/staging", json=surge).status_code == 200
    nulls = {
        "rolling_deploy_strategy": None,
        "max_surge_percent": None,
        "max_unavailable_percent": None,
        "stabilization_time_seconds": 30,
        "replica_overhead_percent": None,
    }
    response = api.patch(
        f"{env}/staging", json={"promotion_settings": {"rolling_deploy_config": nulls}}
    )
    assert response.status_code == 200, response.text
    rolling = api.environment(chain_id, "staging")["promotion_settings"]["rolling_deploy_config"]
    assert rolling == {
        "rolling_deploy_strategy": "REPLICA",
        "max_surge_percent": 50,
        "max_unavailable_percent": 0,
        "stabilization_time_seconds": 30,
        "replica_overhead_percent": 0,
    }


def test_audit_log_times_out_of_datetime_range_are_400(api: Api) -> None:
    # Was a 500: the bounds became datetimes, and such years do not exist.
    chain_id = api.deploy(hello_manifest(environment=None))["chain_id"]
    path = f"/v1/chains/{chain_id}/audit_logs"
    for params in (
        {"end_epoch_millis": "-18369954261202743296"},
        {"start_epoch_millis": str(10**20)},
        {"start_epoch_millis": str(10**400)},
    ):
        _error(api.get(path, params=params), 400, "INVALID_ARGUMENT")
    assert api.get(path, params={"start_epoch_millis": "-1496"}).status_code == 200


def test_openapi_documents_every_error_answer(tmp_path: pathlib.Path) -> None:
    app = create_app(fast_config(data_dir=tmp_path))
    try:
        spec: dict[str, Any] = app.openapi()
    finally:
        app.state.core.db.dispose()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # we answer 400, never FastAPI's 422
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    rate_limited = {"$ref": "#/components/schemas/RateLimitedResponse"}
    inference_error = {"$ref": "#/components/schemas/InferenceErrorResponse"}
    operations = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            operations += 1
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if "inference" in operation.get("tags", ()):
                for status in ("400", "401", "403", "404", "413", "429", "502", "503", "504"):
                    assert responses[status]["content"]["application/json"]["schema"] == (
                        inference_error
                    ), (method, path, status)
                continue
            for status in ("400", "401", "403", "404", "409", "413", "503"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == error, (method, path, status)
            assert responses["429"]["content"]["application/json"]["schema"] == rate_limited
            assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert operations >= 30
    assert schemas["ErrorResponse"]["required"] == ["error", "code"]
    assert schemas["ErrorResponse"]["additionalProperties"] is False
    assert set(schemas["RateLimitedResponse"]["required"]) == {"error", "code", "retry_after"}
    # The run_remote input is any JSON value, as Baseten documents it.
    run = spec["paths"]["/chains/{chain_id}/production/run_remote"]["post"]
    assert run["requestBody"]["content"]["application/json"]["schema"] == {}
