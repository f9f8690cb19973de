"""server_lock: the data dir's OS lock against another real process holding it."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from chainyard import server_lock

_HOLDER = """
import pathlib, sys
from chainyard import server_lock
server_lock.hold(pathlib.Path(sys.argv[1]), server_id=sys.argv[2] or None)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder() -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(data_dir: pathlib.Path, server_id: str | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(data_dir), server_id or ""],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_held_data_dir_is_refused_naming_the_holder(
    tmp_path: pathlib.Path, holder: object
) -> None:
    other = holder(tmp_path)  # type: ignore[operator]
    with pytest.raises(server_lock.DataDirInUse) as refused:
        server_lock.hold(tmp_path)
    assert str(refused.value) == (
        f"data dir {tmp_path.resolve()} is in use by another chainyard server (pid {other.pid})"
    )
    # A server on a shared database is refused too: the holder's store is SQLite.
    with pytest.raises(server_lock.DataDirInUse):
        server_lock.hold(tmp_path, server_id="b")
    assert not server_lock.held_here(tmp_path)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: pathlib.Path, holder: object) -> None:
    other = holder(tmp_path)  # type: ignore[operator]
    other.send_signal(signal.SIGKILL)
    other.wait()
    lock = server_lock.hold(tmp_path)
    try:
        assert server_lock.held_here(tmp_path)
        # Within one process the lock is shared (the local runtime checks it holds it).
        again = server_lock.hold(tmp_path)
        again.release()
        assert server_lock.held_here(tmp_path)
    finally:
        lock.release()
    assert not server_lock.held_here(tmp_path)


def test_servers_on_a_shared_database_share_the_data_dir_but_not_an_id(
    tmp_path: pathlib.Path, holder: object
) -> None:
    holder(tmp_path, "a")  # type: ignore[operator]
    lock = server_lock.hold(tmp_path, server_id="b")
    lock.release()
    with pytest.raises(server_lock.DataDirInUse) as refused:
        server_lock.hold(tmp_path, server_id="a")
    assert "server id 'a'" in str(refused.value)
    # A SQLite server may not join them.
    with pytest.raises(server_lock.DataDirInUse):
        server_lock.hold(tmp_path)
