"""One server per data dir: an OS file lock (flock) that `chainyard serve` takes before it touches
anything, and holds for its whole life.

Without it a second server started on a live server's data dir migrated the store, took the
control-loops lease under the same server id and, in its local runtime, killed every replica of
the live server as "leftovers" before it found its port taken.

Two modes:
- the store is SQLite (in the data dir, or anywhere): the server takes `server.lock` exclusively;
  any other server on that data dir is refused.
- the store is a shared database (PostgreSQL), several servers may share one data dir (the HA set-up
  of docs/reliability.md): each takes `server.lock` shared (so a SQLite server and they exclude each
  other) and `server-<id>.lock` exclusively, so that a second server under the same server id
  (which would take the first one's lease at once) is refused.

The kernel drops a flock when its holder dies, however it dies: a SIGKILLed server leaves no stale
lock. The descriptors are not inherited by child processes (Python opens them close-on-exec), so a
leftover replica never keeps a data dir locked. Within one process the lock is shared (in-process
test servers, and the local runtime that checks it holds it before it reaps leftover replicas).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pathlib
import threading

LOCK_FILE = "server.lock"


class DataDirInUse(Exception):
    def __init__(self, data_dir: pathlib.Path, pid: int | None, server_id: str | None) -> None:
        who = f"pid {pid}" if pid is not None else "pid unknown"
        if server_id is not None:
            who += f", server id {server_id!r}"
        super().__init__(f"data dir {data_dir} is in use by another chainyard server ({who})")


class ServerLock:
    """The locks this process holds on one data dir; released with `release()` (or at exit)."""

    def __init__(self, data_dir: pathlib.Path, fds: list[int]) -> None:
        self.data_dir = data_dir
        self._fds = fds
        self._users = 1

    def release(self) -> None:
        with _guard:
            self._users -= 1
            if self._users > 0:
                return
            _held.pop(self.data_dir, None)
            for fd in self._fds:
                os.close(fd)  # closing the descriptor drops its flock
            self._fds = []


_held: dict[pathlib.Path, ServerLock] = {}
_guard = threading.Lock()


def hold(data_dir: pathlib.Path, *, server_id: str | None = None) -> ServerLock:
    """Lock `data_dir` for this process. `server_id` None: exclusively (SQLite store); else shared
    with other servers, exclusively for this server id. Raises DataDirInUse, naming the holder.

    A process that already holds a lock on `data_dir` gets that one back (counted)."""
    data_dir = data_dir.resolve()
    with _guard:
        held = _held.get(data_dir)
        if held is not None:
            held._users += 1
            return held
        data_dir.mkdir(parents=True, exist_ok=True)
        fds: list[int] = []
        try:
            fds.append(_take(data_dir, LOCK_FILE, shared=server_id is not None, holder=None))
            if server_id is not None:
                digest = hashlib.sha256(server_id.encode()).hexdigest()[:16]
                fds.append(_take(data_dir, f"server-{digest}.lock", shared=False, holder=server_id))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        lock = ServerLock(data_dir, fds)
        _held[data_dir] = lock
        return lock


def held_here(data_dir: pathlib.Path) -> bool:
    """Whether this process holds a lock on `data_dir`."""
    with _guard:
        return data_dir.resolve() in _held


def _take(data_dir: pathlib.Path, name: str, *, shared: bool, holder: str | None) -> int:
    fd = os.open(data_dir / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _pid_in(fd)
        os.close(fd)
        raise DataDirInUse(data_dir, pid, holder) from None
    except BaseException:
        os.close(fd)
        raise
    # Who holds it, for the message a refused server prints. Written over the start and then cut
    # to length, so that a reader sees the old pid or the new one as the first line, never none.
    record = f"{os.getpid()}\n".encode()
    os.pwrite(fd, record, 0)
    os.ftruncate(fd, len(record))
    return fd


def _pid_in(fd: int) -> int | None:
    try:
        first = os.pread(fd, 64, 0).split(b"\n", 1)[0]
        return int(first)
    except (OSError, ValueError):
        return None
