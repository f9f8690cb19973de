"""Structured lines in a replica's output: one log record of chainlet code per line.

A replica's output (stdout and stderr, one file per replica) mixes what the chainlet prints with
records of Python's `logging`. The replica writes each record (chains/replica_logging.py) as one
line: the marker character STX (0x02), then a JSON object with the record's level, logger name,
message, traceback and the id of the request it was logged in. STX never starts a line of
ordinary text output, so a plain line stays plain and keeps today's best-effort level.

This module reads those lines (the server's side) and writes the few the runtimes add themselves
(health decisions), in the same form. The replica side keeps its own copy of the writer because
the chains package imports nothing of the server; tests/unit/test_replica_log_lines.py holds the
two to the same format.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from chainyard.domain.text import storable

MARKER = "\x02"
# The logs API's levels; Python's CRITICAL is reported as ERROR (the API has no higher level).
_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "ERROR",
    "FATAL": "ERROR",
}
# Longest message kept (the store keeps 10,000 characters of a line); a traceback keeps its end,
# where the exception is.
MAX_CHARS = 10_000


@dataclasses.dataclass(frozen=True)
class ReplicaLine:
    message: str
    level: str | None = None
    request_id: str | None = None
    logger: str | None = None
    time_ns: int | None = None


def level_name(level: Any) -> str | None:
    return _LEVELS.get(str(level).upper()) if level is not None else None


def parse(line: str) -> ReplicaLine | None:
    """The record on a marked line; None for any other line (plain output, or a marked line that
    is not a valid record, which is then kept as text)."""
    if not line.startswith(MARKER):
        return None
    try:
        record = json.loads(line[len(MARKER) :])
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    # A chainlet's JSON may spell lone surrogates, which no database takes: one such line would
    # fail the whole batch it is stored with, other chainlets' lines included.
    logger = storable(str(record["logger"])) if record.get("logger") else None
    text = storable(str(record.get("msg", "")))
    message = f"{logger}: {text}" if logger else text
    exc = record.get("exc")
    if exc:
        message = f"{message}\n{storable(str(exc))}"
    if len(message) > MAX_CHARS:
        # Keep the head (what was logged) and the tail (the exception at the end of a traceback).
        half = MAX_CHARS // 2
        message = f"{message[:half]}\n[...]\n{message[-half:]}"
    request_id = record.get("request_id")
    stamp = record.get("time")
    return ReplicaLine(
        message=message,
        level=level_name(record.get("level")),
        request_id=storable(str(request_id)[:64]) if request_id else None,
        logger=logger,
        time_ns=int(float(stamp) * 1e9) if isinstance(stamp, int | float) else None,
    )


def render(line: str) -> str:
    """A line as a person reads it (in failure messages that quote a replica's last lines)."""
    parsed = parse(line)
    if parsed is None:
        return line
    return f"{parsed.level} {parsed.message}" if parsed.level else parsed.message


def record_line(level: str, logger: str, message: str, *, request_id: str | None = None) -> str:
    """A marked line written by the server about a replica (no trailing newline)."""
    record = {
        "time": time.time(),
        "level": level,
        "logger": logger,
        "msg": message,
        "exc": None,
        "request_id": request_id,
    }
    return MARKER + json.dumps(record)
