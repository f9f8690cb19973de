"""The watcher's local import check: does the chain, as saved, still import, and what manifest
does it make (as `push` builds it)?

A module imported once stays cached in a process, so the check cannot import the chain in the
CLI's own process (it would not see the next edit, nor a helper module's). Starting Python and
importing truss_chains costs one to two seconds of CPU, which a check per save cannot pay. So one
child (`python -m chainyard.cli.chain_check`) imports truss_chains and discovery once, then forks
a grandchild per check: the grandchild imports the chain, answers and exits, and the child stays as
it was, with no module of the chain in it (the local runtime's spare host does the same for the
server, docs/development.md). A check costs a fork and the chain's own import.

What the chain prints while it is imported is captured by the grandchild and returned with its
answer; the child's stdout carries answers only, one JSON line per request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

from chainyard.chains.discovery import ChainInfo

DEFAULT_TIMEOUT = 120.0
# How often a check that is still running looks at Ctrl-C.
_SLICE = 0.2
# The frames of the chain's own files shown with an error, innermost last.
_FRAMES = 5
# What a check returns of the chain's prints: the end of them.
_OUTPUT_BYTES = 64 * 1024


def manifest_of(info: ChainInfo, source_file: pathlib.Path, name: str | None) -> dict[str, Any]:
    """The deploy manifest of a discovered chain, as `push` sends it (without `environment` or
    `development`, which are the push's choices, not the chain's)."""
    return {
        "chain_name": name or info.chain_name,
        "entrypoint": info.entrypoint,
        "source_file": source_file.name,
        "chainlets": [c.manifest() for c in info.chainlets],
    }


@dataclasses.dataclass(frozen=True)
class CheckResult:
    manifest: dict[str, Any] | None  # None when the chain did not import
    error: str | None  # why not: the exception and the chain's own frames
    output: str  # what the import printed (stderr and stdout of the child)
    seconds: float  # from the request to the answer


class ImportChecker:
    """Checks the chain in a fresh fork of a child that imported truss_chains once.

    `prepare()` starts that child (its start competes for the CPU with whatever runs then: call
    it before the first save is likely); `check()` starts it if needed.
    """

    def __init__(
        self,
        path: pathlib.Path,
        entrypoint: str | None,
        name: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.path = path.resolve()
        self.entrypoint = entrypoint
        self.name = name
        self.timeout = timeout
        self.cancelled = cancelled
        self._child: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        if self._child is not None and self._child.poll() is None:
            return
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self._child = subprocess.Popen(
            # -P: the working directory is not put on sys.path, as for the `chainyard` command
            # (discovery adds the chain's own folder).
            [sys.executable, "-P", "-m", "chainyard.cli.chain_check"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            # Out of the terminal's process group: Ctrl-C is the watcher's to handle, and must
            # not kill a child in the middle of a check (its answer would read as a broken
            # chain).
            process_group=0,
        )

    def check(self) -> CheckResult:
        self.prepare()
        child = self._child
        assert child is not None and child.stdin is not None and child.stdout is not None
        request = {"path": str(self.path), "entrypoint": self.entrypoint, "name": self.name}
        started = time.monotonic()
        try:
            child.stdin.write(json.dumps(request).encode() + b"\n")
            child.stdin.flush()
        except OSError:
            pass  # it died: the read below finds no answer and says so
        line = b""
        while not line.endswith(b"\n"):
            late = time.monotonic() - started > self.timeout
            if late or self.cancelled():
                self.close()
                why = f"importing {self.path.name} took more than {self.timeout:.0f} s"
                return CheckResult(
                    manifest=None,
                    error=why if late else "cancelled",
                    output="",
                    seconds=time.monotonic() - started,
                )
            readable, _, _ = select.select([child.stdout], [], [], _SLICE)
            if not readable:
                continue
            chunk = os.read(child.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            line += chunk
        seconds = time.monotonic() - started
        try:
            answer = json.loads(line)
        except ValueError:
            # The child itself died (killed, or out of memory): the next check starts another.
            self.close()
            return CheckResult(
                manifest=None,
                error="the import check ended without an answer",
                output="",
                seconds=seconds,
            )
        return CheckResult(
            manifest=answer.get("manifest"),
            error=answer.get("error"),
            output=answer.get("output", ""),
            seconds=seconds,
        )

    def close(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            # The group: a grandchild stuck in the chain's import goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        child.communicate()


def describe_error(exc: BaseException, root: pathlib.Path) -> str:
    """The error as a person fixing the chain wants it: the frames in the chain's own files
    (not truss's or chainyard's), then the exception; a SyntaxError shows the line and caret."""
    cause = exc.__cause__
    if cause is None:
        return str(exc)  # discovery's own finding (no chainlet, a kind chainyard cannot serve)
    summary = traceback.TracebackException.from_exception(cause)
    own = [f for f in summary.stack if _under(f.filename, root)][-_FRAMES:]
    if not own and not isinstance(cause, SyntaxError):
        # Raised inside truss_chains about the chain (a validation error): its message says it.
        return str(exc)
    lines: list[str] = []
    if own:
        lines.append("Traceback (the chain's files, most recent call last):\n")
        lines += traceback.StackSummary.from_list(own).format()
    lines += summary.format_exception_only()
    return "".join(lines).rstrip()


def _under(filename: str, root: pathlib.Path) -> bool:
    if filename.startswith("<"):
        return False  # <frozen importlib._bootstrap>, <string>: not files
    try:
        pathlib.Path(filename).resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    from chainyard.chains.discovery import ChainDiscoveryError, discover

    path = pathlib.Path(request["path"])
    try:
        info = discover(path, request.get("entrypoint"))
    except ChainDiscoveryError as exc:
        return {"manifest": None, "error": describe_error(exc, path.parent.resolve())}
    return {"manifest": manifest_of(info, path, request.get("name")), "error": None}


def _check_in_fork(request: dict[str, Any]) -> dict[str, Any]:
    """The check, in a grandchild forked for it: its modules and prints go with it."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reading)
        output = tempfile.TemporaryFile()  # noqa: SIM115 - ours until os._exit
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
        try:
            answer = _answer(request)
        except BaseException as exc:  # SystemExit or KeyboardInterrupt raised by the chain
            error = "".join(traceback.format_exception_only(exc)).strip()
            answer = {"manifest": None, "error": f"importing the chain raised {error}"}
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        output.seek(0)
        answer["output"] = output.read()[-_OUTPUT_BYTES:].decode(errors="replace")
        # default=str: a setting that JSON cannot carry is shown, not a crash of the check.
        with os.fdopen(writing, "wb") as answer_to:
            answer_to.write(json.dumps(answer, default=str).encode())
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as answers:
        raw = answers.read()
    _, status = os.waitpid(pid, 0)
    try:
        found: dict[str, Any] = json.loads(raw)
    except ValueError:
        # It died before it could answer (a crash in an extension module, a chain that calls
        # os._exit at import).
        code = os.waitstatus_to_exitcode(status)
        return {
            "manifest": None,
            "error": f"the import check ended without an answer (exit code {code})",
        }
    return found


def main() -> None:
    # The watcher decides when to stop: it closes this child's stdin, or kills its group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers: IO[bytes] = os.fdopen(os.dup(1), "wb")
    # What every check needs, imported once, before the first request: the slow part.
    import truss_chains  # noqa: F401

    from chainyard.chains import discovery, image_settings, kinds, truss_compat  # noqa: F401

    for line in sys.stdin:
        if not line.strip():
            continue
        answer = _check_in_fork(json.loads(line))
        answers.write(json.dumps(answer, default=str).encode() + b"\n")
        answers.flush()
    # Nothing to clean up, and the interpreter's teardown of truss_chains costs time.
    os._exit(0)


if __name__ == "__main__":
    main()
