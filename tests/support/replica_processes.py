"""The replica processes of a local-runtime server, found from the host records it keeps in its
data dir (`run/hosts/`): each replica is a child of a replica host, inside its sandbox or not."""

from __future__ import annotations

import json
import pathlib


def replica_pids(data_dir: pathlib.Path) -> list[int]:
    pids = []
    for record in (data_dir / "run" / "hosts").glob("*.json"):
        try:
            root = int(json.loads(record.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
        pids += [pid for pid in _descendants(root) if _is_host(_parent(pid)) and _is_host(pid)]
    return pids


def _descendants(root: int) -> list[int]:
    out, queue = [], [root]
    while queue:
        pid = queue.pop()
        try:
            children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        out += [int(c) for c in children]
        queue += [int(c) for c in children]
    return out


def _cmdline(pid: int | None) -> list[bytes]:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _is_host(pid: int | None) -> bool:
    """A Python replica host or its forked replica (not bubblewrap wrapping one)."""
    argv = _cmdline(pid)
    return bool(argv) and b"chainyard.chains.host" in argv and b"bwrap" not in argv[0]


def _parent(pid: int) -> int | None:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[-1].split()[1])
