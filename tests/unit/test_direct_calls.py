"""A dependency's stub calls one of its ready replicas directly (chains/direct_calls.py), with
the gateway's route as fallback. Real truss stubs (built as a replica builds them) against two
small HTTP servers, a "gateway" and a "peer": this pins what the routing relies on of truss's
private API (`predict_*` posting to `_target_url` with the client `_client_async()` /
`_client_sync()` yield), for the async, sync and streaming stubs."""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chainyard.chains import direct_calls, truss_compat
from chainyard.chains.dependency_table import DependencyTable, Peer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CHAIN = """
import truss_chains as chains


class AsyncDep(chains.ChainletBase):
    async def run_remote(self, x: int) -> int:
        return x + 1


class SyncDep(chains.ChainletBase):
    def run_remote(self, x: int) -> int:
        return x + 1


class StreamDep(chains.ChainletBase):
    async def run_remote(self, s: int) -> AsyncIterator[str]:
        yield str(s)


@chains.mark_entrypoint
class Caller(chains.ChainletBase):
    def __init__(
        self,
        a: AsyncDep = chains.depends(AsyncDep),
        s: SyncDep = chains.depends(SyncDep),
        t: StreamDep = chains.depends(StreamDep),
    ) -> None:
        pass

    async def run_remote(self) -> int:
        return 0
"""

PEER_KEY = "peer-credential-0123456789"


class _Recorder(BaseHTTPRequestHandler):
    """Answers x + 1 as JSON, or s three times as a stream (StreamDep); remembers what it was
    sent."""

    hits: list[dict[str, Any]]
    want_key: str | None

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.hits.append({"path": self.path, "headers": headers, "body": body})
        if self.want_key is not None and headers.get("x-chainyard-replica-key") != self.want_key:
            self._answer(401, b'{"error":"no"}', "application/json")
        elif "s" in body:  # StreamDep's argument
            self._answer(200, str(body["s"]).encode() * 3, "application/octet-stream")
        else:
            self._answer(200, json.dumps(body["x"] + 1).encode(), "application/json")

    def _answer(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(want_key: str | None) -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    hits: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"hits": hits, "want_key": want_key})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class World:
    def __init__(self, tmp_path: pathlib.Path) -> None:
        self.gateway, self.gateway_hits = _serve(None)
        self.peer, self.peer_hits = _serve(PEER_KEY)
        self.gateway_url = f"http://127.0.0.1:{self.gateway.server_address[1]}"
        self.peer_address = f"http://127.0.0.1:{self.peer.server_address[1]}"
        self.tables: dict[str, DependencyTable] = {}
        # One loop for the test, as in a replica: truss's stub keeps its session across calls.
        self.loop = asyncio.new_event_loop()
        self.stubs: dict[str, Any] = {}
        path = tmp_path / "direct_chain.py"
        path.write_text("from typing import AsyncIterator\n" + CHAIN)
        self._scope = truss_compat.imported_chain(path)
        self._scope.__enter__()
        from truss_chains import public_types

        for name in ("AsyncDep", "SyncDep", "StreamDep"):
            url = f"{self.gateway_url}/internal/chainlets/{name.lower()}/predict"
            table = DependencyTable(name)
            direct_calls._tables[url] = table
            self.tables[name] = table
            cls = truss_compat.stub_class(truss_compat.find_descriptor(name))
            self.stubs[name] = cls(
                public_types.DeployedServiceDescriptor(
                    name=name,
                    display_name=name,
                    predict_url=url,
                    options=public_types.RPCOptions(),
                ),
                api_key="chain-key",
            )

    def peers(self, *addresses: str) -> None:
        for table in self.tables.values():
            table.update([Peer(a, PEER_KEY) for a in addresses], "v" + str(len(addresses)))

    def close(self) -> None:
        async def close_sessions() -> None:
            for stub in self.stubs.values():
                cached = stub._cached_async_client
                if cached is not None:
                    await cached[0].close()
            for table in self.tables.values():
                found = direct_calls._sessions.pop(table, None)
                if found is not None:
                    await found[0].close()

        self.loop.run_until_complete(close_sessions())
        self.loop.close()
        self._scope.__exit__(None, None, None)
        for url in list(direct_calls._tables):
            if url.startswith(self.gateway_url):
                del direct_calls._tables[url]
        self.gateway.shutdown()
        self.peer.shutdown()


