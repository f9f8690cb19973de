"""A small HTTP/1.1 client for the data plane: keep-alive connections to replicas, on the event
loop's own transports and httptools' parser (the parser uvicorn uses).

aiohttp's client builds a request object, a payload, a writer, a timer handle, a response object
and a stream reader per call, and runs its tracing hooks: for a small call to a replica on
loopback that was more CPU than the replica's whole answer. Here a call is one `write` of the
request and one parser pass over the answer, on a pooled connection.

What it does: POST/GET with a bytes body, answers with a Content-Length or chunked body read
whole, keep-alive pooling per address (idle connections are dropped after `idle_seconds`, and
whenever the server closes them), a bound on the wait for each read. What it does not: redirects,
cookies, proxies, TLS, compressed answers, streamed request bodies. Callers that need those use
aiohttp.

Errors: `ConnectFailed` when no connection could be made (nothing was sent: another address may
take the call), `Disconnected` when the server closed the connection before its whole answer
(`head` says whether the answer had begun), `TimeoutError` when a read waited past the bound.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import httptools


class ConnectFailed(OSError):
    """No connection: the request was not sent."""


class Disconnected(ConnectionError):
    """The server closed the connection before the end of its answer."""

    def __init__(self, message: str, *, head: bool) -> None:
        super().__init__(message)
        self.head = head


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._head = False
        self._status = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Disconnected(f"bad answer: {exc}", head=self._head))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(Disconnected(f"connection closed: {exc or 'by the server'}", head=self._head))

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._head = True
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = self._answer
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        response = Response(self._status, self._headers, body)
        if not self._parser.should_keep_alive():
            self.close()
        self._answer = None
        if answer is not None and not answer.done():
            answer.set_result(response)

    # -- use -------------------------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._headers = {}
        self._body = []
        self._head = False
        self._answer = self._loop.create_future()
        self.transport.write(data)
        return self._answer

    def _fail(self, exc: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections by address, for the event loop it is first used on."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float | None = None,
        idle_seconds: float = 30.0,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_seconds = idle_seconds
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Response:
        return await self.request("POST", url, body, headers, timeout=timeout)

    async def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Response:
        """The whole answer. `timeout` bounds the wait for it (default: the pool's
        `read_timeout`), not the connect."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs: {url!r}")
        address = (parts.hostname, parts.port or 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n{self._fixed}{extra}"
            f"content-length: {len(body)}\r\n\r\n"
        )
        data = head.encode("latin-1") + body
        connection, reused = await self._connection(address)
        try:
            answer = connection.send(data)
            limit = self.read_timeout if timeout is None else timeout
            if limit is None:
                response = await answer
            else:
                async with asyncio.timeout(limit):
                    response = await answer
        except Disconnected as exc:
            connection.close()
            if reused and not exc.head:
                # A kept-alive connection the server had closed as we sent on it: the request
                # was not read. Once more, on a new connection.
                connection, _ = await self._connection(address, fresh=True)
                try:
                    response = await asyncio.wait_for(connection.send(data), self.read_timeout)
                except BaseException:
                    connection.close()
                    raise
            else:
                raise
        except BaseException:
            connection.close()
            raise
        self._put_back(address, connection)
        return response

    async def _connection(
        self, address: tuple[str, int], *, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        if self.closed:
            raise RuntimeError("the pool is closed")
        idle = self._idle.get(address)
        now = time.monotonic()
        while idle and not fresh:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_seconds:
                return connection, True
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(loop), address[0], address[1]
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {address[0]}:{address[1]}: {exc}") from exc
        return protocol, False

    def _put_back(self, address: tuple[str, int], connection: _Connection) -> None:
        if connection.closed or self.closed:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(address, collections.deque()).append(connection)

    def close(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def idle_count(self, address: tuple[str, int] | None = None) -> int:
        if address is not None:
            return len(self._idle.get(address, ()))
        return sum(len(v) for v in self._idle.values())

    def __repr__(self) -> str:
        return f"Pool(idle={self.idle_count()})"
