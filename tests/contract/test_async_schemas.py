"""Our async inference wire models against Baseten's inference spec: the named components
(`AsyncRequestStatusResponse`, `AsyncRequestError`) and the answers the spec spells inline
(enqueue, cancel, queue status)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chainyard.schemas import (
    AsyncQueueStatusResponse,
    AsyncRequestError,
    AsyncRequestStatusResponse,
    AsyncRunRemoteResponse,
    CancelAsyncRequestResponse,
)

from . import wire_facts
from .spec_compat import Schema, compare_schemas

REF = "#/components/schemas/{model}"
MODELS: list[type[BaseModel]] = [
    AsyncRequestError,
    AsyncRequestStatusResponse,
    AsyncRunRemoteResponse,
    CancelAsyncRequestResponse,
    AsyncQueueStatusResponse,
]
# Spec responses whose schema is inline, and the model that answers each.
INLINE = {
    "AsyncRunRemoteOutput": "AsyncRunRemoteResponse",
    "CancelAsyncRequestOutput": "CancelAsyncRequestResponse",
    "GetAsyncQueueStatusOutput": "AsyncQueueStatusResponse",
    "GetAsyncRequestStatusOutput": "AsyncRequestStatusResponse",
}


# Where ours differs on purpose (docs/api-compatibility.md): chainyard runs chains only, so a
# status names its chain always and a model never.
KNOWN = {
    "model_id: missing from ours",
    "chain_id: required: spec False, ours True",
}


def _unexpected(problems: list[str]) -> list[str]:
    return [p for p in problems if p.split(".", 1)[1] not in KNOWN]


@pytest.fixture(scope="module")
def spec() -> Schema:
    return wire_facts.load(wire_facts.INFERENCE)


def _ours(mode: JsonSchemaMode) -> Schema:
    _, top = models_json_schema([(m, mode) for m in MODELS], ref_template=REF)
    return {"components": {"schemas": dict(top["$defs"])}}


@pytest.mark.parametrize("mode", ["validation", "serialization"])
@pytest.mark.parametrize("name", ["AsyncRequestError", "AsyncRequestStatusResponse"])
def test_named_components_match(spec: Schema, name: str, mode: JsonSchemaMode) -> None:
    ref = {"$ref": REF.format(model=name)}
    assert _unexpected(compare_schemas(spec, ref, _ours(mode), ref, name)) == []


@pytest.mark.parametrize("mode", ["validation", "serialization"])
@pytest.mark.parametrize("response", sorted(INLINE))
def test_inline_answers_match(spec: Schema, response: str, mode: JsonSchemaMode) -> None:
    theirs = spec["components"]["responses"][response]["content"]["application/json"]["schema"]
    ours = {"$ref": REF.format(model=INLINE[response])}
    assert _unexpected(compare_schemas(spec, theirs, _ours(mode), ours, response)) == []


def test_the_comparison_sees_a_missing_field(spec: Schema) -> None:
    ours = _ours("serialization")
    broken: Any = ours["components"]["schemas"]["AsyncQueueStatusResponse"]
    del broken["properties"]["num_queued_requests"]
    broken["required"].remove("num_queued_requests")
    theirs = spec["components"]["responses"]["GetAsyncQueueStatusOutput"]["content"][
        "application/json"
    ]["schema"]
    ref = {"$ref": REF.format(model="AsyncQueueStatusResponse")}
    assert compare_schemas(spec, theirs, ours, ref, "q") != []


def test_timestamps_are_sent_in_utc() -> None:
    import datetime as dt

    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    body = AsyncRequestStatusResponse(
        request_id="r",
        chain_id="c",
        deployment_id="d",
        status="QUEUED",
        webhook_status="PENDING",
        created_at=at,
        status_at=at,
        errors=[],
    ).model_dump(mode="json")
    assert body["created_at"] == "2026-01-02T03:04:05.678000Z"
    assert body["errors"] == []
    assert "model_id" not in body


def test_the_known_differences_are_exactly_those(spec: Schema) -> None:
    ref = {"$ref": REF.format(model="AsyncRequestStatusResponse")}
    problems = compare_schemas(spec, ref, _ours("serialization"), ref, "s")
    assert sorted(p.split(".", 1)[1] for p in problems) == sorted(KNOWN)
