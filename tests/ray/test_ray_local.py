"""`chainyard serve --runtime ray` without `--ray-address` starts a Ray of its own on this machine,
serves on it, and stops it again."""

from __future__ import annotations

import json
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import REPO, LiveServer, _free_port, wait_for

HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def processes_under(marker: str) -> list[int]:
    pids = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and marker.encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def ray_temp_dir() -> Iterator[pathlib.Path]:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    # Short: Ray's unix sockets live below it.
    path = pathlib.Path(tempfile.mkdtemp(prefix="cyrl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_without_an_address_the_server_runs_its_own_ray(
    tmp_path: pathlib.Path, ray_temp_dir: pathlib.Path
) -> None:
    server = LiveServer(
        data_dir=tmp_path / "data",
        port=_free_port(),
        log=tmp_path / "server.log",
        runtime="ray",
        env={
            "RAY_TMPDIR": str(ray_temp_dir),
            # Token auth with a token of its own: nothing written to ~/.ray.
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
        },
    )
    server.start()
    try:
        assert processes_under(str(ray_temp_dir)), "the server started no Ray"
        result = server.push(HELLO, "--promote", "--wait")
        assert result.returncode == 0, result.stderr[-3000:]
        chain_id = json.loads(result.stdout.strip().splitlines()[-1])["chain_id"]
        with server.client() as client:
            response = client.post(
                f"/chains/{chain_id}/production/run_remote", json={"max_value": 1}
            )
        assert response.status_code == 200, response.text
        assert response.json() == "Hello World! "
    finally:
        server.stop()
    wait_for(
        lambda: not processes_under(str(ray_temp_dir)),
        timeout=60,
        what="the server's Ray to stop",
    )
