"""Python logging inside a replica: every record reaches the logs API with its level, its logger
name and the id of the request it was logged in.

The replica's stdout and stderr go to its log file, which the runtime reads line by line. Plain
text has no level, so a root handler writes each record as one marked line (STX, then JSON; read
by chainyard.domain.replica_log, whose format this module must match: the chains package imports
nothing of the server, tests/unit/test_replica_log_lines.py checks the two agree). `print` output
stays plain text.

As truss's server does, the root logger is at INFO, or DEBUG with
`ChainletOptions(enable_debug_logs=True)`, and handlers a chain installed at import time are
replaced: a record is written once, in this form.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import traceback
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from types import TracebackType
from typing import Any

MARKER = "\x02"
REQUEST_ID_HEADER = b"x-baseten-request-id"
# A record's message and traceback are cut to this many characters each: a line is read whole by
# the runtime, and the store keeps 10,000 characters of it anyway.
_MAX_CHARS = 10_000

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chainyard_request_id", default=None
)

log = logging.getLogger("chainyard.replica")


class RecordLines(logging.Handler):
    """Writes each record as one marked JSON line to a file descriptor, in one write: lines from
    threads (sync `run_remote` runs in worker threads) and `print` output never interleave."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (line_of(record) + "\n").encode("utf-8", errors="replace")
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except Exception:
            self.handleError(record)


def line_of(record: logging.LogRecord) -> str:
    message = record.getMessage()
    exc = None
    if record.exc_info:
        exc = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    elif record.exc_text:
        exc = record.exc_text
    if record.stack_info:
        exc = f"{exc}\n{record.stack_info}" if exc else record.stack_info
    fields = {
        "time": record.created,
        "level": record.levelname,
        "logger": record.name,
        "msg": message[:_MAX_CHARS],
        "exc": exc[-_MAX_CHARS:] if exc else None,
        "request_id": getattr(record, "request_id", None) or request_id.get(),
    }
    return MARKER + json.dumps(fields)


def install(*, debug: bool, fd: int = 2) -> None:
    """Makes the root logger write marked lines to `fd` (the replica's log file)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RecordLines(fd))
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.captureWarnings(True)


@contextlib.contextmanager
def request_scope(value: str | None) -> Iterator[None]:
    token = request_id.set(value)
    try:
        yield
    finally:
        request_id.reset(token)


def log_run_remote_error(exc: BaseException) -> None:
    """An exception out of `run_remote`, logged with its traceback on this replica (the caller
    gets truss's error detail; the replica's logs keep the whole story)."""
    log.error(
        "run_remote raised %s: %s",
        type(exc).__name__,
        exc,
        exc_info=(type(exc), exc, _from_user_code(exc.__traceback__)),
    )


# Frames of the serving machinery above the user's code: chainyard's replica and the stdlib's
# thread and task plumbing that calls `run_remote`.
_OURS = os.path.dirname(os.path.abspath(__file__))
_PLUMBING = tuple(
    os.path.join(os.path.dirname(os.__file__), name) for name in ("asyncio", "concurrent")
)


def _from_user_code(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame that is not the replica's own serving code (truss trims
    its server's frames the same way), so the log starts where the user's code does."""
    first = tb
    while first is not None:
        filename = os.path.abspath(first.tb_frame.f_code.co_filename)
        if not (filename.startswith(_OURS) or filename.startswith(_PLUMBING)):
            return first
        first = first.tb_next
    return tb


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def with_request_ids(app: ASGIApp) -> ASGIApp:
    """ASGI wrapper: each HTTP request or websocket runs with its request id in `request_id`
    (from the gateway's header), so records logged while serving it carry the id. The context
    travels into `asyncio.to_thread` (sync `run_remote`) and the tasks a response starts."""

    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        value = None
        for name, raw in scope.get("headers") or ():
            if name.lower() == REQUEST_ID_HEADER:
                value = raw.decode("latin-1")[:64]
                break
        with request_scope(value):
            await app(scope, receive, send)

    return wrapped
