"""A chainlet's calls to its dependencies, straight to one of the dependency's replicas.

The gateway knows which replicas of the dependency are ready; the replica learns it by
long-polling `GET /internal/chainlets/{id}/replicas` with its chain key (one request outstanding
per dependency, in a thread of its own with its own event loop, which dies with the process).
The answer fills the dependency's `DependencyTable`; truss's stub then posts to the least-loaded
peer instead of the gateway's internal route. The gateway's route stays the fallback: with no
peer (a dependency at zero: the gateway wakes it and holds the call), or when a peer refuses the
connection (nothing was sent: the call goes once through the gateway, and the peer is left out
until the next table).

Each poll also reports the calls this replica had in flight to the dependency since the last
one, which the gateway adds to the dependency's demand (the autoscaler's input): calls that went
through the gateway are counted there and not here.

How the stub is routed (chains/truss_compat.py::stub_class): truss's `predict_*` methods post to
`self._target_url` with the client that `_client_async()` / `_client_sync()` yield. The stub
overrides those two to yield the same client wrapped: a post to the target URL goes to a peer
with the peer's credential (`replica_auth.HEADER`) on a client of ours, which carries no chain
key; anything else goes on to truss's client unchanged. tests/unit/test_direct_calls.py pins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random
import threading
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

from chainyard import replica_auth
from chainyard.chains.dependency_table import DependencyTable, Lease, Peer

log = logging.getLogger("chainyard.replica")

REPLICA_KEY_HEADER = replica_auth.HEADER
# How long the gateway may hold a poll: long while no call is in flight (the table changes
# within a round trip of the gateway's anyway), short while calls run, so that their demand
# reaches the autoscaler within a second.
IDLE_WAIT = 25.0
BUSY_WAIT = 1.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 15.0
# Set to 0 in a replica's environment to call through the gateway only.
ENV_SWITCH = "CHAINYARD_DIRECT_DEPENDENCY_CALLS"

# Gateway predict URL of a dependency -> its table, in this replica process.
_tables: dict[str, DependencyTable] = {}
# Leases taken by posts that hand a streaming response back; released when the stream ends.
_stream_leases: contextvars.ContextVar[list[Lease] | None] = contextvars.ContextVar(
    "chainyard_stream_leases", default=None
)


def table_for(target_url: str) -> DependencyTable | None:
    return _tables.get(target_url)


def replicas_url(predict_url: str) -> str | None:
    """The poll URL of the dependency whose gateway route is `predict_url`; None for a URL that
    is not the gateway's internal route."""
    head, sep, tail = predict_url.rpartition("/predict")
    if not sep or tail or "/internal/chainlets/" not in head:
        return None
    return f"{head}/replicas"


# -- the stub's clients -------------------------------------------------------------------------


def with_key(kwargs: dict[str, Any], peer: Peer) -> dict[str, Any]:
    headers = dict(kwargs.get("headers") or {})
    headers[REPLICA_KEY_HEADER] = peer.key
    return {**kwargs, "headers": headers}


class RoutedAsyncClient:
    """truss's aiohttp session, with its posts to the dependency sent to a peer."""

    def __init__(self, gateway: Any, table: DependencyTable, target_url: str, timeout: float):
        self._gateway = gateway
        self._table = table
        self._target_url = target_url
        self._timeout = timeout

    def post(self, url: str, **kwargs: Any) -> _AsyncPost:
        return _AsyncPost(self, url, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)

    async def send(self, url: str, kwargs: dict[str, Any]) -> tuple[Any, Any, Lease | None]:
        """(context manager of the request, its response, the lease on the peer if any)."""
        import aiohttp

        lease = self._table.pick() if url == self._target_url else None
        if lease is not None:
            session = peer_session(self._table, self._timeout)
            if session is None:
                lease.release()
            else:
                request = session.post(lease.peer.predict_url, **with_key(kwargs, lease.peer))
                try:
                    return request, await request.__aenter__(), lease
                except aiohttp.ClientConnectorError:
                    lease.refused()
                except BaseException:
                    lease.release()
                    raise
        request = self._gateway.post(url, **kwargs)
        return request, await request.__aenter__(), None


