"""The replica's streamed answers (chains/streaming.py): the chainlet's `streaming_read_timeout`
bounds the wait for each chunk; the end of the response stops the generator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import JSONResponse, Response

from chainyard.chains.streaming import AbortableStream, StreamBrokenOff, stream_response


def _error(exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=500)


async def _respond(generator: AsyncIterator[Any], read_timeout: float | None) -> Response:
    return await stream_response(
        lambda: generator,
        slots=asyncio.Semaphore(1),
        context=contextlib.nullcontext,
        error_response=_error,
        read_timeout=read_timeout,
        request_id="r1",
    )


def test_no_first_chunk_within_the_read_timeout_is_504() -> None:
    async def silent() -> AsyncIterator[str]:
        await asyncio.sleep(30)
        yield "never"

    response = asyncio.run(_respond(silent(), 0.05))
    assert response.status_code == 504
    assert b"streaming_read_timeout" in response.body


def test_a_gap_past_the_read_timeout_breaks_the_stream_off() -> None:
    stopped = asyncio.Event()

    async def stalls() -> AsyncIterator[str]:
        try:
            yield "first"
            await asyncio.sleep(30)
            yield "never"
        finally:
            stopped.set()

    async def scenario() -> list[bytes]:
        response = await _respond(stalls(), 0.05)
        assert isinstance(response, AbortableStream)
        received = []
        with pytest.raises(StreamBrokenOff):
            async for chunk in response.body_iterator:
                received.append(chunk)
        await asyncio.wait_for(stopped.wait(), 5)  # the generator was stopped, not left waiting
        return [bytes(c) if not isinstance(c, str) else c.encode() for c in received]

    assert asyncio.run(scenario()) == [b"first"]


def test_an_error_before_the_first_chunk_is_an_error_answer() -> None:
    async def fails() -> AsyncIterator[str]:
        raise ValueError("no input")
        yield "unreachable"

    response = asyncio.run(_respond(fails(), None))
    assert response.status_code == 500
    assert b"no input" in response.body
