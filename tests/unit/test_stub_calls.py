"""A dependency's async call keeps what truss's `predict_async` promises (chains/stub_calls.py):
`retries` attempts, `timeout_sec` raised as truss's TimeoutError, at most `concurrency_limit`
calls in flight, an error answer re-raised as truss re-raises it, arguments bound as the
dependency's signature binds them. Real stubs (built as a replica builds them) against a real
HTTP server in the test's loop, through the gateway route and straight to a peer."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from chainyard.chains import direct_calls, truss_compat
from chainyard.chains.dependency_table import DependencyTable, Peer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CHAIN = """
import truss_chains as chains


class Dep(chains.ChainletBase):
    async def run_remote(self, x: int, y: int = 10) -> int:
        return x + y


@chains.mark_entrypoint
class Caller(chains.ChainletBase):
    def __init__(self, dep: Dep = chains.depends(Dep)) -> None:
        self._dep = dep

    async def run_remote(self) -> int:
        return 0
"""


class Server:
    """Answers x + y (a stub sends every argument, defaults too, as truss's does), after
    `delay` seconds; the first `failures` requests get a 500 that is not truss's error format.
    Counts requests and the most in flight at once."""

    def __init__(self) -> None:
        self.failures = 0
        self.delay = 0.0
        self.error_body: dict[str, Any] | None = None
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if self.error_body is not None:
            return web.json_response(self.error_body, status=500)
        if self.failures:
            self.failures -= 1
            return web.Response(status=500, text="boom")
        return web.json_response(body["x"] + body["y"])

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture(autouse=True)
def chain(tmp_path: pathlib.Path) -> Iterator[None]:
    path = tmp_path / "stub_chain.py"
    path.write_text(CHAIN)
    with truss_compat.imported_chain(path):
        yield


Scenario = Callable[[Server, Callable[..., Any]], Awaitable[None]]


def run(scenario: Scenario) -> Server:
    """Runs `scenario(server, make_stub)` in a loop of its own, as a replica's; then closes what
    it opened."""
    server = Server()
    stubs: list[Any] = []

    def make_stub(*, peer: bool = False, **options: Any) -> Any:
        stub = _stub(server, peer=peer, **options)
        stubs.append(stub)
        return stub

    async def main() -> None:
        await server.start()
        try:
            await scenario(server, make_stub)
        finally:
            for stub in stubs:
                if stub._cached_async_client is not None:
                    await stub._cached_async_client[0].close()
            for url, table in list(direct_calls._tables.items()):
                if url.startswith(server.url):
                    del direct_calls._tables[url]
                    found = direct_calls._sessions.pop(table, None)
                    if found is not None:
                        await found[0].close()
            await server.stop()

    asyncio.run(main())
    return server


def _stub(server: Server, *, peer: bool, **options: Any) -> Any:
    from truss_chains import public_types

    url = f"{server.url}/internal/chainlets/dep/predict"
    cls = truss_compat.stub_class(truss_compat.find_descriptor("Dep"))
    stub = cls(
        public_types.DeployedServiceDescriptor(
            name="Dep",
            display_name="Dep",
            predict_url=url,
            options=public_types.RPCOptions(**options),
        ),
        api_key="chain-key",
    )
    if peer:
        table = DependencyTable("Dep")
        table.update([Peer(server.url, "peer-key")], "v1")
        direct_calls._tables[url] = table
    return stub


@pytest.mark.parametrize("peer", [False, True], ids=["gateway", "peer"])
def test_a_failed_call_is_retried_up_to_retries_attempts(peer: bool) -> None:
    async def scenario(server: Server, make_stub: Callable[..., Any]) -> None:
        stub = make_stub(peer=peer, retries=3)
        server.failures = 2
        assert await stub.run_remote(1) == 11
        assert len(server.bodies) == 3
        server.failures = 3
        with pytest.raises(ValueError, match="Dep"):
            await stub.run_remote(1)
        assert len(server.bodies) == 6

    run(scenario)


def test_without_retries_a_failed_call_is_tried_once() -> None:
    async def scenario(server: Server, make_stub: Callable[..., Any]) -> None:
        stub = make_stub()
        server.failures = 1
        with pytest.raises(ValueError):
            await stub.run_remote(1)
        assert len(server.bodies) == 1

    run(scenario)


@pytest.mark.parametrize("peer", [False, True], ids=["gateway", "peer"])
def test_a_call_past_timeout_sec_raises_truss_timeout_error(peer: bool) -> None:
    async def scenario(server: Server, make_stub: Callable[..., Any]) -> None:
        stub = make_stub(peer=peer, timeout_sec=0.2)
        server.delay = 2.0
        with pytest.raises(TimeoutError, match=r"Timeout calling remote Chainlet `Dep` \(0\.2 s"):
            await stub.run_remote(1)

    run(scenario)


@pytest.mark.parametrize("peer", [False, True], ids=["gateway", "peer"])
def test_no_more_than_concurrency_limit_calls_are_in_flight(peer: bool) -> None:
    async def scenario(server: Server, make_stub: Callable[..., Any]) -> None:
        stub = make_stub(peer=peer, concurrency_limit=2)
        server.delay = 0.05
        results = await asyncio.gather(*(stub.run_remote(i) for i in range(6)))
        assert results == [i + 10 for i in range(6)]

    assert run(scenario).most == 2


def test_a_remote_error_is_raised_as_truss_raises_it() -> None:
    from truss_chains import public_types

    async def scenario(server: Server, make_stub: Callable[..., Any]) -> None:
        stub = make_stub(peer=True)
        detail = public_types.RemoteErrorDetail(
            exception_cls_name="KeyError",
            exception_module_name=None,
            exception_message="'missing'",
            user_stack_trace=[],
        )
        server.error_body = {"error": json.loads(detail.model_dump_json())}
        with pytest.raises(Exception) as caught:
            await stub.run_remote(1)
        assert "KeyError" in str(caught.value) and "missing" in str(caught.value)

    run(scenario)


def test_arguments_are_bound_as_the_signature_binds_them() -> None:
    async def scenario(server: Server, make_stub: Callable[..., Any]) -> None:
        stub = make_stub()
        assert await stub.run_remote(1) == 11
        assert await stub.run_remote(1, 2) == 3
        assert await stub.run_remote(x=1, y=3) == 4
        assert await stub.run_remote(1, y=4) == 5
        assert await stub.run_remote(y=5, x=1) == 6
        with pytest.raises(TypeError):
            await stub.run_remote(1, x=2)
        with pytest.raises(TypeError):
            await stub.run_remote(1, z=2)
        with pytest.raises(TypeError):
            await stub.run_remote(1, 2, 3)

    server = run(scenario)
    assert server.bodies == [
        {"x": 1, "y": 10},
        {"x": 1, "y": 2},
        {"x": 1, "y": 3},
        {"x": 1, "y": 4},
        {"x": 1, "y": 5},
    ]