class _AsyncPost:
    """What `session.post(...)` returns: used as `async with` (an answer read whole) or awaited
    (a stream, read by chains/streaming.py::relay_dependency_stream)."""

    def __init__(self, client: RoutedAsyncClient, url: str, kwargs: dict[str, Any]) -> None:
        self._client = client
        self._url = url
        self._kwargs = kwargs
        self._request: Any = None
        self._lease: Lease | None = None

    async def __aenter__(self) -> Any:
        self._request, response, self._lease = await self._client.send(self._url, self._kwargs)
        return response

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._request.__aexit__(*exc)
        finally:
            if self._lease is not None:
                self._lease.release()

    def __await__(self) -> Any:
        return self._awaited().__await__()

    async def _awaited(self) -> Any:
        _, response, lease = await self._client.send(self._url, self._kwargs)
        if lease is not None:
            holder = _stream_leases.get()
            if holder is None:
                lease.release()  # nobody will say when the stream ends: count it until now
            else:
                holder.append(lease)
        return response


@contextlib.contextmanager
def stream_leases() -> Iterator[list[Lease]]:
    """Around the awaiting of a streaming call (not the reading of its stream, which may span
    several steps of a generator): collects the lease of the peer that answers, which the
    caller releases once it has read the stream."""
    holder: list[Lease] = []
    token = _stream_leases.set(holder)
    try:
        yield holder
    finally:
        _stream_leases.reset(token)


class RoutedSyncClient:
    """truss's httpx client, with its posts to the dependency sent to a peer."""

    def __init__(self, gateway: Any, table: DependencyTable, target_url: str, timeout: float):
        self._gateway = gateway
        self._table = table
        self._target_url = target_url
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)

    def post(self, url: str, **kwargs: Any) -> Any:
        import httpx

        lease = self._table.pick() if url == self._target_url else None
        if lease is not None:
            try:
                return _peer_client(self._table, self._timeout).post(
                    lease.peer.predict_url, **with_key(kwargs, lease.peer)
                )
            except httpx.ConnectError:
                lease.refused()
            finally:
                lease.release()
        return self._gateway.post(url, **kwargs)


# Clients of our own for peers: they carry no chain key (truss's carry it in every request).
_sessions: weakref.WeakKeyDictionary[DependencyTable, tuple[Any, Any]] = weakref.WeakKeyDictionary()
_sync_clients: weakref.WeakKeyDictionary[DependencyTable, Any] = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def peer_session(table: DependencyTable, timeout: float) -> Any:
    """An aiohttp session of the running loop for `table`'s peers (None off the loop it was made
    on: such a call goes through the gateway)."""
    import aiohttp

    loop = asyncio.get_running_loop()
    found = _sessions.get(table)
    if found is not None:
        session, made_on = found
        return session if made_on is loop and not session.closed else None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )
    _sessions[table] = (session, loop)
    return session


_pools: weakref.WeakKeyDictionary[DependencyTable, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def peer_pool(table: DependencyTable, timeout: float) -> Any:
    """A pool of keep-alive connections (chainyard/http_client.py) of the running loop for
    `table`'s peers, for calls whose answer is read whole (None off the loop it was made on)."""
    from chainyard import http_client

    loop = asyncio.get_running_loop()
    found = _pools.get(table)
    if found is not None:
        pool, made_on = found
        return pool if made_on is loop and not pool.closed else None
    pool = http_client.Pool(read_timeout=timeout)
    _pools[table] = (pool, loop)
    return pool


def _peer_client(table: DependencyTable, timeout: float) -> Any:
    import httpx

    client = _sync_clients.get(table)
    if client is None:
        with _clients_lock:
            client = _sync_clients.get(table)
            if client is None:
                client = httpx.Client(
                    timeout=timeout,
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=50),
                )
                _sync_clients[table] = client
    return client