@pytest.fixture
def world(tmp_path: pathlib.Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def _call_all(world: World, x: int) -> tuple[int, int, str]:
    async def run() -> tuple[int, str]:
        got = await world.stubs["AsyncDep"].run_remote(x)
        streamed = "".join([c async for c in world.stubs["StreamDep"].run_remote(x)])
        return got, streamed

    got, streamed = world.loop.run_until_complete(run())
    return got, world.stubs["SyncDep"].run_remote(x), streamed


def test_with_peers_known_every_kind_of_stub_calls_a_peer_with_its_credential(
    world: World,
) -> None:
    world.peers(world.peer_address)
    assert _call_all(world, 4) == (5, 5, "444")
    assert world.gateway_hits == []
    assert [h["path"] for h in world.peer_hits] == ["/v1/models/model:predict"] * 3
    for hit in world.peer_hits:
        assert hit["headers"]["x-chainyard-replica-key"] == PEER_KEY
        # The chain key is the gateway's business only.
        assert "authorization" not in hit["headers"]
    # Every call's hold on the peer ended with it (the stream's once it was read).
    assert all(t.load(world.peer_address) == 0 for t in world.tables.values())
    assert all(t.in_flight == 0 for t in world.tables.values())


def test_without_peers_the_call_goes_through_the_gateway_with_the_chain_key(
    world: World,
) -> None:
    assert _call_all(world, 1) == (2, 2, "111")
    assert world.peer_hits == []
    assert len(world.gateway_hits) == 3
    for hit in world.gateway_hits:
        assert hit["headers"]["authorization"] == "Api-Key chain-key"
        assert hit["path"].endswith("/predict")


def test_a_peer_that_refuses_the_connection_falls_back_and_is_left_out_until_the_next_table(
    world: World,
) -> None:
    gone = f"http://127.0.0.1:{_closed_port()}"
    world.peers(gone)
    assert _call_all(world, 2) == (3, 3, "222")
    assert len(world.gateway_hits) == 3 and world.peer_hits == []
    # Left out: the next calls go straight to the gateway, without trying it again.
    assert all(t.pick() is None for t in world.tables.values())
    world.peers(world.peer_address)
    assert _call_all(world, 3) == (4, 4, "333")
    assert len(world.gateway_hits) == 3 and len(world.peer_hits) == 3


def test_turned_off_the_table_is_not_used(world: World) -> None:
    world.peers(world.peer_address)
    for table in world.tables.values():
        table.enabled = False
    assert _call_all(world, 1) == (2, 2, "111")
    assert world.peer_hits == [] and len(world.gateway_hits) == 3


def test_the_least_loaded_peer_is_chosen_and_equal_ones_take_turns() -> None:
    table = DependencyTable("Dep")
    table.update([Peer("http://a", "k"), Peer("http://b", "k")], "v1")
    first = table.pick()
    second = table.pick()
    assert first is not None and second is not None
    assert {first.peer.address, second.peer.address} == {"http://a", "http://b"}
    first.release()
    third = table.pick()
    assert third is not None and third.peer.address == first.peer.address
    # Releasing twice counts once.
    third.release()
    third.release()
    assert table.load(first.peer.address) == 0 and table.load(second.peer.address) == 1
    chosen = [table.pick() for _ in range(4)]
    loads = sorted(table.load(a) for a in ("http://a", "http://b"))
    assert all(c is not None for c in chosen) and loads == [2, 3]


def test_an_empty_table_or_every_peer_refused_leaves_the_call_to_the_gateway() -> None:
    table = DependencyTable("Dep")
    assert table.pick() is None
    table.update([Peer("http://a", "k")], "v1")
    lease = table.pick()
    assert lease is not None
    lease.refused()
    assert table.pick() is None and table.in_flight == 0
    table.update([Peer("http://a", "k")], "v2")
    assert table.pick() is not None


def test_the_report_is_the_time_weighted_mean_of_calls_in_flight() -> None:
    now = [0.0]
    table = DependencyTable("Dep", clock=lambda: now[0])
    woken: list[bool] = []
    table.on_busy = lambda: woken.append(True)
    table.update([Peer("http://a", "k")], "v1")
    assert table.take_report() == 0.0
    leases = [table.pick(), table.pick()]
    # The first call after an idle report wakes the poller, once.
    assert woken == [True]
    now[0] = 1.0
    lease = leases[0]
    assert lease is not None
    lease.release()
    now[0] = 2.0
    # Two calls for 1 s, one for 1 s: 1.5 on average, more than the one running now.
    assert table.take_report() == pytest.approx(1.5)
    now[0] = 4.0
    assert table.take_report() == pytest.approx(1.0)
    last = leases[1]
    assert last is not None
    last.release()
    now[0] = 5.0
    assert table.take_report() == 0.0
    table.pick()
    assert woken == [True, True]


def test_the_poll_url_is_the_gateway_route_s_sibling() -> None:
    assert (
        direct_calls.replicas_url("http://gw:1/internal/chainlets/abc/predict")
        == "http://gw:1/internal/chainlets/abc/replicas"
    )
    assert direct_calls.replicas_url("http://elsewhere/v1/models/x/predict") is None
    assert direct_calls.replicas_url("http://gw/internal/chainlets/abc/predict/x") is None


def test_a_stopping_server_answers_its_long_polls_at_once() -> None:
    """A poll that would wait an hour for a change answers when the server is told to stop:
    uvicorn's graceful shutdown waits for every request in flight."""
    from chainyard.gateway import direct

    async def main() -> tuple[list[tuple[str, str]], str]:
        never = asyncio.Event()

        async def changed(_since: int) -> int:
            await never.wait()
            return 1

        stopping = asyncio.Event()
        peers = [("http://127.0.0.1:1", "key")]
        poll = asyncio.ensure_future(
            direct.peers_changed(
                lambda: peers, lambda: 0, changed, direct.version(peers), 3600.0, stopping
            )
        )
        await asyncio.sleep(0.05)
        assert not poll.done()  # nothing changed: it holds
        stopping.set()
        return await asyncio.wait_for(poll, 60)

    peers, version = asyncio.run(main())
    assert peers == [("http://127.0.0.1:1", "key")]
    assert version
