"""Streaming `run_remote` answers on the replica, and the streaming call of a dependency's stub.

Replica side: the chainlet's generator runs in its own task (holding the replica's concurrency
slot and truss's request context) and hands chunks over a bounded queue to the HTTP response.
The first chunk is awaited before the response starts, so an error before it is an ordinary
error answer (status and truss's `RemoteErrorDetail`), which truss's stub re-raises with the
remote traceback. An error after it cannot change the 200 already sent: the replica logs the
traceback and breaks the connection off without the chunked encoding's final chunk, so every
reader on the way (the gateway, truss's stub in a calling chainlet, an HTTP client) sees an
incomplete body — an error — and never a silently truncated success.

Stub side: truss's `predict_async_stream` is a coroutine that returns the chunk iterator (it
must be awaited first); a stream that breaks off surfaces there as aiohttp's payload error,
which we turn into an exception naming the dependency.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from chainyard.abortable import AbortableStream, StreamBrokenOff

log = logging.getLogger("chainyard.replica")

# Chunks produced ahead of a slow reader before the generator waits: enough to keep a fast
# producer busy, bounded so that a reader that stalls does not make the replica buffer without end.
QUEUE_CHUNKS = 64

_END = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _TimedOut(_Failed):
    pass


async def stream_response(
    start: Callable[[], AsyncIterator[Any]],
    *,
    slots: asyncio.Semaphore,
    context: Callable[[], contextlib.AbstractContextManager[Any]],
    error_response: Callable[[Exception], Response],
    read_timeout: float | None,
    request_id: str | None,
) -> Response:
    """Runs the generator `start()` returns and answers with its chunks as they come.

    `context` is truss's request context (request ids for stub calls; it turns an exception
    into `fastapi.HTTPException` with the chainlet error detail), `error_response` renders such
    an exception. `read_timeout` bounds the wait for each chunk (the chainlet's
    `streaming_read_timeout`)."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=QUEUE_CHUNKS)

    async def produce() -> None:
        try:
            async with slots:
                with context():
                    async for chunk in start():
                        await queue.put(chunk.encode() if isinstance(chunk, str) else chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(_Failed(exc))
            return
        await queue.put(_END)

    producer = asyncio.create_task(produce())

    async def next_item() -> object:
        try:
            return await asyncio.wait_for(queue.get(), timeout=read_timeout)
        except TimeoutError:
            return _TimedOut(
                TimeoutError(
                    f"the chainlet produced no stream chunk within its streaming_read_timeout "
                    f"({read_timeout:g} s)"
                )
            )

    first = await next_item()
    if isinstance(first, _Failed):
        producer.cancel()
        _log_failure(first.exc, request_id, started=False)
        if isinstance(first, _TimedOut):
            return JSONResponse({"error": str(first.exc)}, status_code=504)
        return error_response(_as_exception(first.exc))

    async def chunks() -> AsyncIterator[bytes]:
        try:
            item = first
            while item is not _END:
                if isinstance(item, _Failed):
                    _log_failure(item.exc, request_id, started=True)
                    raise StreamBrokenOff(
                        "run_remote failed mid-stream; the response is broken off"
                    ) from None
                assert isinstance(item, bytes | bytearray | memoryview)
                yield bytes(item)
                item = await next_item()
        finally:
            # The reader went away or the stream ended: stop the generator (and free its slot).
            producer.cancel()

    def stop() -> None:
        producer.cancel()

    return AbortableStream(chunks(), media_type="application/octet-stream", on_close=stop)


def _as_exception(exc: BaseException) -> Exception:
    return exc if isinstance(exc, Exception) else RuntimeError(repr(exc))


def _log_failure(exc: BaseException, request_id: str | None, *, started: bool) -> None:
    where = "mid-stream, after the first chunk" if started else "before its first stream chunk"
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    log.error(
        "run_remote failed %s (request %s): %s: %s",
        where,
        request_id or "-",
        type(cause).__name__,
        cause,
        exc_info=(type(cause), cause, cause.__traceback__),
    )


async def relay_dependency_stream(
    stub: Any, inputs: Any, *, as_text: bool, name: str
) -> AsyncIterator[Any]:
    """A dependency's streamed answer, chunk by chunk, through truss's stub (`stub`). `as_text`:
    the dependency yields `str` (decoded incrementally: a chunk may end inside a character)."""
    import aiohttp
    from truss_chains import public_types

    from chainyard.chains import direct_calls

    # The replica that answers counts the call until its stream has been read.
    with direct_calls.stream_leases() as leases:
        try:
            chunks = await stub.predict_async_stream(inputs)
        except BaseException:
            for lease in leases:
                lease.release()
            raise
    decoder = codecs.getincrementaldecoder("utf-8")() if as_text else None
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if decoder is None:
                yield chunk
            else:
                text = decoder.decode(chunk)
                if text:
                    yield text
        if decoder is not None:
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise public_types.GenericRemoteException(
            f"Error calling dependency Chainlet `{name}`: its stream broke off after "
            f"{received} bytes (it failed mid-stream, or its replica went away; its log has "
            f"the traceback): {exc}"
        ) from None
    finally:
        for lease in leases:
            lease.release()
