"""The watch loop against a stand-in for `client.development` (a subclass of the SDK's, answering
the SDK's `Patch`; the server side has its own tests): what each batch sends, how the known tree
moves on, and what it prints."""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import tarfile
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from chainyard.cli.chain_check import CheckResult
from chainyard.cli.source_changes import SourceTree
from chainyard.cli.watch import (
    REPLACE_HINT,
    STEP_MS,
    ConsoleReport,
    Outcome,
    Synced,
    Waker,
    Watcher,
    chainlet_selection,
    first_event_time,
    line,
    record,
)
from chainyard.schemas import DeployManifest, Patch
from chainyard.schemas.patches import PatchStatus
from chainyard.sdk import Client, Conflict, ConnectionFailed, Invalid, NotFound
from chainyard.sdk.development import Development

MANIFEST = {"chain_name": "hello", "entrypoint": "A", "chainlets": [{"name": "A"}]}


def make_patch(patch_id: str, status: PatchStatus, **fields: Any) -> Patch:
    now = datetime.now(UTC)
    return Patch(
        **{
            "id": patch_id,
            "chain_deployment_id": "dev1",
            "revision": int(patch_id.lstrip("p")),
            "status": status,
            "kind": "code",
            "chainlets": ["A"],
            "changed_paths": [],
            "deleted_paths": [],
            "artifact_digest": None,
            "message": None,
            "created_at": now,
            "finished_at": None if status == "APPLYING" else now,
            "duration_ms": None,
            **fields,
        }
    )


@dataclasses.dataclass
class Call:
    base_digest: str | None
    files: dict[str, bytes]
    deleted: list[str]
    manifest: dict[str, Any] | None
    chainlets: list[str] | None