# -- keeping the tables fresh ---------------------------------------------------------------------


def enabled_here() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def install(service_urls: dict[str, str], chain_api_key: str) -> dict[str, DependencyTable]:
    """Tables for the dependencies at `service_urls` (by name), registered for their stubs, and
    a daemon thread that keeps them fresh. Nothing when turned off or without a chain key."""
    if not chain_api_key or not enabled_here():
        return {}
    tables: dict[str, DependencyTable] = {}
    polls: list[tuple[DependencyTable, str]] = []
    for name, predict_url in service_urls.items():
        url = replicas_url(predict_url)
        if url is None:
            continue
        table = DependencyTable(name)
        _tables[predict_url] = table
        tables[name] = table
        polls.append((table, url))
    if polls:
        thread = threading.Thread(
            target=_run_polls,
            args=(polls, chain_api_key),
            name="chainyard-dependency-tables",
            daemon=True,
        )
        thread.start()
    return tables


def _run_polls(polls: list[tuple[DependencyTable, str]], chain_api_key: str) -> None:
    asyncio.run(_poll_all(polls, chain_api_key))


async def _poll_all(polls: list[tuple[DependencyTable, str]], chain_api_key: str) -> None:
    import aiohttp

    caller = uuid.uuid4().hex
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Api-Key {chain_api_key}"},
        connector=aiohttp.TCPConnector(limit=0),
    ) as session:
        await asyncio.gather(*(Poller(table, url, session, caller).run() for table, url in polls))


class Poller:
    """Keeps one table fresh: one poll outstanding, restarted at once when a call begins after
    an idle report (its demand must not wait for the end of the idle poll)."""

    def __init__(self, table: DependencyTable, url: str, session: Any, caller: str) -> None:
        self.table = table
        self.url = url
        self.session = session
        self.caller = caller
        self._busy = asyncio.Event()
        loop = asyncio.get_running_loop()

        def busy() -> None:
            loop.call_soon_threadsafe(self._busy.set)

        table.on_busy = busy

    async def run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                pause = await self.poll_once()
                backoff = BACKOFF_MIN
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("polling the replicas of %s failed: %s", self.table.name, exc)
                pause = backoff
                backoff = min(BACKOFF_MAX, backoff * 2)
            if pause:
                await asyncio.sleep(pause * (0.5 + random.random() / 2))

    async def poll_once(self) -> float:
        """One poll; the pause before the next one."""
        import aiohttp

        load = self.table.take_report()
        wait = BUSY_WAIT if load > 0 or self.table.in_flight else IDLE_WAIT
        self._busy.clear()
        params = {
            "since": self.table.version,
            "wait": f"{wait:g}",
            "caller": self.caller,
            "load": f"{load:.3f}",
        }
        request = asyncio.ensure_future(self._get(params, wait))
        woken = asyncio.ensure_future(self._busy.wait())
        try:
            done, _ = await asyncio.wait((request, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        if request not in done:
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await request
            return 0.0
        status, body = request.result()
        if status in (401, 403, 404):
            # Not ours to call (any more): through the gateway, which answers why.
            self.table.update((), "")
            return BACKOFF_MAX
        if status != 200:
            raise RuntimeError(f"status {status}")
        if not body.get("enabled", True):
            self.table.update((), "")
            return 60.0
        peers = [Peer(str(p["address"]), str(p["key"])) for p in body.get("replicas") or ()]
        if body.get("version") != self.table.version:
            self.table.update(peers, str(body.get("version") or ""))
        return 0.0

    async def _get(self, params: dict[str, str], wait: float) -> tuple[int, dict[str, Any]]:
        import aiohttp

        async with self.session.get(
            self.url, params=params, timeout=aiohttp.ClientTimeout(total=wait + 15)
        ) as response:
            if response.status != 200:
                return response.status, {}
            body = await response.json()
            return 200, body if isinstance(body, dict) else {}
