"""What the local runtime learns of its replica hosts' processes from /proc and the files they
write: which descendant a host's reported pid is (inside its sandbox's PID namespace or not),
whether a process still runs, the port a replica wrote, the tail of a log. Hosts run chainlet
code, so what they write is read with care."""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil

from chainyard.domain import replica_log


def descendant_pid(root: int, reported: object) -> int | None:
    """The pid (in this server's namespace) of the process among `root`'s descendants whose pid
    in its own namespace is `reported`; None if there is none."""
    if not isinstance(reported, int) or isinstance(reported, bool):
        return None
    queue = [root]
    while queue:
        pid = queue.pop()
        if pid != root and own_namespace_pid(pid) == reported:
            return pid
        with contextlib.suppress(OSError, ValueError):
            children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            queue.extend(int(c) for c in children)
    return None


def own_namespace_pid(pid: int) -> int | None:
    """A process's pid in the innermost PID namespace it belongs to (`NSpid`'s last field)."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return pid


def port_of(run_file: pathlib.Path) -> int | None:
    """The port a replica wrote to its run file (written by the sandbox: read with care)."""
    try:
        with open(run_file, "rb") as f:
            port = json.loads(f.read(4096))["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if isinstance(port, int) and 0 < port < 65536 else None


def remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def running(pid: int) -> bool:
    """False once the process is gone or a zombie waiting for its host to reap it."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def tail(path: pathlib.Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    last = [replica_log.render(line) for line in text.splitlines() if line.strip()][-lines:]
    return (":\n" + "\n".join(last)) if last else ""