class FakeDevelopment(Development):
    """Answers each patch with APPLYING, then `final` after `polls` reads. No client behind it:
    a call it does not fake fails."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.calls: list[Call] = []
        self.errors: list[Exception] = []  # raised by the next patch calls, in order
        self.final: PatchStatus = "SUCCEEDED"
        self.message: str | None = None
        self.polls = 2
        self.reads = 0
        self.left = 0

    def patch(
        self,
        chain_id: str,
        *,
        base_digest: str | None,
        files: bytes | None = None,
        deleted: Sequence[str] = (),
        manifest: DeployManifest | Mapping[str, Any] | None = None,
        chainlets: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> Patch:
        assert chain_id == "chain1"
        assert manifest is None or isinstance(manifest, dict)
        contents: dict[str, bytes] = {}
        if files is not None:
            with tarfile.open(fileobj=io.BytesIO(files), mode="r:gz") as tar:
                for m in tar.getmembers():
                    f = tar.extractfile(m)
                    assert f is not None
                    contents[m.name] = f.read()
        selected = None if chainlets is None else list(chainlets)
        self.calls.append(Call(base_digest, contents, list(deleted), manifest, selected))
        if self.errors:
            raise self.errors.pop(0)
        self.left = self.polls
        return make_patch(f"p{len(self.calls)}", "APPLYING")

    def get_patch(self, chain_id: str, patch_id: str) -> Patch:
        self.reads += 1
        self.left -= 1
        if self.left > 0:
            return make_patch(patch_id, "APPLYING")
        return make_patch(
            patch_id,
            self.final,
            artifact_digest=f"digest-of-{patch_id}",
            message=self.message,
            duration_ms=120,
        )


class FakeChecker:
    def __init__(self) -> None:
        self.error: str | None = None
        self.checks = 0
        self.prepared = 0

    def check(self) -> CheckResult:
        self.checks += 1
        if self.error:
            return CheckResult(manifest=None, error=self.error, output="", seconds=0.1)
        return CheckResult(manifest=MANIFEST, error=None, output="", seconds=0.1)

    def prepare(self) -> None:
        self.prepared += 1


class FakeStop:
    def __init__(self, after_waits: int | None = None) -> None:
        self.flag = False
        self.after_waits = after_waits
        self.waits = 0

    def is_set(self) -> bool:
        return self.flag

    def wait(self, seconds: float) -> bool:
        self.waits += 1
        if self.after_waits is not None and self.waits >= self.after_waits:
            self.flag = True
        return self.flag


class Collected:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.import_errors: list[str | None] = []

    def import_failed(self, result: CheckResult) -> None:
        self.import_errors.append(result.error)

    def outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


class Signalling(Collected):
    def __init__(self) -> None:
        super().__init__()
        self.done = threading.Event()

    def outcome(self, outcome: Outcome) -> None:
        super().outcome(outcome)
        self.done.set()


@dataclasses.dataclass
class Rig:
    root: pathlib.Path
    api: FakeDevelopment
    checker: FakeChecker
    report: Collected
    stop: FakeStop
    watcher: Watcher


def rig(tmp_path: pathlib.Path, *, pushed: bool = True, **options: Any) -> Rig:
    (tmp_path / "chain.py").write_text("print('v1')\n")
    (tmp_path / "util.py").write_text("U = 1\n")
    tree = SourceTree(tmp_path)
    synced = Synced(tree.scan(), "pushed-digest") if pushed else Synced(None, None)
    api, checker, report, stop = FakeDevelopment(), FakeChecker(), Collected(), FakeStop()
    watcher = Watcher(
        api, "chain1", tree, checker, report, stop, synced=synced, poll_interval=0, **options
    )
    return Rig(tmp_path, api, checker, report, stop, watcher)


def test_a_save_sends_the_changed_file_against_the_pushed_tree(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path)
    (r.root / "chain.py").write_text("print('v2')\n")
    outcome = r.watcher.sync(saved_at=0.0)
    assert outcome.result == "patched" and not outcome.full
    [call] = r.api.calls
    assert call.base_digest == "pushed-digest"
    assert call.files == {"chain.py": b"print('v2')\n"}
    assert call.deleted == [] and call.manifest == MANIFEST and call.chainlets is None
    assert r.api.reads == 2  # followed until it was no longer APPLYING
    assert r.watcher.synced.digest == "digest-of-p1"
    assert outcome.seconds is not None and outcome.seconds >= 0

    # Nothing changed since: no check, no call.
    assert r.watcher.sync(saved_at=0.0).result == "unchanged"
    assert len(r.api.calls) == 1 and r.checker.checks == 1

    (r.root / "util.py").unlink()
    assert r.watcher.sync(saved_at=0.0).result == "patched"
    last = r.api.calls[-1]
    assert last.base_digest == "digest-of-p1" and last.files == {} and last.deleted == ["util.py"]


def test_without_a_known_tree_the_first_patch_sends_everything(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path, pushed=False, chainlets=["A"])
    outcome = r.watcher.sync(saved_at=0.0)
    assert outcome.full
    [call] = r.api.calls
    assert call.base_digest is None and set(call.files) == {"chain.py", "util.py"}
    assert call.chainlets == ["A"]


def test_a_broken_save_is_sent_without_a_manifest_and_sent_again_once_fixed(
    tmp_path: pathlib.Path,
) -> None:
    r = rig(tmp_path)
    r.checker.error = "SyntaxError: invalid syntax"
    r.api.final, r.api.message = "FAILED", "replica failed: SyntaxError"
    (r.root / "chain.py").write_text("def broken(:\n")
    outcome = r.watcher.sync(saved_at=0.0)
    assert r.report.import_errors == ["SyntaxError: invalid syntax"]
    assert r.api.calls[0].manifest is None
    assert r.api.calls[0].files == {"chain.py": b"def broken(:\n"}
    assert outcome.result == "failed" and outcome.import_error == "SyntaxError: invalid syntax"
    assert r.watcher.synced.digest == "pushed-digest"  # the last good code

    r.checker.error, r.api.final, r.api.message = None, "SUCCEEDED", None
    (r.root / "chain.py").write_text("print('v3')\n")
    (r.root / "util.py").write_text("U = 2\n")
    assert r.watcher.sync(saved_at=0.0).result == "patched"
    fixed = r.api.calls[1]
    assert fixed.base_digest == "pushed-digest"
    assert fixed.files == {"chain.py": b"print('v3')\n", "util.py": b"U = 2\n"}


def test_a_base_mismatch_sends_the_whole_tree_once(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path)
    r.api.errors = [Conflict("not the base", status=409, code="PATCH_BASE_MISMATCH")]
    (r.root / "chain.py").write_text("print('v2')\n")
    outcome = r.watcher.sync(saved_at=0.0)
    assert outcome.result == "patched" and outcome.full
    first, second = r.api.calls
    assert first.base_digest == "pushed-digest" and set(first.files) == {"chain.py"}
    assert second.base_digest is None and set(second.files) == {"chain.py", "util.py"}
    assert second.deleted == []


def test_a_refusal_is_reported_and_watching_goes_on(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path)
    r.api.errors = [Invalid("chainlet B was added", status=400, code="PATCH_REFUSED")]
    (r.root / "chain.py").write_text("print('two chainlets')\n")
    refused = r.watcher.sync(saved_at=0.0)
    assert refused.result == "refused" and refused.message == "chainlet B was added"
    assert REPLACE_HINT in line(refused)
    assert r.watcher.synced.digest == "pushed-digest"
    # Put back as deployed: nothing left to send.
    (r.root / "chain.py").write_text("print('v1')\n")
    assert r.watcher.sync(saved_at=0.0).result == "unchanged"


def test_unsent_patches_are_sent_again_and_a_missing_deployment_stops(
    tmp_path: pathlib.Path,
) -> None:
    r = rig(tmp_path)
    r.api.errors = [ConnectionFailed("cannot reach the server")]
    (r.root / "chain.py").write_text("print('v2')\n")
    unsent = r.watcher.sync(saved_at=0.0)
    assert unsent.result == "not-sent" and "cannot reach" in line(unsent)
    assert r.watcher.sync(saved_at=0.0).result == "patched"
    assert r.api.calls[1].files == {"chain.py": b"print('v2')\n"}

    r.api.errors = [NotFound("no development deployment", status=404, code="NOT_FOUND")]
    (r.root / "chain.py").write_text("print('v3')\n")
    with pytest.raises(NotFound):
        r.watcher.sync(saved_at=0.0)


def test_skipped_moves_the_known_tree_on(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path)
    r.api.final = "SKIPPED"
    (r.root / "README.md").write_text("notes\n")
    outcome = r.watcher.sync(saved_at=0.0)
    assert outcome.result == "skipped" and r.watcher.synced.digest == "digest-of-p1"
    assert "nothing to do" in line(outcome)


def test_ctrl_c_while_following_a_patch(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path)
    r.stop.after_waits = 1
    (r.root / "chain.py").write_text("print('v2')\n")
    assert r.watcher.sync(saved_at=0.0).result == "interrupted"
    assert r.watcher.synced.digest == "pushed-digest"


def test_run_catches_up_on_its_first_batch_then_only_on_events(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path)
    # Saved after the push, before the watcher started: the first (empty) batch finds it.
    (r.root / "chain.py").write_text("print('while deploying')\n")
    event = {("modified", str(r.root / "util.py"))}

    def batches() -> Any:
        yield set()
        yield set()  # idle: nothing to do
        (r.root / "util.py").write_text("U = 9\n")
        yield event
        r.stop.flag = True
        yield event

    r.watcher.run(batches())
    assert [c.files for c in r.api.calls] == [
        {"chain.py": b"print('while deploying')\n"},
        {"util.py": b"U = 9\n"},
    ]
    assert [o.result for o in r.report.outcomes] == ["patched", "patched"]
    assert r.checker.prepared == 2  # the next check's child, once each patch is live


def test_real_file_events_reach_the_watcher(tmp_path: pathlib.Path) -> None:
    import watchfiles

    r = rig(tmp_path)
    stop = threading.Event()
    r.watcher.stop = stop
    report = Signalling()
    r.watcher.report = report
    batches = watchfiles.watch(
        r.root,
        watch_filter=lambda _c, p: r.watcher.tree.concerns(p),
        step=STEP_MS,
        stop_event=stop,
        rust_timeout=100,
        yield_on_timeout=True,
    )
    thread = threading.Thread(target=r.watcher.run, args=(batches,))
    thread.start()
    try:
        (r.root / "__pycache__").mkdir()
        (r.root / "__pycache__" / "chain.cpython-311.pyc").write_bytes(b"ignored")
        (r.root / "chain.py").write_text("print('saved')\n")
        assert report.done.wait(30)
    finally:
        stop.set()
        thread.join(30)
    assert r.api.calls[0].files == {"chain.py": b"print('saved')\n"}


def test_chainlet_selection() -> None:
    assert chainlet_selection(None, ["A", "B"]) is None
    assert chainlet_selection(" A, B ", ["A", "B"]) == ["A", "B"]
    with pytest.raises(ValueError, match="no chainlet C in the chain"):
        chainlet_selection("A,C", ["A", "B"])
    with pytest.raises(ValueError, match="empty"):
        chainlet_selection(" , ", ["A"])


def test_first_event_time_is_the_save_within_the_batch(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "chain.py"
    path.write_text("")
    mtime = path.stat().st_mtime
    assert first_event_time({("modified", str(path))}, now=mtime + 0.3) == mtime
    # A copied file keeps an old mtime: the batch's window bounds it.
    assert first_event_time({("modified", str(path))}, now=mtime + 100) > mtime + 98
    assert first_event_time({("deleted", str(tmp_path / "gone.py"))}, now=50.0) == pytest.approx(
        50.0 - STEP_MS / 1000
    )


def test_lines_and_records(tmp_path: pathlib.Path) -> None:
    r = rig(tmp_path)
    (r.root / "chain.py").write_text("print('v2')\n")
    (r.root / "util.py").unlink()
    outcome = r.watcher.sync(saved_at=0.0)
    text = line(outcome)
    assert text.startswith("[green]✓ patched[/green] A (code) in ")
    assert "(server 0.12 s): chain.py, -util.py" in text
    data = record(outcome)
    assert data["result"] == "patched" and data["deleted_paths"] == ["util.py"]
    assert data["patch"]["status"] == "SUCCEEDED" and data["patch"]["chainlets"] == ["A"]
    failed = dataclasses.replace(outcome, result="failed", message="boom [x]")
    assert "boom \\[x]" in line(failed) and "last good code keeps serving" in line(failed)


def test_waker_wakes_at_once_and_reports_a_run_of_failures_once() -> None:
    calls: list[int] = []
    errors: list[str] = []
    woke_enough = threading.Event()

    def wake() -> None:
        calls.append(1)
        if len(calls) >= 4:
            woke_enough.set()
        if len(calls) in (2, 3):
            raise ConnectionFailed("down")

    waker = Waker(wake, errors.append, interval=0.001).start()
    assert woke_enough.wait(30)
    waker.stop()
    assert errors == ["down"]


def test_the_wake_of_no_sleep_calls_the_development_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with Client("http://server", "key1", transport=httpx.MockTransport(handler)) as client:
        # What `--watch-no-sleep`'s waker calls (cli/commands/watch.py).
        client.chains.wake("chain/1", development=True)
    [request] = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/chains/chain%2F1/development/wake"
    assert request.headers["Authorization"] == "Bearer key1"


def test_console_report(tmp_path: pathlib.Path) -> None:
    from rich.console import Console

    out, err = io.StringIO(), io.StringIO()
    echoed: list[str] = []
    people = ConsoleReport(
        Console(file=out, width=200), Console(file=err, width=200), as_json=False
    )
    people.import_failed(
        CheckResult(
            manifest=None,
            error="SyntaxError: expected ':'",
            output="chain.py:9 [kind: TYPE_ERROR]: bad __init__\n",
            seconds=0.1,
        )
    )
    assert "does not import" in err.getvalue()
    assert "SyntaxError: expected ':'" in err.getvalue()
    assert "[kind: TYPE_ERROR]: bad __init__" in err.getvalue()

    r = rig(tmp_path)
    (r.root / "chain.py").write_text("print('v2')\n")
    outcome = r.watcher.sync(saved_at=0.0)
    people.outcome(outcome)
    assert "✓ patched A (code) in" in out.getvalue()

    scripts = ConsoleReport(None, None, as_json=True, echo=echoed.append)
    scripts.outcome(outcome)
    assert json.loads(echoed[0])["changed_paths"] == ["chain.py"]
