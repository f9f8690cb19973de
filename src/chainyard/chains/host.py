"""The replica host: imports truss_chains and the user's chain once, then forks one child per
replica. A child is serving ~0.1 s after the fork instead of paying the ~2.5 s import itself.

Run by the local runtime as `python -m chainyard.chains.host SOURCE_DIR CHAIN_FILE [ENTRYPOINT]`
(the entrypoint class when the deployment names one: a file with several chainlets and no
`mark_entrypoint` cannot be imported without it), or as `--spare`: a development deployment's next
host, which imports everything but the chain ahead of time and loads the chain named by its first
command (`load`), so that a patched chainlet restarts without the ~2.5 s import. It speaks
JSON lines: commands on stdin, events on stdout. It starts no thread and no event loop before
forking, so the children inherit a clean process. When its stdin closes (the server went away) it
stops every child and exits.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pathlib
import select
import signal
import sys
import time
import traceback
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent process dies, so no replica outlives its host."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _preload() -> None:
    # The import cost every replica would otherwise pay; the children share these pages.
    import aiohttp  # noqa: F401
    import fastapi  # noqa: F401
    import pydantic  # noqa: F401
    import starlette.applications  # noqa: F401
    import truss_chains  # noqa: F401
    import uvicorn  # noqa: F401
    from truss_chains.remote_chainlet import stub, utils  # noqa: F401

    import chainyard.chains.replica_app  # noqa: F401


def _apply_limits(limits: dict[str, Any], log: Any) -> None:
    import resource

    memory_mib = limits.get("memory_limit_mib")
    if memory_mib:
        # Address space, not resident memory: allocators and thread stacks reserve far more than
        # they touch, so the cap leaves room above the instance type's figure.
        cap = (int(memory_mib) * 2 + 1024) * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    cpus = limits.get("cpus")
    if cpus:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, set(cpus))
    threads = str(limits.get("threads") or 1)
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        os.environ.setdefault(var, threads)
    for line in limits.get("notes", []):
        print(line, file=log, flush=True)


def _serve_child(command: dict[str, Any], source_dir: pathlib.Path) -> None:
    """In the forked child: becomes one replica. Never returns."""
    _die_with_parent()
    log_path = pathlib.Path(command["log_path"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 0
    try:
        _apply_limits(command.get("limits") or {}, sys.stdout)
        for key, value in (command.get("env") or {}).items():
            os.environ[key] = value
        _run_replica(command, source_dir)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_replica(command: dict[str, Any], source_dir: pathlib.Path) -> None:
    import socket
    import threading

    import uvicorn

    from chainyard import replica_auth
    from chainyard.chains import (
        direct_calls,
        kinds,
        replica_health,
        replica_logging,
        replica_ws,
        truss_compat,
    )
    from chainyard.chains.replica_app import build_app

    started = time.monotonic()
    desc = kinds.servable(truss_compat.find_descriptor(command["chainlet"]))
    options = desc.chainlet_cls.remote_config.options
    # Records of Python's logging reach the logs API with level, logger and request id.
    replica_logging.install(debug=bool(getattr(options, "enable_debug_logs", False)))
    thresholds = replica_health.chainlet_thresholds(desc)
    built = threading.Event()
    replica_health.startup_watchdog(thresholds.startup, built.is_set)
    data_dir = pathlib.Path(command["data_dir"]) if command.get("data_dir") else None
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    # Calls to dependencies go straight to their ready replicas, known from the gateway.
    direct_calls.install(command.get("service_urls") or {}, command.get("chain_api_key") or "")
    chainlet = truss_compat.build_chainlet(
        desc,
        service_urls=command.get("service_urls") or {},
        secrets=command.get("secrets") or {},
        environment=command.get("environment"),
        data_dir=data_dir,
        chain_api_key=command["chain_api_key"],
        secret_keys=command.get("secret_keys"),
    )
    built.set()
    app = build_app(
        chainlet,
        desc,
        predict_concurrency=int(command.get("predict_concurrency") or 1),
        source_dir=source_dir,
    )
    # The readiness request is answered from the health gate (`is_healthy` and the thresholds of
    # `health_checks`, judged by the runtime); every request runs with its request id for logs.
    check = getattr(chainlet, "is_healthy", None) if desc.health_check else None
    gate = replica_health.HealthGate(check, thresholds, started=started)
    served = replica_health.serve_health(gate, replica_logging.with_request_ids(app))
    # Only the gateway (and the runtime's health checks) hold this replica's credential.
    served = replica_auth.guard(command["replica_key"], served)
    # The local runtime keeps replicas on loopback; on a cluster (Ray) the gateway reaches them on
    # the node's address.
    bind_host = str(command.get("bind_host") or "127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind_host, 0))
    port = sock.getsockname()[1]
    run_file = pathlib.Path(command["run_file"])
    tmp = run_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port}))
    os.replace(tmp, run_file)
    # The log reaches the workspace (the logs API): it names no address of the platform's.
    print(f"replica {command['replica_id']} of {command['chainlet']} serving", flush=True)
    # Keep-alive longer than the gateway's pool keeps idle connections (30 s), so the gateway never
    # sends on a connection the replica is closing.
    # uvicorn's records go through the root handler (replica_logging), not handlers of its own.
    config = uvicorn.Config(
        served,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=75,
        # Only the gateway and the runtime's probes reach a replica: no proxy headers to believe,
        # and no middleware per request to read them.
        proxy_headers=False,
        **replica_ws.uvicorn_options(desc),
    )
    uvicorn.Server(config).run(sockets=[sock])


class Host:
    def __init__(
        self, source_dir: pathlib.Path, chain_file: pathlib.Path, entrypoint: str | None = None
    ) -> None:
        self.source_dir = source_dir
        self.chain_file = chain_file
        self.entrypoint = entrypoint
        self.children: dict[int, str] = {}
        self._import_scope = contextlib.ExitStack()

    def load(self) -> None:
        from chainyard.chains import truss_compat

        os.chdir(self.source_dir)
        _preload()
        self._import_scope.enter_context(
            truss_compat.imported_chain(self.source_dir / self.chain_file, self.entrypoint)
        )

    def fork(self, command: dict[str, Any]) -> None:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _serve_child(command, self.source_dir)
        self.children[pid] = command["replica_id"]
        _emit({"event": "forked", "replica_id": command["replica_id"], "pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            replica_id = self.children.pop(pid, None)
            if replica_id is not None:
                _emit(
                    {
                        "event": "exited",
                        "replica_id": replica_id,
                        "pid": pid,
                        "code": os.waitstatus_to_exitcode(status),
                    }
                )

    def stop_all(self, grace: float = 5.0) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.reap()

    def serve(self) -> None:
        buffer = b""
        stdin = sys.stdin.buffer
        while True:
            readable, _, _ = select.select([stdin], [], [], 0.2)
            self.reap()
            if not readable:
                continue
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:
                self.stop_all()
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    self.handle(json.loads(line))

    def handle(self, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "fork":
            self.fork(command)
        elif op == "exit":
            self.stop_all()
            sys.exit(0)
        else:
            _emit({"event": "error", "message": f"unknown op {op!r}"})


def _read_line(fd: int) -> bytes | None:
    """One command line from the runtime, read a byte at a time: nothing past it may be taken
    from the pipe, since `Host.serve` reads the rest."""
    line = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte:
            return None
        if byte == b"\n":
            return bytes(line)
        line += byte


def _spare() -> list[str] | None:
    """A spare host (docs/development.md): imports what every replica needs, says so, and waits
    for the `load` command naming the chain to import. Returns the arguments of a host for that
    chain, or None when the runtime closed the pipe first."""
    try:
        _preload()
    except BaseException as exc:
        traceback.print_exc()
        _emit({"event": "failed", "message": f"{type(exc).__name__}: {exc}"})
        return None
    _emit({"event": "warm", "pid": os.getpid()})
    while True:
        raw = _read_line(sys.stdin.fileno())
        if raw is None:
            return None
        if not raw.strip():
            continue
        command = json.loads(raw)
        if command.get("op") != "load":
            _emit({"event": "error", "message": f"a spare host waits for load, not {command!r}"})
            continue
        entrypoint = command.get("entrypoint")
        return [str(command["source_dir"]), str(command["chain_file"])] + (
            [str(entrypoint)] if entrypoint else []
        )


def main(argv: list[str]) -> int:
    _die_with_parent()
    if argv == ["--spare"]:
        loaded = _spare()
        if loaded is None:
            return 0
        argv = loaded
    if len(argv) not in (2, 3):
        print(
            "usage: python -m chainyard.chains.host SOURCE_DIR CHAIN_FILE [ENTRYPOINT] | --spare",
            file=sys.stderr,
        )
        return 2
    entrypoint = argv[2] if len(argv) == 3 else None
    host = Host(pathlib.Path(argv[0]).resolve(), pathlib.Path(argv[1]), entrypoint)
    try:
        host.load()
    except BaseException as exc:
        traceback.print_exc()
        _emit({"event": "failed", "message": f"{type(exc).__name__}: {exc}"})
        return 3
    _emit({"event": "ready", "pid": os.getpid()})
    host.serve()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        # Its replicas are gone: exit at once. The interpreter's teardown would run full garbage
        # collections over truss_chains and the chain (~0.7 s), and the runtime waits for the
        # host's exit when it stops a deployment or the server.
        gc.freeze()
