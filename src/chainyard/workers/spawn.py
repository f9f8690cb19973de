"""The listening socket and the worker processes of `chainyard serve`, started before the
controller is built.

A worker spends about two seconds of CPU importing the server's modules before it can serve.
Started as soon as the listening socket is bound, it does that while the controller imports its
own modules, runs the store's migrations and takes the lease; then it reads its settings on stdin
(workers/worker.py). Hence this module imports nothing of the server: `serve` starts the workers
first, then imports and builds the controller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
import sys
from collections.abc import Iterable


@dataclasses.dataclass
class Spawned:
    """A worker process waiting for its settings."""

    process: subprocess.Popen[bytes]
    # The controller's end of the worker's channel, and the worker's end as the worker knows it.
    channel: socket.socket
    channel_fd: int


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (bound once, passed to each worker)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    # Not inheritable (Python's default, kept on purpose): `Popen(pass_fds=...)` hands it to the
    # workers alone. The runtime starts replica hosts under uvloop, whose spawn keeps every
    # inheritable descriptor open in the child: a replica holding this socket could accept the
    # server's connections, with their API keys.
    return listener


def spawn(listener: socket.socket) -> Spawned:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    process = subprocess.Popen(
        [sys.executable, "-m", "chainyard.workers.worker"],
        stdin=subprocess.PIPE,
        pass_fds=(listener.fileno(), theirs.fileno()),
        # Out of the terminal's process group: a Ctrl-C reaches the controller alone, which
        # then stops the workers gracefully (a second signal would make uvicorn drop the
        # requests it holds).
        start_new_session=True,
    )
    channel_fd = theirs.fileno()
    theirs.close()
    return Spawned(process, mine, channel_fd)


def discard(spawned: Iterable[Spawned]) -> None:
    """Ends workers that never got their settings (the server did not start): they serve
    nothing yet, so nothing is lost."""
    for worker in spawned:
        with contextlib.suppress(ProcessLookupError):
            worker.process.kill()
        worker.process.wait()
        with contextlib.suppress(OSError):
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        worker.channel.close()
