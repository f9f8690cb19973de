"""A real `chainyard serve` (simulated runtime) for the browser test, and where screenshots go."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
KEY = "dashboard1.0123456789abcdefghijklmnop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, root: pathlib.Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.data_dir = root / "data"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "CHAINYARD_BOOTSTRAP_API_KEY": KEY}
        command = [sys.executable, "-m", "chainyard.cli.main", "serve"]
        command += ["--runtime", "simulated", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), "--reconcile-interval", "0.1"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
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
        raise RuntimeError(f"server did not start:\n{self.log_tail()}")

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

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        )

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("dashboard"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def artifacts() -> pathlib.Path:
    """CHAINYARD_TEST_ARTIFACTS/dashboard, or test-artifacts/dashboard at the repository root
    (gitignored); emptied of the previous run's screenshots."""
    base = pathlib.Path(os.environ.get("CHAINYARD_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder = base / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder
