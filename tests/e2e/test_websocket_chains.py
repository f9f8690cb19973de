"""WebSocket chains (`run_remote(self, websocket: chains.WebSocketProtocol)`) on real processes:
Baseten's websocket URLs in the path and the Host-header forms, the run_remote key, text and bytes
both ways, truss's close codes, waking a deployment at zero and counting as in flight."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest

from tests.e2e.conftest import KEY, LiveServer, wait_for

TALK = pathlib.Path(__file__).parent / "chains" / "websocket_talk.py"
AUTH = {"Authorization": f"Api-Key {KEY}"}

pytestmark = pytest.mark.slow

Session = Callable[[aiohttp.ClientWebSocketResponse], Awaitable[Any]]


def pushed(server: LiveServer, *args: str) -> dict[str, str]:
    result = server.push(TALK, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def talk(live_server: LiveServer) -> dict[str, str]:
    return pushed(live_server, "--promote", "--wait")


def converse(
    server: LiveServer, path: str, session: Session, headers: dict[str, str] | None = None
) -> Any:
    """Opens `path` on the server as a websocket and runs `session` on it."""

    async def run() -> Any:
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(
                server.url.replace("http://", "ws://") + path,
                headers=AUTH if headers is None else headers,
            ) as ws,
        ):
            return await session(ws)

    return asyncio.run(run())


async def hello(ws: aiohttp.ClientWebSocketResponse) -> str:
    await ws.send_str("hello")
    answer: str = await ws.receive_str(timeout=30)
    return answer


def test_text_and_bytes_stream_both_ways(live_server: LiveServer, talk: dict[str, str]) -> None:
    async def session(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str | None]:
        # The JSON dependency answers through the websocket chainlet.
        assert await hello(ws) == "HELLO"
        await ws.send_bytes(b"\x00\x01binary\xff")
        assert await ws.receive_bytes(timeout=30) == b"\xffyranib\x01\x00"
        # Several messages from the chainlet for one from the client...
        await ws.send_str("count 5")
        assert [await ws.receive_json(timeout=30) for _ in range(5)] == [{"i": i} for i in range(5)]
        # ...and several from the client before it reads any answer.
        for word in ("one", "two", "three"):
            await ws.send_str(word)
        assert [await ws.receive_str(timeout=30) for _ in range(3)] == ["ONE", "TWO", "THREE"]
        # The request's headers reach the chainlet (the key does not).
        await ws.send_str("header")
        assert await ws.receive_str(timeout=30) == "session-7"
        # The chainlet returns: a normal close, relayed to the client.
        await ws.send_str("bye")
        closing = await ws.receive(timeout=30)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        return closing.data, closing.extra

    code, _ = converse(
        live_server,
        f"/chains/{talk['chain_id']}/production/websocket",
        session,
        headers={**AUTH, "x-talk-session": "session-7"},
    )
    assert code == 1000


def test_every_url_form(live_server: LiveServer, talk: dict[str, str]) -> None:
    chain_id, deployment_id = talk["chain_id"], talk["chain_deployment_id"]
    host = {"Host": f"chain-{chain_id}.api.example"}
    forms = [
        (f"/chains/{chain_id}/production/websocket", AUTH),
        (f"/chains/{chain_id}/environments/production/websocket", AUTH),
        (f"/chains/{chain_id}/deployment/{deployment_id}/websocket", AUTH),
        # Baseten's own: the chain in the host name, with either key scheme.
        ("/production/websocket", {**host, **AUTH}),
        ("/environments/production/websocket", {**host, "Authorization": f"Bearer {KEY}"}),
        (f"/deployment/{deployment_id}/websocket", {**host, **AUTH}),
    ]
    for path, headers in forms:
        assert converse(live_server, path, hello, headers) == "HELLO", path


def test_refusals_answer_before_the_connection(
    live_server: LiveServer, talk: dict[str, str]
) -> None:
    chain_id = talk["chain_id"]

    def refused(path: str, headers: dict[str, str]) -> int:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            converse(live_server, path, hello, headers)
        return caught.value.status

    path = f"/chains/{chain_id}/production/websocket"
    assert refused(path, {}) == 401
    assert refused(path, {"Authorization": "Api-Key nope.nothing"}) == 401
    assert refused("/chains/nosuchchain/production/websocket", AUTH) == 404
    assert refused(f"/chains/{chain_id}/environments/staging/websocket", AUTH) == 404
    assert refused("/production/websocket", AUTH) == 404  # no chain in path or host
    # An invoke-only key may connect, as it may call run_remote.
    with httpx.Client(base_url=live_server.url, headers=AUTH) as client:
        invoke = client.post("/v1/api_keys", json={"type": "WORKSPACE_INVOKE"}).json()["api_key"]
        # run_remote on a websocket chain says where to go instead.
        posted = client.post(f"/chains/{chain_id}/production/run_remote", json={})
    assert posted.status_code == 400, posted.text
    assert "websocket" in posted.json()["error"]
    assert converse(live_server, path, hello, {"Authorization": f"Api-Key {invoke}"}) == "HELLO"


def test_a_chainlet_exception_closes_with_1011_and_is_logged(
    live_server: LiveServer, talk: dict[str, str]
) -> None:
    async def session(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str | None]:
        await ws.send_str("fail")
        closing = await ws.receive(timeout=30)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        return closing.data, closing.extra

    path = f"/chains/{talk['chain_id']}/production/websocket"
    code, reason = converse(live_server, path, session)
    assert code == 1011
    assert reason == "Internal Server Error (in model/chainlet)."
    # The connection after it is served as usual; the traceback is in the chainlet's logs.
    assert converse(live_server, path, hello) == "HELLO"
    with live_server.client() as client:
        deployment = client.get(
            f"/v1/chains/{talk['chain_id']}/deployments/{talk['chain_deployment_id']}"
        ).json()
        entry = next(c for c in deployment["chainlets"] if c["name"] == "Talk")
        logs_path = (
            f"/v1/chains/{talk['chain_id']}/deployments/{talk['chain_deployment_id']}"
            f"/chainlets/{entry['id']}/logs"
        )
        wait_for(
            lambda: any(
                "ValueError: asked to fail" in line["message"]
                for line in client.get(logs_path, params={"limit": 1000}).json()["logs"]
            ),
            timeout=30,
            what="the chainlet's traceback in its logs",
        )


def test_the_client_close_code_reaches_the_chainlet(
    live_server: LiveServer, talk: dict[str, str]
) -> None:
    async def session(ws: aiohttp.ClientWebSocketResponse) -> None:
        assert await hello(ws) == "HELLO"
        await ws.close(code=4321)

    deployment_id = talk["chain_deployment_id"]
    path = f"/chains/{talk['chain_id']}/deployment/{deployment_id}/websocket"
    converse(live_server, path, session)
    noted = live_server.data_dir / "chainlet-data" / deployment_id / "Talk" / "closed-by-client"
    wait_for(
        lambda: noted.exists() and "4321" in noted.read_text().split(),
        timeout=30,
        what="the chainlet to see the client's close code",
    )


def _in_flight(server: LiveServer, chainlet_id: str) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    label = f'chainlet_id="{chainlet_id}"'
    for line in text.splitlines():
        if line.startswith("chainyard_in_flight_requests") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_wakes_a_deployment_at_zero_and_counts_in_flight(
    live_server: LiveServer, talk: dict[str, str]
) -> None:
    chain_id, first = talk["chain_id"], talk["chain_deployment_id"]
    # A second deployment takes production; the first one is scaled to zero.
    pushed(live_server, "--promote", "--wait")
    with live_server.client() as client:
        wait_for(
            lambda: (
                client.get(f"/v1/chains/{chain_id}/deployments/{first}").json()["status"]
                == "SCALED_TO_ZERO"
            ),
            what="the first deployment to scale to zero",
        )
        chainlets = client.get(f"/v1/chains/{chain_id}/deployments/{first}").json()["chainlets"]
    entry_id = next(c["id"] for c in chainlets if c["name"] == "Talk")

    async def session(ws: aiohttp.ClientWebSocketResponse) -> float:
        assert await hello(ws) == "HELLO"
        # Open and idle, the connection is a request in flight of the entry chainlet.
        return await asyncio.to_thread(_in_flight, live_server, entry_id)

    assert converse(live_server, f"/chains/{chain_id}/deployment/{first}/websocket", session) == 1
    wait_for(lambda: _in_flight(live_server, entry_id) == 0, timeout=30, what="in flight 0")
