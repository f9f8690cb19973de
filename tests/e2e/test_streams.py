"""Streaming through a chain: a streaming dependency relayed by a streaming entrypoint, chunk by
chunk from the dependency's replica to the client (issue 15, item 2), and errors in the stream;
`chainyard run` and the SDK's `stream_remote` on it (item 14)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chainyard.sdk import AsyncClient, Client, StreamBrokenOff
from tests.e2e.conftest import CHAINYARD, KEY, LiveServer, wait_for

STREAMS = pathlib.Path(__file__).parent / "chains" / "streams.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def streams(live_server: LiveServer) -> dict[str, Any]:
    result = live_server.push(STREAMS, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def _path(ids: dict[str, Any]) -> str:
    return f"/chains/{ids['chain_id']}/production/run_remote"


def _gated_chunks(chunks: Iterator[bytes], gate: pathlib.Path) -> tuple[bytes, bytes]:
    """What arrived while the dependency still waited on `gate`, then the rest."""
    first = b""
    while not first.endswith(b" "):  # the first word, however the network cut it
        first += next(chunks)
    # The dependency cannot go past its first word until the gate opens: these bytes travelled
    # dependency replica -> gateway -> entry replica -> gateway -> here while it waits.
    gate.write_text("open")
    return first, b"".join(chunks)


def test_a_dependency_stream_reaches_the_client_chunk_by_chunk(
    live_server: LiveServer, streams: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    gate = (
        live_server.shared_dir(streams["chain_deployment_id"], tmp_path) / f"gate-{tmp_path.name}"
    )
    body = {"words": ["alpha", "été", "gamma"], "gate": str(gate)}
    with live_server.client() as client, client.stream("POST", _path(streams), json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/octet-stream")
        first, rest = _gated_chunks(r.iter_raw(), gate)
    assert first == b"ALPHA "
    assert (first + rest).decode() == "ALPHA ÉTÉ GAMMA "


def test_a_bytes_stream_of_pydantic_items_through_truss_stream_reader(
    live_server: LiveServer, streams: dict[str, Any]
) -> None:
    body = {"words": ["a", "bb", "ccc"], "tally": True}
    with live_server.client() as client:
        response = client.post(_path(streams), json=body)
    assert response.status_code == 200, response.text
    assert response.text == "a=1;bb=2;ccc=3;total=6"


def test_an_error_mid_stream_reaches_the_client_as_an_error(
    live_server: LiveServer, streams: dict[str, Any]
) -> None:
    received = b""
    body = {"words": ["alpha", "beta", "gamma"], "fail_after": 2}
    with live_server.client() as client, client.stream("POST", _path(streams), json=body) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in r.iter_raw():
                received += chunk
    # What came before the failure came, and the response is not a (shorter) success.
    assert received == b"ALPHA BETA "
    # The dependency's replica logged its failure, with the traceback, where the logs API finds it.
    path = f"/v1/chains/{streams['chain_id']}/deployments/{streams['chain_deployment_id']}"
    with live_server.client() as client:
        words = next(c for c in client.get(path).json()["chainlets"] if c["name"] == "Words")

        def failure_logged() -> list[str]:
            logs = client.get(f"{path}/chainlets/{words['id']}/logs").json()["logs"]
            text = [line["message"] for line in logs]
            return text if any("Words refuses word 2: 'gamma'" in t for t in text) else []

        logged = wait_for(failure_logged, timeout=30, what="the failure in the Words log")
    assert any("failed mid-stream" in line for line in logged)
    assert any("in run_remote" in line for line in logged)


def test_an_error_before_the_first_chunk_is_an_error_answer(
    live_server: LiveServer, streams: dict[str, Any]
) -> None:
    body = {"words": ["alpha", "beta"], "fail_after": 0}
    with live_server.client() as client:
        response = client.post(_path(streams), json=body)
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    # truss's chained remote error: the entrypoint's frame, then the dependency's root cause.
    assert error["exception_cls_name"] == "ValueError"
    assert "Error calling dependency Chainlet `Words`" in error["exception_message"]
    assert "Words refuses word 0: 'alpha'" in error["exception_message"]


def _cli(server: LiveServer, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CHAINYARD_URL": server.url, "CHAINYARD_API_KEY": KEY}
    return subprocess.Popen(
        [*CHAINYARD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def test_chainyard_run_prints_a_stream_as_it_arrives(
    live_server: LiveServer, streams: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    gate = (
        live_server.shared_dir(streams["chain_deployment_id"], tmp_path) / f"gate-{tmp_path.name}"
    )
    data = json.dumps({"words": ["one", "two", "three"], "gate": str(gate)})
    process = _cli(live_server, "run", streams["chain_id"], "--data", data)
    assert process.stdout is not None and process.stderr is not None
    try:
        # The CLI printed (and flushed) the first chunk while the dependency still waits.
        first = b""
        while not first.endswith(b" "):
            first += process.stdout.read1(1024) or b"<EOF>"
            assert not first.endswith(b"<EOF>"), process.stderr.read()
        assert first == b"ONE "
        gate.write_text("open")
        rest = process.stdout.read()
        assert process.wait(timeout=60) == 0, process.stderr.read()
    finally:
        process.kill()
        process.wait()
    assert first + rest == b"ONE TWO THREE "

    # An error mid-stream: what came is printed, then the error, and the exit code says so.
    data = json.dumps({"words": ["one", "two", "three"], "fail_after": 1})
    failed = _cli(live_server, "run", streams["chain_id"], "--data", data)
    out, err = failed.communicate(timeout=60)
    assert failed.returncode == 1
    assert out == b"ONE "
    assert b"broke off after 4 bytes" in err


def test_sdk_stream_remote(
    live_server: LiveServer, streams: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    gate = (
        live_server.shared_dir(streams["chain_deployment_id"], tmp_path) / f"gate-{tmp_path.name}"
    )
    body = {"words": ["un", "deux"], "gate": str(gate)}
    with Client(live_server.url, KEY) as client:
        with client.chains.stream_remote(streams["chain_id"], body) as stream:
            assert stream.is_stream and stream.request_id
            pieces = stream.text()
            first = ""
            while not first.endswith(" "):
                first += next(pieces)
            assert first == "UN "
            gate.write_text("open")
            assert "".join(pieces) == "DEUX "
        with client.chains.stream_remote(
            streams["chain_id"], {"words": ["un", "deux"], "fail_after": 1}
        ) as stream:
            received = []
            with pytest.raises(StreamBrokenOff) as broken:
                for chunk in stream:
                    received.append(chunk)
        assert b"".join(received) == b"UN " and broken.value.received == 3

    async def from_async_client() -> str:
        async with (
            AsyncClient(live_server.url, KEY) as client,
            client.chains.stream_remote(streams["chain_id"], {"words": ["a", "b"]}) as stream,
        ):
            return "".join([piece async for piece in stream.text()])

    assert asyncio.run(from_async_client()) == "A B "
