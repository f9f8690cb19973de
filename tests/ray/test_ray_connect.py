"""Connecting to Ray holds up neither the event loop nor a stop: at an address where nothing
answers, the server keeps running its loop while it waits, stops at once on SIGTERM, and gives up
with a message that names the address."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import CHAINYARD, KEY, _free_port, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Runs in a process of its own: a connect that never returns keeps its thread inside ray.init,
# which must not share a process with the other Ray tests.
START = """
import asyncio, json, pathlib, sys
from chainyard.runtime.base import RuntimeUnavailable
from chainyard.runtime.ray_backend import RayRuntime

async def main():
    runtime = RayRuntime(pathlib.Path(sys.argv[1]), address=sys.argv[2],
                         connect_timeout=float(sys.argv[3]))
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await runtime.start()
        result = {"error": None}
    except RuntimeUnavailable as exc:
        result = {"error": str(exc)}
    result["ticks"] = ticks
    ticker.cancel()
    await runtime.close()
    print(json.dumps(result))

asyncio.run(main())
"""


@pytest.fixture
def ray_env() -> Iterator[dict[str, str]]:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    # Short: Ray's unix sockets live below it.
    path = tempfile.mkdtemp(prefix="cyrc-", dir="/tmp")
    yield {**os.environ, "RAY_TMPDIR": path, "RAY_USAGE_STATS_ENABLED": "0"}
    shutil.rmtree(path, ignore_errors=True)


def nothing_listens() -> str:
    # A port just freed: nothing listens there.
    return f"127.0.0.1:{_free_port()}"


def test_the_loop_runs_on_while_ray_does_not_answer(
    tmp_path: pathlib.Path, ray_env: dict[str, str]
) -> None:
    address = nothing_listens()
    done = subprocess.run(
        [sys.executable, "-c", START, str(tmp_path), address, "3"],
        capture_output=True,
        text=True,
        env=ray_env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] is not None, "connected to an address where nothing listens"
    assert f"cannot connect to Ray at {address}" in result["error"]
    assert "no answer within 3 s" in result["error"]
    # Blocking the loop for the connect, the other coroutine would not have run at all.
    assert result["ticks"] >= 5


def serve(
    tmp_path: pathlib.Path, env: dict[str, str], address: str, out: Any = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *CHAINYARD,
            "serve",
            "--port",
            str(_free_port()),
            "--data-dir",
            str(tmp_path / "data"),
            "--runtime",
            "ray",
            "--ray-address",
            address,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "CHAINYARD_BOOTSTRAP_API_KEY": KEY},
    )


def test_sigterm_stops_a_server_still_connecting_to_ray(
    tmp_path: pathlib.Path, ray_env: dict[str, str]
) -> None:
    log = tmp_path / "server.log"
    # Far longer than the test waits: only the signal can end this server.
    env = {**ray_env, "CHAINYARD_RAY_CONNECT_TIMEOUT": "3600"}
    with open(log, "w") as out:
        process = serve(tmp_path, env, nothing_listens(), out)
    try:
        wait_for(lambda: "connecting to Ray at" in log.read_text(), timeout=60, what="connect")
        # Started before the controller, still waiting for their settings.
        workers = psutil.Process(process.pid).children()
        assert workers
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "stopped while the control plane was starting" in log.read_text()
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers left running: {alive}"


def test_a_server_that_cannot_reach_ray_says_so(
    tmp_path: pathlib.Path, ray_env: dict[str, str]
) -> None:
    address = nothing_listens()
    process = serve(tmp_path, {**ray_env, "CHAINYARD_RAY_CONNECT_TIMEOUT": "3"}, address)
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, output[-3000:]
    assert f"chainyard: cannot start: cannot connect to Ray at {address}" in output
