"""A real `chainyard serve` (simulated runtime) for the browser test, and where screenshots go."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import KEY, LiveServer, _free_port

__all__ = ["KEY", "Server"]

REPO = pathlib.Path(__file__).resolve().parents[2]


class Server(LiveServer):
    """The end-to-end tests' server, on the simulated runtime: the page is what is tested."""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dashboard")
    running = Server(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        runtime="simulated",
        # The async queue test counts what waits: no runner may take it meanwhile.
        env={"CHAINYARD_ASYNC_RUNNER": "0"},
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def artifacts() -> pathlib.Path:
    """CHAINYARD_TEST_ARTIFACTS/dashboard, or test-artifacts/dashboard at the repository root
    (gitignored); emptied of the previous run's screenshots once, so that every test's stay."""
    base = pathlib.Path(os.environ.get("CHAINYARD_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder = base / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder
