"""What runs on a Ray node for one replica: the actor the Ray runtime places.

Ray picks the node (the instance type's resources) and prepares the worker process: the chain's
source as its working directory (runtime_env `working_dir`), a virtualenv for the chainlet's pip
requirements (runtime_env `pip`), and `CUDA_VISIBLE_DEVICES` for the GPUs it was given. From there
the replica runs exactly as on the local runtime: `python -m chainyard.chains.host` imports the
chain and forks the replica, which serves truss's chainlet wire format, here on the node's address.
The actor supervises that process and hands its output and its end back when the server polls.

This module is imported inside Ray workers: it imports neither Ray at module level nor anything
of the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

# The worker's variables a replica keeps: its accelerator assignment and its raylet (which node
# it runs on). Everything else of the worker's environment is left behind (RAY_AUTH_TOKEN ...).
_FROM_RAY = (
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "NEURON_RT_VISIBLE_CORES",
    "TPU_VISIBLE_CHIPS",
    "RAY_RAYLET_PID",
)


def environment_ready() -> str:
    """A no-op run in a chainlet's runtime_env: Ray builds the environment to run it."""
    return sys.executable


def apt_missing(packages: list[str]) -> list[str]:
    """The Debian packages not installed on this node (all of them where there is no dpkg)."""
    missing = []
    for package in packages:
        try:
            done = subprocess.run(
                ["dpkg-query", "-W", "-f=${db:Status-Status}", package.split("=", 1)[0]],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            installed = done.returncode == 0 and done.stdout.strip() == "installed"
        except (OSError, subprocess.TimeoutExpired):
            installed = False
        if not installed:
            missing.append(package)
    return missing


def _tail(path: pathlib.Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    from chainyard.domain.replica_log import render

    last = [render(line) for line in text.splitlines() if line.strip()][-lines:]
    return (":\n" + "\n".join(last)) if last else ""


class ChainletReplica:
    """One replica's supervisor, living in the Ray worker that Ray placed on a node."""

    def __init__(self) -> None:
        self._host: subprocess.Popen[bytes] | None = None
        self._dir: pathlib.Path | None = None
        self._pid: int | None = None
        self._port: int | None = None
        self._exit_code: int | None = None
        self._ended: str | None = None
        self._offset = 0
        self._lock = threading.Lock()

    # -- called by the server ------------------------------------------------------------------

    def start(self, command: dict[str, Any]) -> dict[str, Any]:
        """Starts the replica host; answers at once with where this actor runs."""
        import ray

        source = pathlib.Path.cwd()  # Ray starts the worker in its copy of the working_dir
        self._dir = pathlib.Path(tempfile.mkdtemp(prefix=f"chainyard-{command['replica_id']}-"))
        ip = str(ray.util.get_node_ip_address())
        data_root = command.get("data_root") or os.path.join(
            tempfile.gettempdir(), "chainyard", "chainlet-data"
        )
        fork = {
            **command,
            "op": "fork",
            "bind_host": ip,
            "log_path": str(self._dir / "replica.log"),
            "run_file": str(self._dir / "run.json"),
            "data_dir": os.path.join(data_root, command["deployment_id"], command["chainlet"]),
        }
        image = command.get("image") or {}
        missing = apt_missing(list(image.get("apt", [])))
        if missing:
            raise RuntimeError(
                f"apt packages not installed on the replica's Ray node: {', '.join(missing)}; put "
                "them in the nodes' image"
            )
        from chainyard.runtime import data_dir

        # The chainlet's data dir on this node: its DockerImage.data_dir and external_data.
        data_dir.prepare(pathlib.Path(fork["data_dir"]), source, image)
        from chainyard.runtime import replica_env

        # ChainletOptions.env_variables and external_package_dirs, set before the chain is
        # imported, as a container's environment is on Baseten; the rest of the environment is
        # built from scratch, never the worker's (it holds the node's and Ray's own secrets).
        chainlet = {str(k): str(v) for k, v in (image.get("env") or {}).items()}
        dirs = [str(source / d) for d in image.get("package_dirs") or []]
        if dirs:
            chainlet["PYTHONPATH"] = os.pathsep.join(dirs)
        home = self._dir / "home"
        home.mkdir(exist_ok=True)
        passed: dict[str, str] = command.get("pass_env") or {}
        env = replica_env.replica_env(home=home, chainlet_env=chainlet)
        env.update(passed)
        env.update(chainlet)  # the chainlet's own variables win, as on the local runtime
        # What Ray assigned to this worker: the GPUs it may use, and the node it runs on (no
        # secrets; the replica must see its own devices, and only them).
        env.update({k: os.environ[k] for k in _FROM_RAY if k in os.environ})
        # Ray puts the runtime_env's packages and working_dir on the worker's PYTHONPATH: paths,
        # no secrets, and the host needs them.
        worker_path = os.environ.get("PYTHONPATH")
        if worker_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), worker_path]))
        with open(self._dir / "host.log", "ab") as host_log:
            self._host = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chainyard.chains.host",
                    str(source),
                    command["source_file"],
                    *([command["entrypoint_name"]] if command.get("entrypoint_name") else []),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=host_log,
                cwd=str(source),
                env=env,
            )
        threading.Thread(target=self._follow, args=(fork,), daemon=True).start()
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "ip": ip,
            "pid": os.getpid(),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def poll(self) -> dict[str, Any]:
        """New output lines, the port once the replica listens, and why it ended if it did."""
        if self._port is None and self._dir is not None:
            with contextlib.suppress(OSError, ValueError, KeyError):
                run = json.loads((self._dir / "run.json").read_text())
                self._port = int(run["port"])
        with self._lock:
            ended = self._ended
        return {"port": self._port, "lines": self._new_lines(), "ended": ended}

    def stop(self, grace: float) -> list[str]:
        """SIGTERM to the replica (it finishes what it serves), then the host; the last lines."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self._exit_code is None and time.monotonic() < deadline:
                time.sleep(0.05)
        host = self._host
        if host is not None:
            if host.stdin is not None:
                with contextlib.suppress(OSError):
                    host.stdin.close()  # the host stops its children and exits
            try:
                host.wait(timeout=grace + 2)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()
        return self._new_lines()

    # -- inside the actor ----------------------------------------------------------------------

    def _follow(self, fork: dict[str, Any]) -> None:
        """Reads the host's events (JSON lines) until it exits."""
        host = self._host
        assert host is not None and host.stdout is not None and host.stdin is not None
        assert self._dir is not None
        for raw in host.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "ready":
                with contextlib.suppress(OSError):
                    host.stdin.write((json.dumps(fork) + "\n").encode())
                    host.stdin.flush()
            elif kind == "failed":
                self._end(f"the chain failed to load: {event.get('message')}")
            elif kind == "forked":
                self._pid = int(event["pid"])
            elif kind == "exited":
                self._exit_code = int(event.get("code") or 0)
                self._end(
                    f"the replica exited with code {event.get('code')}"
                    f"{_tail(self._dir / 'replica.log')}"
                )
        code = host.wait()
        self._end(f"the replica host exited ({code}){_tail(self._dir / 'host.log')}")

    def _end(self, message: str) -> None:
        with self._lock:
            if self._ended is None:
                self._ended = message

    def _new_lines(self) -> list[str]:
        if self._dir is None:
            return []
        try:
            with open(self._dir / "replica.log", "rb") as f:
                f.seek(self._offset)
                data = f.read(1 << 20)  # a chatty replica is drained over several polls
        except FileNotFoundError:
            return []
        complete = data.rfind(b"\n") + 1
        if complete == 0:
            return []
        self._offset += complete
        lines = data[:complete].decode(errors="replace").splitlines()
        return [line for line in lines if line.strip()]
