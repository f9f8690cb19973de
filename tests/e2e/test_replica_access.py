"""Replicas answer only the gateway, and their logs name no internal address.

Real server, real replica processes, both runtimes: each replica's listening socket is found
from outside (the sockets its process holds), as any other process on the machine could; a
request there without the replica's credential, or with a wrong one, is refused with 401 and a
websocket's handshake too, while calls through the gateway work. The logs API shows no
`host:port` of the platform's."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import socket
from typing import Any

import aiohttp
import httpx
import pytest

from tests.e2e.conftest import REPO, LiveServer, wait_for

HELLO = REPO / "examples" / "hello_world" / "chain.py"
HEADER = "x-chainyard-replica-key"
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}:\d+|\[[0-9a-fA-F:]+\]:\d+")

pytestmark = pytest.mark.slow


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fds = pathlib.Path(f"/proc/{pid}/fd")
    try:
        entries = list(fds.iterdir())
    except OSError:
        return inodes
    for fd in entries:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _listening(pid: int) -> list[str]:
    """The `http://ip:port` of each IPv4 TCP socket process `pid` listens on (/proc/net/tcp)."""
    inodes = _socket_inodes(pid)
    found = []
    for line in pathlib.Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state != "0A" or inode not in inodes:  # 0A: LISTEN
            continue
        ip_hex, port_hex = local.split(":")
        ip = socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1])
        found.append(f"http://{ip}:{int(port_hex, 16)}")
    return found


@pytest.fixture(scope="module")
def hello(live_server: LiveServer) -> dict[str, Any]:
    result = live_server.push(HELLO, "--name", "replica-access", "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def _run(server: LiveServer, chain_id: str) -> httpx.Response:
    with server.client() as client:
        return client.post(f"/chains/{chain_id}/production/run_remote", json={"max_value": 3})


def test_replicas_refuse_everyone_but_the_gateway(
    live_server: LiveServer, hello: dict[str, Any]
) -> None:
    # Through the gateway: the entrypoint calls its dependency, both replicas answer.
    response = _run(live_server, hello["chain_id"])
    assert response.status_code == 200, response.text
    assert "Hello World!" in response.json()

    addresses = wait_for(
        lambda: [a for pid in live_server.replica_processes() for a in _listening(pid)],
        what="the replicas' listening sockets",
    )
    assert len(addresses) >= 2  # HelloWorld's and RandInt's
    for address in addresses:
        for headers in ({}, {HEADER: ""}, {HEADER: "not-the-key"}):
            for method, path, body in (
                ("GET", "/v1/models/model", None),
                ("POST", "/v1/models/model:predict", {"max_value": 3}),
                ("GET", "/", None),
            ):
                answer = httpx.request(method, address + path, json=body, headers=headers)
                assert answer.status_code == 401, (address, path, headers, answer.text)
        ws = address.replace("http://", "ws://") + "/v1/websocket"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            _open_websocket(ws)
        assert refused.value.status == 401

    # The gateway still gets through, before and after the probes.
    assert _run(live_server, hello["chain_id"]).status_code == 200


def _open_websocket(url: str) -> None:
    async def connect() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url):
            pass

    asyncio.run(connect())


def test_replica_logs_name_no_internal_address(
    live_server: LiveServer, hello: dict[str, Any]
) -> None:
    assert _run(live_server, hello["chain_id"]).status_code == 200
    path = f"/v1/chains/{hello['chain_id']}/deployments/{hello['chain_deployment_id']}"
    with live_server.client() as client:
        chainlets = client.get(path).json()["chainlets"]

        def logs(chainlet_id: str) -> list[str]:
            response = client.get(f"{path}/chainlets/{chainlet_id}/logs", params={"limit": 1000})
            assert response.status_code == 200, response.text
            return [line["message"] for line in response.json()["logs"]]

        for chainlet in chainlets:
            # Its replica said it serves, without saying where.
            lines = wait_for(
                lambda c=chainlet: (m := logs(c["id"])) and any(" serving" in x for x in m) and m,
                what=f"{chainlet['name']}'s replica log",
            )
            # The gateway's own address may show (truss logs the URL its stubs call): the
            # chainlet is given it. Nothing else may.
            gateway = f"127.0.0.1:{live_server.port}"
            leaked = [
                line
                for line in lines
                if any(found != gateway for found in _ADDRESS.findall(line))
                or "127.0.0.1:" in line.replace(gateway, "")
            ]
            assert leaked == [], leaked
