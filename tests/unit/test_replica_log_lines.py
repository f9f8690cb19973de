"""The replica's log record lines (chains/replica_logging.py writes, domain/replica_log.py reads):
the two sides agree, plain output stays plain, and bad lines are kept as text."""

from __future__ import annotations

import logging
import os
import sys

from chainyard.chains import replica_logging
from chainyard.domain import replica_log


def _record(level: int, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("deep down")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("app.part", level, __file__, 1, msg, args, exc_info)


def test_writer_and_reader_agree() -> None:
    assert replica_logging.MARKER == replica_log.MARKER
    with replica_logging.request_scope("req-7"):
        line = replica_logging.line_of(_record(logging.WARNING, "careful %s", "now"))
    parsed = replica_log.parse(line)
    assert parsed is not None
    assert parsed.message == "app.part: careful now"
    assert parsed.level == "WARNING"
    assert parsed.request_id == "req-7"
    assert parsed.logger == "app.part"
    assert parsed.time_ns is not None
    assert "\n" not in line


def test_traceback_follows_the_message_and_critical_is_error() -> None:
    line = replica_logging.line_of(_record(logging.CRITICAL, "it broke", exc=True))
    parsed = replica_log.parse(line)
    assert parsed is not None
    assert parsed.level == "ERROR"
    assert parsed.request_id is None
    head, tail = parsed.message.split("\n", 1)
    assert head == "app.part: it broke"
    assert tail.startswith("Traceback (most recent call last)")
    assert tail.endswith("ValueError: deep down")


def test_plain_and_broken_lines_are_not_records() -> None:
    assert replica_log.parse("INFO something printed") is None
    assert replica_log.parse(replica_log.MARKER + "{not json") is None
    assert replica_log.parse(replica_log.MARKER + "[1, 2]") is None
    assert replica_log.render("plain") == "plain"


def test_long_messages_keep_head_and_tail() -> None:
    line = replica_logging.line_of(_record(logging.ERROR, "x" * 30_000, exc=True))
    parsed = replica_log.parse(line)
    assert parsed is not None
    assert len(parsed.message) <= replica_log.MAX_CHARS + 10
    assert parsed.message.startswith("app.part: xxx")
    assert parsed.message.endswith("ValueError: deep down")


def test_server_lines_read_back_and_render() -> None:
    line = replica_log.record_line("WARNING", "chainyard.health", "out of traffic")
    parsed = replica_log.parse(line)
    assert parsed is not None and parsed.level == "WARNING"
    assert replica_log.render(line) == "WARNING chainyard.health: out of traffic"


def test_installed_handler_writes_one_line_per_record() -> None:
    read, write = os.pipe()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        replica_logging.install(debug=False, fd=write)
        logging.getLogger("t").debug("hidden")
        logging.getLogger("t").info("first\nsecond")
        replica_logging.install(debug=True, fd=write)
        logging.getLogger("t").debug("shown")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)
        os.close(write)
    with os.fdopen(read) as f:
        lines = f.read().splitlines()
    parsed = [replica_log.parse(line) for line in lines]
    assert [(p.level, p.message) for p in parsed if p] == [
        ("INFO", "t: first\nsecond"),
        ("DEBUG", "t: shown"),
    ]
