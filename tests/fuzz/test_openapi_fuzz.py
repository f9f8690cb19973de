"""Schemathesis against our /openapi.json: every operation, no 5xx, every answer as documented.

`make fuzz` runs it (`make test` leaves it out; CI runs both). One test per operation, then a check
that enough requests were sent, and to every operation.
"""

from __future__ import annotations

import os

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.harness import LiveServer, World, openapi_document

# Generated cases per operation and generation mode (positive, negative); the coverage phase adds
# its own deterministic cases on top. CHAINYARD_FUZZ_EXAMPLES asks for more (a longer hunt);
# CHAINYARD_FUZZ_SEED trades the fixed derandomized run for a seeded random one.
MAX_EXAMPLES = int(os.environ.get("CHAINYARD_FUZZ_EXAMPLES", "80"))
SEED = os.environ.get("CHAINYARD_FUZZ_SEED")
MIN_REQUESTS = 2000
# Each operation must have been fuzzed for real, not skipped after a case or two. One that takes
# no input at all (no parameter, no body: `POST /v1/webhook_secrets`) has nothing to vary, and the
# deterministic generation sends it a few times only.
MIN_PER_OPERATION = 5
MIN_PER_OPERATION_WITHOUT_INPUT = 2

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict(
        {
            **({"seed": int(SEED)} if SEED else {}),
            "request-timeout": 60,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                # Reproducible runs, and no example database written into the checkout.
                "deterministic": SEED is None,
                "database": "none",
            },
        }
    ),
)


@schema.parametrize()
def test_operation(case: schemathesis.Case, live: LiveServer, world: World) -> None:
    headers = world.aim(case)
    response = case.call(base_url=live.url, headers=headers)
    world.sent[case.operation.label] += 1
    world.statuses[case.operation.label, response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)


def test_enough_requests_reached_every_operation(world: World) -> None:
    operations = {result.ok().label for result in schema.get_all_operations()}
    total = sum(world.sent.values())
    print(f"\nfuzz: {total} requests to {len(operations)} operations")
    for label in sorted(operations):
        answers = sorted((s, n) for (op, s), n in world.statuses.items() if op == label)
        print(f"  {label}: {world.sent[label]} sent, {world.aimed[label]} aimed, {answers}")
    assert total >= MIN_REQUESTS, world.sent
    without_input = {
        op.label
        for op in (result.ok() for result in schema.get_all_operations())
        if not op.definition.raw.get("parameters") and "requestBody" not in op.definition.raw
    }
    starved = {
        op: world.sent[op]
        for op in operations
        if world.sent[op]
        < (MIN_PER_OPERATION_WITHOUT_INPUT if op in without_input else MIN_PER_OPERATION)
    }
    assert not starved, starved
    # Those that name things were also sent at real ones.
    named = {
        op.label
        for op in (result.ok() for result in schema.get_all_operations())
        if "{" in op.path or "inference" in (op.tags or ()) or op.path == "/v1/chains/deploy"
    }
    assert not named - set(world.aimed), named - set(world.aimed)
