"""Our /openapi.json serves every chains path and method of Baseten's reference spec, with
compatible request and response schemas."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest

from chainyard.server import create_app
from tests.contract import wire_facts
from tests.contract.spec_compat import compare_openapi, load_reference_spec
from tests.support.server import fast_config

PREFIXES = (
    "/v1/chains",
    "/v1/instance_types",
    "/v1/instance_type_prices",
    "/v1/secrets",
    "/v1/api_keys",
)


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    spec = load_reference_spec()
    return spec


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir: pathlib.Path = tmp_path_factory.mktemp("openapi")
    app = create_app(fast_config(data_dir=data_dir))
    spec: dict[str, Any] = app.openapi()
    app.state.core.db.dispose()
    return spec


def test_every_reference_operation_is_served_compatibly(
    reference: dict[str, Any], ours: dict[str, Any]
) -> None:
    problems = compare_openapi(reference, ours, PREFIXES, check_query_params=True)
    assert problems == []


def test_reference_covers_the_operations_we_claim(reference: dict[str, Any]) -> None:
    # Guards the test above against a reference that silently lost its paths.
    operations = [
        (method, path)
        for path, item in reference["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "delete") and path.startswith(PREFIXES)
    ]
    assert len(operations) >= 24


def test_comparator_notices_a_missing_operation(
    reference: dict[str, Any], ours: dict[str, Any]
) -> None:
    trimmed = {**ours, "paths": {p: v for p, v in ours["paths"].items() if "promote" not in p}}
    problems = compare_openapi(reference, trimmed, PREFIXES)
    assert any("promote" in p for p in problems)


# The inference spec's synchronous operations: every one is served (the async ones below).
INFERENCE_SERVED = {
    "runRemoteProduction",
    "runRemoteDevelopment",
    "runRemote",
    "runRemoteDeployment",
    "runRemoteRegional",
    "wakeProduction",
    "wakeDevelopment",
    "wake",
    "wakeDeployment",
    "wakeRegional",
}


def _shape(path: str) -> str:
    """A path with its parameters unnamed: only where they stand matters."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_run_remote_and_wake_operation_is_served_in_both_forms(
    ours: dict[str, Any],
) -> None:
    """Baseten's inference paths (chain id in the Host header) and our path forms under
    /chains/{chain_id}, for each run_remote and wake operation of the inference spec; the
    regional ones (environment in the Host header, bare path) have only the Host form."""
    spec = wire_facts.load(wire_facts.INFERENCE)
    served = {_shape(path) for path, item in ours["paths"].items() if "post" in item}
    covered: set[str] = set()
    for path, item in spec["paths"].items():
        operation = item.get("post")
        if operation is None or not path.endswith(("/run_remote", "/wake")):
            continue
        if "async" in path:
            continue
        assert _shape(path) in served, path
        if path not in ("/run_remote", "/wake"):
            assert _shape("/chains/{chain_id}" + path) in served, path
        covered.add(operation["operationId"])
    assert covered == INFERENCE_SERVED


# The inference spec's async operations, and the answer each documents on success.
ASYNC_SERVED = {
    "asyncRunRemoteProduction": ("post", "201", "AsyncRunRemoteResponse"),
    "asyncRunRemoteDevelopment": ("post", "201", "AsyncRunRemoteResponse"),
    "asyncRunRemote": ("post", "201", "AsyncRunRemoteResponse"),
    "asyncRunRemoteDeployment": ("post", "201", "AsyncRunRemoteResponse"),
    "asyncRunRemoteRegional": ("post", "201", "AsyncRunRemoteResponse"),
    "getAsyncRequestStatus": ("get", "200", "AsyncRequestStatusResponse"),
    "cancelAsyncRequest": ("delete", "200", "CancelAsyncRequestResponse"),
    "getAsyncQueueStatusProduction": ("get", "200", "AsyncQueueStatusResponse"),
    "getAsyncQueueStatusDevelopment": ("get", "200", "AsyncQueueStatusResponse"),
    "getAsyncQueueStatus": ("get", "200", "AsyncQueueStatusResponse"),
    "getAsyncQueueStatusDeployment": ("get", "200", "AsyncQueueStatusResponse"),
    "getAsyncQueueStatusRegional": ("get", "200", "AsyncQueueStatusResponse"),
}


def test_every_async_operation_is_served_in_both_forms(ours: dict[str, Any]) -> None:
    """Each async path of the inference spec, with its method and its documented answer, in
    Baseten's form and (but the regional ones) under /chains/{chain_id}."""
    spec = wire_facts.load(wire_facts.INFERENCE)
    served = {
        (_shape(path), method): operation
        for path, item in ours["paths"].items()
        for method, operation in item.items()
    }
    covered: set[str] = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if "async" not in path or not isinstance(operation, dict):
                continue
            want_method, status, model = ASYNC_SERVED[operation["operationId"]]
            assert method == want_method, (path, method)
            forms = [path]
            if path not in ("/async_run_remote", "/async_queue_status"):
                forms.append("/chains/{chain_id}" + path)
            for form in forms:
                ours_op = served.get((_shape(form), method))
                assert ours_op is not None, (method, form)
                answer = ours_op["responses"][status]["content"]["application/json"]["schema"]
                assert answer == {"$ref": f"#/components/schemas/{model}"}, (form, answer)
            covered.add(operation["operationId"])
    assert covered == set(ASYNC_SERVED)
