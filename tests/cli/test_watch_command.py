"""The watching `push --watch` and `watch` do, end to end on this side: real file events, the
import check's child, Ctrl-C; `client.development` is a stand-in (the server side has its own
tests)."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import threading
import time

import pytest

from chainyard.cli.commands.watch import follow_source
from chainyard.cli.config import resolve
from chainyard.cli.session import Session
from chainyard.cli.source_changes import SourceTree, digest
from chainyard.cli.watch import Synced
from tests.unit.test_watch_loop import FakeDevelopment

REPO = pathlib.Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = pytest.mark.slow  # the import check's child imports truss_chains


def test_a_save_is_patched_and_ctrl_c_ends_the_watch(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = tmp_path / "chain.py"
    shutil.copy(HELLO, chain)
    tree = SourceTree(tmp_path)
    pushed = tree.scan()
    session = Session(resolve(url="http://127.0.0.1:9", api_key="abcd1234.x", output="table"))
    api = FakeDevelopment()
    session.client.development = api

    def edit_then_interrupt() -> None:
        time.sleep(0.5)
        chain.write_text(chain.read_text().replace("Hello World! ", "Hi! "))
        deadline = time.monotonic() + 60
        while not api.calls and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the outcome's line
        os.kill(os.getpid(), signal.SIGINT)

    editor = threading.Thread(target=edit_then_interrupt)
    # Python's own handler, as in a terminal: a suite run as a background job inherits SIGINT
    # ignored, and the watch (rightly) leaves an ignored SIGINT ignored.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    editor.start()
    try:
        follow_source(
            session,
            chain_id="chain1",
            path=chain,
            entrypoint=None,
            name="hello",
            tree=tree,
            synced=Synced(pushed, digest(b"pushed")),
            chainlets=None,
            no_sleep=False,
        )
    finally:
        editor.join(60)
        session.close()
        signal.signal(signal.SIGINT, outer)
    [call] = api.calls
    assert call.base_digest == digest(b"pushed")
    assert list(call.files) == ["chain.py"] and b"Hi! " in call.files["chain.py"]
    assert call.manifest is not None and call.manifest["entrypoint"] == "HelloWorld"
    out, err = capsys.readouterr()
    assert "✓ patched A (code) in" in out
    assert "stopped watching" in err
