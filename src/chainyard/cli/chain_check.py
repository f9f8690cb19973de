"""The watcher's local import check: does the chain, as saved, still import, and what manifest
does it make (as `push` builds it)?

It runs in a child process: a module imported once stays cached in a process, so a second
import in the CLI's own process would not see the next edit (nor a helper module's). Starting
Python and importing truss_chains costs about a second, so the child is started ahead of time
(a *spare*, as the local runtime keeps a spare host): it imports truss_chains and discovery, then
waits for one request on stdin, imports the chain, answers on its stdout and exits. Each check
uses a fresh child, so no module of the chain is ever cached from an earlier check.

`python -m chainyard.cli.chain_check` is that child. Whatever the chain prints while it is
imported goes to the child's stderr, so that stdout carries the answer only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
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
    """Checks the chain in a fresh child each time, keeping one child started ahead.

    `prepare()` starts the next child; call it when the machine is idle (after a patch is
    live), since its start competes for the CPU with whatever runs then.
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
        self._spare: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        if self._spare is not None and self._spare.poll() is None:
            return
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self._spare = subprocess.Popen(
            # -P: the working directory is not put on sys.path, as for the `chainyard` command
            # (discovery adds the chain's own folder).
            [sys.executable, "-P", "-m", "chainyard.cli.chain_check"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            # Out of the terminal's process group: Ctrl-C is the watcher's to handle, and must
            # not kill a child in the middle of its start (its answer would read as a broken
            # chain).
            process_group=0,
        )

    def check(self) -> CheckResult:
        self.prepare()
        child, self._spare = self._spare, None
        assert child is not None
        request = {"path": str(self.path), "entrypoint": self.entrypoint, "name": self.name}
        started = time.monotonic()
        message: bytes | None = json.dumps(request).encode() + b"\n"
        while True:
            try:
                out, err = child.communicate(message, _SLICE)
                break
            except subprocess.TimeoutExpired:
                message = None  # sent; a retry only collects the answer
                late = time.monotonic() - started > self.timeout
                if late or self.cancelled():
                    child.kill()
                    _out, err = child.communicate()
                    why = f"importing {self.path.name} took more than {self.timeout:.0f} s"
                    return CheckResult(
                        manifest=None,
                        error=why if late else "cancelled",
                        output=err.decode(errors="replace"),
                        seconds=time.monotonic() - started,
                    )
        seconds = time.monotonic() - started
        output = err.decode(errors="replace")
        try:
            answer = json.loads(out)
        except ValueError:
            # The child died before it could answer (a crash in an extension module, a chain
            # that calls os._exit at import).
            tail = "\n".join(output.strip().splitlines()[-10:])
            return CheckResult(
                manifest=None,
                error=f"the import check ended without an answer (exit code {child.returncode})"
                + (f":\n{tail}" if tail else ""),
                output=output,
                seconds=seconds,
            )
        return CheckResult(
            manifest=answer.get("manifest"),
            error=answer.get("error"),
            output=output,
            seconds=seconds,
        )

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None and spare.poll() is None:
            spare.kill()
            spare.communicate()


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


def main() -> None:
    # The watcher decides when to stop, and ends this child by closing its stdin or killing it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answer_to: IO[str] = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the chain's prints go to stderr; stdout is the answer's
    # What every check needs, imported before the request comes: the slow part of a check.
    import truss_chains  # noqa: F401

    from chainyard.chains import discovery, image_settings, kinds, truss_compat  # noqa: F401

    line = sys.stdin.readline()
    if not line:
        os._exit(0)  # the watcher ended without a check
    try:
        answer = _answer(json.loads(line))
    except BaseException as exc:  # SystemExit or KeyboardInterrupt raised by the chain's import
        error = "".join(traceback.format_exception_only(exc)).strip()
        answer = {"manifest": None, "error": f"importing the chain raised {error}"}
    # default=str: a setting that JSON cannot carry is shown, not a crash of the check.
    answer_to.write(json.dumps(answer, default=str))
    answer_to.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # Nothing to clean up, and the interpreter's teardown of truss_chains costs time.
    os._exit(0)


if __name__ == "__main__":
    main()
