"""The watch loop of `chainyard push --watch` and `chainyard watch`: file events in, live patches of
the chain's development deployment out (docs/development.md, "Watch").

Per batch of file events: what changed since the tree the deployment last took (content hashes,
cli/source_changes.py); the local import check in a child process (cli/chain_check.py); one patch
call with the changed files; the patch followed until it is live or has failed; one line saying so.

What the deployment is known to run (`Synced`: the tree and its digest) moves on only when a patch
SUCCEEDED or was SKIPPED. After a failed patch the server puts the chainlets back on the last
good code, so the next patch is computed from that code too and carries the failed patch's files
again (with whatever fixed them). A refused patch, or one that was never sent (the server was
unreachable), leaves it as it was for the same reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from rich.markup import escape

from chainyard.chains.packaging import PackagingError
from chainyard.cli.chain_check import CheckResult
from chainyard.cli.source_changes import Changes, SourceTree, Tree, diff
from chainyard.schemas import Patch
from chainyard.sdk import (
    ChainyardAPIError,
    ChainyardError,
    Conflict,
    ConnectionFailed,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
)
from chainyard.sdk.development import Development

POLL_INTERVAL = 0.05
WAKE_INTERVAL = 60.0
# watchfiles groups the events of one save: it yields once no new event came for STEP ms, or
# after DEBOUNCE ms of events in a row.
DEBOUNCE_MS = 1600
STEP_MS = 50
# While idle, watchfiles hands back an empty batch this often (so that the first one, which
# comes once it watches, can catch up with edits made before it started).
IDLE_MS = 200
_SHOWN_PATHS = 6
_OUTPUT_LINES = 30
REPLACE_HINT = "run `chainyard push --watch` again to replace the development deployment"


class Checker(Protocol):
    def check(self) -> CheckResult: ...
    def prepare(self) -> None: ...


class Stop(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, seconds: float) -> bool: ...


def output_tail(output: str) -> str | None:
    """The last lines a failed import printed: truss_chains prints its validation errors rather
    than raising them, so they are often the explanation."""
    lines = output.strip().splitlines()[-_OUTPUT_LINES:]
    return "\n".join(lines) or None


@dataclasses.dataclass(frozen=True)
class Synced:
    """What the development deployment is known to run: a tree and its digest (None: not
    known, so the next patch sends every file)."""

    tree: Tree | None
    digest: str | None


@dataclasses.dataclass(frozen=True)
class Outcome:
    # patched | skipped | failed | refused | not-sent | unchanged | interrupted
    result: str
    changes: Changes
    full: bool = False  # the whole tree was sent (no base, or the server asked for it)
    patch: Patch | None = None
    message: str | None = None
    seconds: float | None = None  # from the first file event to live (or to the answer)
    import_error: str | None = None
    import_output: str | None = None  # what a failed import printed (truss's validation errors)


class Report(Protocol):
    def import_failed(self, result: CheckResult) -> None: ...
    def outcome(self, outcome: Outcome) -> None: ...


def chainlet_selection(option: str | None, known: Iterable[str]) -> list[str] | None:
    """`--experimental-watch-chainlets A,B` (push) or `--experimental-chainlet-names A,B`
    (watch) as a list (None: all); unknown names are an error (ValueError), as in truss."""
    if option is None:
        return None
    names = [n.strip() for n in option.split(",") if n.strip()]
    if not names:
        raise ValueError("the list of chainlets to patch is empty")
    available = sorted(known)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(
            f"no chainlet {', '.join(unknown)} in the chain (its chainlets: {', '.join(available)})"
        )
    return names


def first_event_time(batch: Iterable[tuple[object, str]], now: float) -> float:
    """When the batch's first save happened (wall clock): the oldest mtime of its files, kept
    within the batch's window (a copied file can keep an old mtime). A batch of deletions only:
    about one step before it was handed over."""
    mtimes = []
    for _change, path in batch:
        try:
            mtimes.append(os.stat(path).st_mtime)
        except OSError:
            continue
    if not mtimes:
        return now - STEP_MS / 1000
    earliest = now - (DEBOUNCE_MS + STEP_MS) / 1000
    return min(max(min(mtimes), earliest), now)


class Watcher:
    def __init__(
        self,
        api: Development,
        chain_id: str,
        tree: SourceTree,
        checker: Checker,
        report: Report,
        stop: Stop,
        *,
        synced: Synced,
        chainlets: list[str] | None = None,
        poll_interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.chain_id = chain_id
        self.tree = tree
        self.checker = checker
        self.report = report
        self.stop = stop
        self.synced = synced
        self.chainlets = chainlets
        self.poll_interval = poll_interval
        self.clock = clock

    def run(self, batches: Iterable[set[tuple[Any, str]]]) -> None:
        """Syncs on the first batch (empty or not: it comes once events are watched, so nothing
        saved before is missed) and on each non-empty one after, until `stop`."""
        first = True
        for batch in batches:
            if self.stop.is_set():
                return
            if not batch and not first:
                continue
            first = False
            now = self.clock()
            outcome = self.sync(first_event_time(batch, now) if batch else now)
            if outcome.result != "unchanged":
                self.report.outcome(outcome)
            if outcome.result == "interrupted" or self.stop.is_set():
                return
            # The checker's child stays between checks; one that died starts again now that
            # the machine is idle.
            self.checker.prepare()

    def sync(self, saved_at: float) -> Outcome:
        """One patch of what changed since `synced`; NotFound (the chain has no development
        deployment) passes through."""
        current = self.tree.scan()
        # Without the digest of what the deployment runs, a patch can only be the whole tree.
        full = self.synced.tree is None or self.synced.digest is None
        changes = diff(None if full else self.synced.tree, current)
        if not changes and not full:
            return Outcome("unchanged", changes)
        if full and not changes.changed:
            # Sending nothing as the whole tree would empty the deployment's source.
            return Outcome("not-sent", changes, full, message="the chain's folder has no file")
        checked = self.checker.check()
        if self.stop.is_set():
            return Outcome("interrupted", changes, full)
        if checked.error is not None:
            # Sent all the same, without a manifest: the server's try fails as well, so the
            # error reaches the chainlet's logs too, and the last good code keeps serving.
            self.report.import_failed(checked)
        base = None if full else self.synced.digest
        try:
            patch = self._send(base, changes, checked.manifest)
        except Conflict as exc:
            if exc.code != "PATCH_BASE_MISMATCH" or base is None:
                return self._unsent(exc, changes, full)
            # The deployment runs another tree than the one we know (a push from elsewhere, a
            # restarted watcher): send the whole tree, once.
            full, changes = True, diff(None, current)
            try:
                patch = self._send(None, changes, checked.manifest)
            except NotFound:
                raise
            except (ChainyardError, OSError, PackagingError) as again:
                return self._unsent(again, changes, full)
        except NotFound:
            raise
        except (ChainyardError, OSError, PackagingError) as exc:
            return self._unsent(exc, changes, full)
        finished = self._follow(patch)
        if finished is None:
            return Outcome("interrupted", changes, full, patch=patch)
        if isinstance(finished, str):
            return Outcome("not-sent", changes, full, patch=patch, message=finished)
        if finished.status in ("SUCCEEDED", "SKIPPED"):
            self.synced = Synced(current, finished.artifact_digest)
        result = {"SUCCEEDED": "patched", "SKIPPED": "skipped"}.get(finished.status, "failed")
        return Outcome(
            result,
            changes,
            full,
            patch=finished,
            message=finished.message,
            seconds=max(0.0, self.clock() - saved_at),
            import_error=checked.error,
            import_output=output_tail(checked.output) if checked.error else None,
        )

    def _send(self, base: str | None, changes: Changes, manifest: dict[str, Any] | None) -> Patch:
        files = self.tree.archive(changes.changed) if changes.changed else None
        return self.api.patch(
            self.chain_id,
            base_digest=base,
            files=files,
            deleted=list(changes.deleted),
            manifest=manifest,
            chainlets=self.chainlets,
        )

    def _unsent(self, exc: Exception, changes: Changes, full: bool) -> Outcome:
        if isinstance(exc, Invalid) and exc.code == "PATCH_REFUSED":
            return Outcome("refused", changes, full, message=exc.message)
        if isinstance(exc, ChainyardError):
            return Outcome("not-sent", changes, full, message=exc.message)
        # A file gone between the scan and the packing (its deletion is the next batch), or a
        # tree over the limits.
        return Outcome("not-sent", changes, full, message=str(exc))

    def _follow(self, patch: Patch) -> Patch | str | None:
        """The patch once it is no longer APPLYING; None on Ctrl-C; a message when it can no
        longer be read (the development deployment was replaced meanwhile)."""
        while patch.status == "APPLYING":
            if self.stop.wait(self.poll_interval):
                return None
            try:
                patch = self.api.get_patch(self.chain_id, patch.id)
            except RateLimited as exc:
                if self.stop.wait(exc.retry_after or 1.0):
                    return None
            except (ConnectionFailed, ServerError):
                # Transient (a restarting server): the patch goes on there; keep asking.
                if self.stop.wait(1.0):
                    return None
            except ChainyardAPIError as exc:
                return f"cannot follow patch {patch.id}: {exc.message}"
        return patch


# -- output ------------------------------------------------------------------------------------


def _paths(outcome: Outcome) -> str:
    changes, patch = outcome.changes, outcome.patch
    if outcome.full and patch is None:
        return f"all {len(changes.changed)} files"
    if outcome.full and patch is not None:
        # Every file was sent: what differed is what the server found.
        changed, deleted = list(patch.changed_paths), list(patch.deleted_paths)
        if not (changed or deleted):
            return f"all {len(changes.changed)} files sent, none differs"
    else:
        changed, deleted = changes.changed, changes.deleted
    shown = changed + [f"-{p}" for p in deleted]
    more = len(shown) - _SHOWN_PATHS
    return ", ".join(shown[:_SHOWN_PATHS]) + (f" (+{more} more)" if more > 0 else "")


def line(outcome: Outcome) -> str:
    """One line per patch, for people (markup for rich)."""
    patch = outcome.patch
    what = escape(_paths(outcome))
    message = escape(outcome.message or "")
    if patch is not None:
        names = ", ".join(patch.chainlets) or "no chainlet"
        target = f"{escape(names)} ({patch.kind})"
    else:
        target = ""
    timing = f" in {outcome.seconds:.2f} s" if outcome.seconds is not None else ""
    if patch is not None and patch.duration_ms is not None:
        timing += f" (server {patch.duration_ms / 1000:.2f} s)"
    if outcome.result == "patched":
        return f"[green]✓ patched[/green] {target}{timing}: {what}"
    if outcome.result == "skipped":
        return f"[dim]· nothing to do{timing}: {what}[/dim]"
    if outcome.result == "failed":
        return (
            f"[red]✗ failed[/red] {target}{timing}: {message or 'no message'}; the last good "
            f"code keeps serving: {what}"
        )
    if outcome.result == "refused":
        # The server's refusals mostly say to push again already: the hint once is enough.
        hint = "" if "push --watch" in (message or "") else f"; {REPLACE_HINT}"
        return f"[red]✗ refused[/red]: {message}{hint}: {what}"
    if outcome.result == "interrupted" and patch is None:
        return f"[yellow]… stopped before sending[/yellow]: {what}"
    if outcome.result == "interrupted":
        return f"[yellow]… stopped following the patch[/yellow] (it goes on on the server): {what}"
    return f"[red]✗ not sent[/red]: {message}; the next change sends it again: {what}"


def record(outcome: Outcome) -> dict[str, Any]:
    """The outcome as one JSON object (`-o json`), a line per patch on stdout."""
    return {
        "result": outcome.result,
        "changed_paths": outcome.changes.changed,
        "deleted_paths": outcome.changes.deleted,
        "full": outcome.full,
        "seconds": outcome.seconds,
        "message": outcome.message,
        "import_error": outcome.import_error,
        "import_output": outcome.import_output,
        # The SDK's model, in the wire format.
        "patch": None if outcome.patch is None else outcome.patch.model_dump(mode="json"),
    }


class ConsoleReport:
    """Patch lines on stdout (the command's results), import errors on stderr."""

    def __init__(
        self, out: Any, err: Any, *, as_json: bool, echo: Callable[[str], None] | None = None
    ) -> None:
        self.out = out
        self.err = err
        self.as_json = as_json
        self.echo = echo or print

    def import_failed(self, result: CheckResult) -> None:
        if self.as_json:
            return  # in the outcome's record
        self.err.print(
            "[red]the chain does not import[/red] (sent anyway: the error goes to the "
            "chainlets' logs, and the last good code keeps serving):",
            highlight=False,
        )
        self.err.print(result.error or "", markup=False, highlight=False)
        printed = output_tail(result.output)
        if printed:
            self.err.print("[dim]what the import printed:[/dim]", highlight=False)
            self.err.print(printed, markup=False, highlight=False)

    def outcome(self, outcome: Outcome) -> None:
        if self.as_json:
            self.echo(json.dumps(record(outcome)))
        else:
            self.out.print(line(outcome), highlight=False, soft_wrap=True)


# -- keeping the development chainlets warm ----------------------------------------------------


class Waker:
    """`--watch-no-sleep`: wakes the development deployment now and every `interval` seconds,
    in a thread of its own, so that it does not scale to zero while someone watches it."""

    def __init__(
        self,
        wake: Callable[[], None],
        on_error: Callable[[str], None],
        interval: float = WAKE_INTERVAL,
    ) -> None:
        self._wake = wake
        self._on_error = on_error
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chainyard-wake", daemon=True)

    def start(self) -> Waker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failing = False
        while True:
            try:
                self._wake()
                failing = False
            except ChainyardError as exc:
                if not failing:  # once per run of failures, not every minute
                    self._on_error(exc.message)
                failing = True
            if self._stopped.wait(self._interval):
                return
