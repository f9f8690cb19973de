"""The async runner's calls (async_runner/calls.py): what each answer of the gateway means for a
request (the spec's codes, and whether another attempt may help), and the call itself against a
stand-in gateway on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from chainyard.async_runner.calls import Caller, Failure, Output, Unreachable, outcome_of
from chainyard.domain import async_requests as d
from chainyard.domain.async_requests import ErrorCode
from chainyard.services.async_queue import Claimed
from tests.support.webhook_receiver import free_port

SECRET = "s3cret"
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": message, "error_code": code}).encode()


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (
            404,
            error_body("deployment 'x' is INACTIVE", "model_does_not_exist"),
            "MODEL_DOES_NOT_EXIST",
            False,
        ),
        (400, error_body("field required: n", "client_error"), "MODEL_INVALID_INPUT", False),
        (422, b"not json at all", "MODEL_INVALID_INPUT", False),
        (413, error_body("too large", "payload_too_large"), "MODEL_INVALID_INPUT", False),
        (429, error_body("busy", "rate_limited"), "MODEL_UNAVAILABLE", True),
        (500, error_body("ZeroDivisionError", "application_error"), "MODEL_PREDICT_ERROR", True),
        (503, error_body("no replica", "model_not_ready"), "MODEL_NOT_READY", True),
        (502, error_body("unreachable", "model_unavailable"), "MODEL_UNAVAILABLE", True),
        (503, error_body("gone", "model_unavailable"), "MODEL_UNAVAILABLE", True),
        (504, error_body("no answer in time", "timeout"), "MODEL_PREDICT_TIMEOUT", False),
        (503, error_body("store away", "internal_baseten_error"), "INTERNAL_SERVER_ERROR", True),
    ],
)
def test_error_answers_take_the_spec_codes(
    status: int, body: bytes, code: str, retryable: bool
) -> None:
    outcome = outcome_of(status, body)
    assert isinstance(outcome, Failure)
    assert (outcome.code.value, outcome.retryable) == (code, retryable)
    assert outcome.message  # the chain's or the gateway's words, or the status


def test_a_success_is_the_json_output_and_a_non_json_one_fails() -> None:
    assert outcome_of(200, b'{"n": 1, "list": [1, 2]}') == Output({"n": 1, "list": [1, 2]})
    assert outcome_of(200, b"null") == Output(None)
    broken = outcome_of(200, b"\x00\x01binary")
    assert isinstance(broken, Failure) and broken.code == ErrorCode.MODEL_PREDICT_ERROR
    assert not broken.retryable


def test_an_error_message_is_the_answers_error_cut_to_a_bound() -> None:
    outcome = outcome_of(500, error_body("x" * 5000, "application_error"))
    assert isinstance(outcome, Failure) and len(outcome.message) == 1000
    structured = outcome_of(500, json.dumps({"error": {"type": "ValueError"}}).encode())
    assert isinstance(structured, Failure) and "ValueError" in structured.message


def claimed(deployment_id: str = "dep1", model_input: dict[str, Any] | None = None) -> Claimed:
    return Claimed(
        request_id="req00000000000000001",
        workspace_id="ws1",
        chain_id="chain1",
        target=d.AsyncTarget("deployment"),
        deployment_id=deployment_id,
        model_input=model_input or {"n": 1},
        webhook_endpoint=None,
        priority=0,
        created_at=T0,
        expires_at=T0,
        retry=d.RetryConfig(),
        attempt=1,
        taken_over=False,
        lease_until=T0,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler, port: int = 0) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    assert site._server is not None
    return runner, site._server.sockets[0].getsockname()[1]


def test_a_call_posts_the_input_with_the_secret_to_the_internal_route() -> None:
    seen: list[tuple[str, str, Any, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        seen.append(
            (
                request.method,
                request.path,
                body,
                request.headers.get("authorization", ""),
            )
        )
        if request.path.endswith("/ping"):
            return web.Response(status=204)
        return web.json_response({"doubled": body["n"] * 2})

    async def scenario() -> None:
        runner, port = await serve(handler)
        caller = Caller(f"http://127.0.0.1:{port}", SECRET, run_seconds=30)
        try:
            assert await caller.ping()
            result = await caller.call(claimed("depA", {"n": 21}))
        finally:
            caller.close()
            await runner.cleanup()
        assert result == Output({"doubled": 42})

    asyncio.run(scenario())
    assert seen == [
        ("GET", "/internal/async/ping", None, f"Bearer {SECRET}"),
        ("POST", "/internal/async/deployments/depA/run_remote", {"n": 21}, f"Bearer {SECRET}"),
    ]


def test_a_gateway_that_is_away_or_not_this_servers_is_unreachable() -> None:
    async def refuses(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "not this server's"}, status=401)

    async def hangs_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.1)
        return web.Response()

    async def scenario() -> None:
        nobody = Caller(f"http://127.0.0.1:{free_port()}", SECRET, run_seconds=30)
        assert isinstance(await nobody.call(claimed()), Unreachable)
        assert not await nobody.ping()
        nobody.close()
        for handler in (refuses, hangs_up):
            runner, port = await serve(handler)
            caller = Caller(f"http://127.0.0.1:{port}", SECRET, run_seconds=30)
            try:
                assert isinstance(await caller.call(claimed()), Unreachable)
                assert not await caller.ping()
            finally:
                caller.close()
                await runner.cleanup()

    asyncio.run(scenario())


def test_a_call_past_the_run_limit_is_a_timeout_that_is_not_retried() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.json_response({})

    async def scenario() -> Any:
        runner, port = await serve(slow)
        caller = Caller(f"http://127.0.0.1:{port}", SECRET, run_seconds=0.2)
        try:
            return await caller.call(claimed())
        finally:
            caller.close()
            await runner.cleanup()

    result = asyncio.run(scenario())
    assert isinstance(result, Failure)
    assert (result.code, result.retryable) == (ErrorCode.MODEL_PREDICT_TIMEOUT, False)
