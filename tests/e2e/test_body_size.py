"""The inference body cap (issue 15, item 9): a serve option, bodies streamed through the gateway
and counted, 413 past the cap whether the body declares its length or not."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import CHAINYARD, KEY, LiveServer, _free_port, wait_for

SIZES = pathlib.Path(__file__).parent / "chains" / "sizes.py"
CAP = 3 * 2**20

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("sizes")
    live = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        env={"CHAINYARD_MAX_BODY_BYTES": "3MiB"},
    )
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def sizes(server: LiveServer) -> dict[str, Any]:
    result = server.push(SIZES, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def _body(size: int) -> bytes:
    """A JSON body of exactly `size` bytes: {"blob": "xxx..."}."""
    head, tail = b'{"blob": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _chunked(body: bytes) -> Iterator[bytes]:
    # A generator body: httpx sends it chunked, without Content-Length.
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


def test_bodies_up_to_the_cap_go_through_and_past_it_get_413(
    server: LiveServer, sizes: dict[str, Any]
) -> None:
    path = f"/chains/{sizes['chain_id']}/production/run_remote"
    under = _body(CAP - 1024)
    blob_len = len(under) - len(b'{"blob": ""}')
    with server.client() as client:
        # Declared length, larger than what the gateway reads whole: streamed to the replica,
        # and on from the entrypoint to its dependency through the gateway's internal route.
        declared = client.post(path, content=under, headers={"content-type": "application/json"})
        assert declared.status_code == 200, declared.text
        assert declared.json() == [blob_len, blob_len]
        chunked = client.post(path, content=_chunked(under))
        assert chunked.status_code == 200, chunked.text
        assert chunked.json() == [blob_len, blob_len]

        over = _body(CAP + 1)
        refused = client.post(path, content=over)
        assert refused.status_code == 413
        assert refused.json()["error_code"] == "payload_too_large"
        assert "larger than 3 MiB" in refused.json()["error"]
        assert "--max-body-size" in refused.json()["error"]
        counted = client.post(path, content=_chunked(over))
        assert counted.status_code == 413, counted.text
        assert "larger than 3 MiB" in counted.json()["error"]

        # Nothing was left half-done: the chain still answers.
        again = client.post(path, json={"blob": "abc"})
        assert again.json() == [3, 3]
        # The management API keeps its own, smaller limit.
        big_secret = client.post(
            "/v1/secrets", json={"name": "big", "value": "x" * (16 * 2**20 + 1)}
        )
        assert big_secret.status_code == 413


def test_a_bad_cap_is_refused_at_start(tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "CHAINYARD_MAX_BODY_BYTES": "lots"}
    for args, env_ in (
        (["--max-body-size", "12 parsecs"], dict(os.environ)),
        ([], env),
    ):
        result = subprocess.run(
            [*CHAINYARD, "serve", "--data-dir", str(tmp_path), "--port", "0", *args],
            capture_output=True,
            text=True,
            env=env_,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "is not a size" in result.stderr


def _in_flight(server: LiveServer) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("chainyard_in_flight_requests")
    )


def test_a_caller_gone_mid_upload_leaves_nothing_taken(
    server: LiveServer, sizes: dict[str, Any]
) -> None:
    path = f"/chains/{sizes['chain_id']}/production/run_remote"
    # A chunked upload that stops half-way: the gateway has begun streaming it to the replica.
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        chunk = b'{"blob": "' + b"x" * 200_000
        raw.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n".encode()
            + f"{len(chunk):x}\r\n".encode()
            + chunk
            + b"\r\n"
        )
        time.sleep(0.5)  # let the gateway start the upload; the test asserts no timing
    wait_for(lambda: _in_flight(server) == 0, timeout=30, what="no request left in flight")
    with server.client() as client:
        assert client.post(path, json={"blob": "ab"}).json() == [2, 2]
