"""Our /openapi.json serves every chains path and method of Baseten's reference spec, with
compatible request and response schemas."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from chainyard.server import create_app
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
