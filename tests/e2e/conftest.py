"""A real `chainyard serve` process, and `chainyard push` as a user runs it.

`live_server` runs every end-to-end module twice: on the local runtime, and on the Ray runtime
against the two-node Ray cluster of the test session (tests/support/ray_cluster.py).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.support.ray_cluster import RayCluster

REPO = pathlib.Path(__file__).resolve().parents[2]
KEY = "e2eadmin1.0123456789abcdefghijklmnop"
CHAINYARD = [sys.executable, "-m", "chainyard.cli.main"]
# On the Ray runtime: how long a replica that no node can take waits before it fails.
RAY_UNSCHEDULABLE_TIMEOUT = 10.0
# Worker processes beside the controller: the default shape (controller + workers) with the
# fewest processes. Each worker costs a server start about a second of CPU on a 2-core machine,
# and these servers start about a hundred times a run; test_workers.py runs several.
WORKERS = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_processes(data_dir: pathlib.Path | str) -> list[int]:
    """Replica hosts and replicas (forked hosts share the command line) serving from data_dir
    (on Ray: from a working dir under the cluster's temp dir)."""
    pids = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"chainyard.chains.host" in cmdline and str(data_dir).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@dataclasses.dataclass
class LiveServer:
    data_dir: pathlib.Path
    port: int
    log: pathlib.Path
    process: subprocess.Popen[bytes] | None = None
    runtime: str = "local"
    ray: RayCluster | None = None
    ray_unschedulable_timeout: float = RAY_UNSCHEDULABLE_TIMEOUT
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    workers: int = WORKERS

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def shared_dir(self, deployment_id: str, scratch: pathlib.Path) -> pathlib.Path:
        """A folder that both this test and the deployment's replicas see: on the local runtime
        its sandbox shows replicas only their own scratch home, on Ray (one trust domain, no
        sandbox) the test's own `scratch` will do."""
        if self.runtime == "local":
            shared = self.data_dir / "scratch" / deployment_id
            shared.mkdir(parents=True, exist_ok=True)
            return shared
        return scratch

    def replica_processes(self) -> list[int]:
        return host_processes(self.ray.root if self.ray is not None else self.data_dir)

    def _runtime_args(self) -> tuple[list[str], dict[str, str]]:
        if self.runtime == "local":
            return [], {}
        args = ["--runtime", self.runtime]
        if self.runtime != "ray":
            return args, {}
        # Chainlet data dirs where the local runtime keeps them (every node is this machine).
        env = {"CHAINYARD_RAY_DATA_DIR": str(self.data_dir.resolve() / "chainlet-data")}
        args += ["--ray-unschedulable-timeout", str(self.ray_unschedulable_timeout)]
        if self.ray is not None:
            env.update(self.ray.env)
            args += ["--ray-address", self.ray.address]
        return args, env

    def start(self) -> None:
        runtime_args, runtime_env = self._runtime_args()
        env = {
            **os.environ,
            "CHAINYARD_WORKERS": str(self.workers),
            **runtime_env,
            **self.env,
            "CHAINYARD_BOOTSTRAP_API_KEY": KEY,
        }
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *CHAINYARD,
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--reconcile-interval",
                    "0.1",
                    *runtime_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def client(self, key: str = KEY) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def push(self, chain_file: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CHAINYARD_URL": self.url, "CHAINYARD_API_KEY": KEY}
        return subprocess.run(
            [*CHAINYARD, "push", str(chain_file), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )


@pytest.fixture(scope="module", params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live")
    server = LiveServer(data_dir=root / "data", port=_free_port(), log=root / "server.log")
    if request.param == "ray":
        server.runtime = "ray"
        server.ray = request.getfixturevalue("ray_cluster")
    server.start()
    yield server
    server.stop()


def wait_for(predicate: Any, *, timeout: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
