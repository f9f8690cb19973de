"""A real two-node Ray cluster on this machine, for the Ray runtime's tests.

The head node takes CPU work; the second node claims one GPU and the `accelerator_type:A10G`
resource (Ray sets `CUDA_VISIBLE_DEVICES` for the processes it gives that GPU to, GPU or not).
Both declare logical CPUs and memory well above what the instance types of the tests ask for, so
placement depends on GPUs and accelerator types, not on this machine's two cores.

Every node runs under `ray start --block` in a session of its own, with its own temp dir and
ports; stopping a node kills that session's processes and nothing else (`ray stop` would stop
every Ray on the machine). Token authentication is on, with a token of this cluster's own passed
in the environment, so no token file is written to the home directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

BIN = pathlib.Path(sys.executable).parent
GiB = 2**30
# Logical sizes (what Ray schedules by), not this machine's: see the module docstring.
HEAD_CPUS, HEAD_MEMORY = 8, 64 * GiB
GPU_NODE_CPUS, GPU_NODE_MEMORY = 8, 64 * GiB
GPU_TYPE = "A10G"
OBJECT_STORE = 100 * 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_pids(session: int) -> list[int]:
    """Processes of one session (the `ray start` we started leads it), except zombies."""
    pids = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp, session.
        if fields[0] != "Z" and int(fields[3]) == session:
            pids.append(int(proc.name))
    return pids


@dataclasses.dataclass
class RayNode:
    name: str
    args: list[str]
    temp_dir: pathlib.Path
    log: pathlib.Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, env: dict[str, str]) -> None:
        self.starts += 1
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "ray"),
                    "start",
                    "--block",
                    *self.args,
                    "--temp-dir",
                    str(self.temp_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait_started(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.read_text(errors="replace").count("Ray runtime started") >= self.starts:
                return
            if self.process is None or self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"Ray node {self.name} did not start:\n{self.tail()}")

    def stop(self) -> None:
        """Kills the node at once, as a lost machine would be."""
        if self.process is None:
            return
        session = self.process.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = _session_pids(session)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        self.process.wait(timeout=10)
        self.process = None

    def raylet_pids(self) -> set[int]:
        """The node's raylet (replicas' Ray workers run under it; RAY_RAYLET_PID names it)."""
        if self.process is None:
            return set()
        pids = set()
        for pid in _session_pids(self.process.pid):
            with contextlib.suppress(OSError):
                cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"/raylet/raylet" in cmdline.split(b"\0")[0]:
                    pids.add(pid)
        return pids

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""


@dataclasses.dataclass
class RayCluster:
    root: pathlib.Path
    port: int
    token: str
    head: RayNode
    gpu_node: RayNode

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What every process of the cluster and every client needs (token authentication)."""
        return {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
            # A pip failure here is never transient: report it after one try, not three.
            "RUNTIME_ENV_RETRY_TIMES": "1",
        }

    def start(self) -> None:
        self.head.start(self.env)
        self.head.wait_started()
        self.start_gpu_node()

    def start_gpu_node(self) -> None:
        self.gpu_node.start(self.env)
        self.gpu_node.wait_started()
        self.wait_for_nodes(2)

    def wait_for_nodes(self, count: int, timeout: float = 60) -> None:
        script = (
            "import ray, sys\n"
            f"ray.init(address={self.address!r}, log_to_driver=False, logging_level='ERROR')\n"
            "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
        )
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            result = subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=60,
            )
            lines = result.stdout.strip().splitlines()
            seen = lines[-1] if lines else result.stderr[-500:]
            if result.returncode == 0 and seen == str(count):
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster has {seen!r} alive nodes, not {count}")

    def stop(self) -> None:
        for node in (self.gpu_node, self.head):
            with contextlib.suppress(Exception):
                node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def make_cluster() -> RayCluster:
    # Short: Ray puts unix sockets under the temp dir, and their paths may not exceed 107 bytes.
    root = pathlib.Path(tempfile.mkdtemp(prefix="cyray-", dir="/tmp"))
    port = _free_port()
    common = [
        "--node-ip-address",
        "127.0.0.1",
        "--object-store-memory",
        str(OBJECT_STORE),
        "--disable-usage-stats",
    ]
    head = RayNode(
        "head",
        [
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            str(HEAD_CPUS),
            "--memory",
            str(HEAD_MEMORY),
            "--include-dashboard=false",
            "--dashboard-port",
            str(_free_port()),
            "--ray-client-server-port",
            str(_free_port()),
            "--dashboard-agent-listen-port",
            str(_free_port()),
            *common,
        ],
        root / "head",
        root / "head.log",
    )
    gpu_node = RayNode(
        "gpu",
        [
            "--address",
            f"127.0.0.1:{port}",
            "--num-cpus",
            str(GPU_NODE_CPUS),
            "--memory",
            str(GPU_NODE_MEMORY),
            "--num-gpus",
            "1",
            "--resources",
            f'{{"accelerator_type:{GPU_TYPE}": 1}}',
            "--dashboard-agent-listen-port",
            str(_free_port()),
            *common,
        ],
        root / "gpu",
        root / "gpu.log",
    )
    for node in (head, gpu_node):
        node.temp_dir.mkdir()
    return RayCluster(
        root=root, port=port, token=secrets.token_hex(32), head=head, gpu_node=gpu_node
    )


@contextlib.contextmanager
def running_cluster() -> Iterator[RayCluster]:
    cluster = make_cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
