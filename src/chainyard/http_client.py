"""A small HTTP/1.1 client for the data plane: keep-alive connections to replicas, on the event
loop's own transports and httptools' parser (the parser uvicorn uses).

aiohttp's client builds a request object, a payload, a writer, a timer handle, a response object
and a stream reader per call, and runs its tracing hooks: for a small call to a replica on
loopback that was more CPU than the replica's whole answer. Here a call is one `write` of the
request and one parser pass over the answer, on a pooled connection.

What it does: a request with a bytes body; its answer read whole (`post`) or as it comes
(`open`, then `Answer.chunks`: a streamed answer, whose reading pauses while the reader lags);
Content-Length and chunked answers; keep-alive pooling per address (an idle connection is dropped
after `idle_seconds`, and whenever the server closes it); a bound on each wait for the answer.
What it does not: redirects, cookies, proxies, TLS, compressed answers, streamed request bodies.
Callers that need those use aiohttp.

Errors: `ConnectFailed` when no connection could be made (nothing was sent: another address may
take the call), `Disconnected` when the server closed the connection before the end of its answer
(`head` says whether the answer had begun), `TimeoutError` when a wait passed its bound. A
kept-alive connection that the server closed just as the request went out (no byte of an answer
came) is replaced, and the request sent once more: the server cannot have read it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

# A streamed answer's bytes buffered ahead of its reader before the connection stops reading.
HIGH_WATER = 2**20
LOW_WATER = 2**18


class ConnectFailed(OSError):
    """No connection: the request was not sent."""


class Disconnected(ConnectionError):
    """The server closed the connection before the end of its answer."""

    def __init__(self, message: str, *, head: bool) -> None:
        super().__init__(message)
        self.head = head


class Response:
    """An answer read whole."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Answer:
    """An answer whose head has come; its body is read whole (`read`) or as it comes (`chunks`).
    `release` hands the connection back (to the pool once the body is complete, else closed);
    call it whatever happens."""

    def __init__(
        self,
        connection: _Connection,
        pool: Pool,
        address: tuple[str, int],
        read_timeout: float | None = None,
    ) -> None:
        self._connection = connection
        self._pool = pool
        self._address = address
        self.read_timeout = read_timeout
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self.done = False
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    # -- fed by the connection -----------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._connection.pause_reading()
        self._wake()

    def _finish(self, error: Exception | None = None) -> None:
        if self.done:
            return
        self.done = True
        self.error = error
        self._wake()

    # -- read ----------------------------------------------------------------------------------

    async def _wait(self) -> None:
        self._waiter = self._connection.loop.create_future()
        limit = self.read_timeout
        if limit is None:
            await self._waiter
        else:
            async with asyncio.timeout(limit):
                await self._waiter

    def _take(self) -> bytes:
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered < LOW_WATER:
            self._paused = False
            self._connection.resume_reading()
        return data

    async def read(self) -> bytes:
        while not self.done:
            await self._wait()
        if self.error is not None:
            raise self.error
        data = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks.clear()
        self._buffered = 0
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                yield self._take()
            elif self.done:
                if self.error is not None:
                    raise self.error
                return
            else:
                await self._wait()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        connection = self._connection
        if self.done and self.error is None and not self._chunks and connection.reusable:
            self._pool._put_back(self._address, connection)
        else:
            connection.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[Answer] | None = None
        self._answer: Answer | None = None
        self._headers: dict[str, str] = {}

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"bad answer: {exc}")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(f"connection closed: {exc or 'by the server'}")

    # -- httptools' callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        answer = self._answer
        if answer is None:
            return
        answer.status = self._parser.get_status_code()
        answer.headers = self._headers
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(answer)

    def on_body(self, body: bytes) -> None:
        if self._answer is not None:
            self._answer._feed(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.reusable = False
        answer, self._answer = self._answer, None
        if answer is not None:
            answer._finish()

    # -- use -----------------------------------------------------------------------------------

    def send(
        self, data: bytes, pool: Pool, address: tuple[str, int], read_timeout: float | None
    ) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._headers = {}
        self._answer = Answer(self, pool, address, read_timeout)
        self._head = self.loop.create_future()
        self.transport.write(data)
        return self._head

    def _fail(self, message: str) -> None:
        self.reusable = False
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_exception(Disconnected(message, head=False))
            self._answer = None
            return
        answer, self._answer = self._answer, None
        if answer is not None:
            answer._finish(Disconnected(message, head=True))

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class _PoolDefault:
    """The pool's own `read_timeout` (a call may pass another, None included)."""


POOL_DEFAULT = _PoolDefault()


class Pool:
    """Keep-alive connections by address, for the event loop it is first used on.
    `read_timeout` bounds each wait for the answer (its head, then each part of its body)."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float | None = None,
        idle_seconds: float = 30.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_seconds = idle_seconds
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}
        self.closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        read_timeout: float | _PoolDefault | None = POOL_DEFAULT,
    ) -> Response:
        """The whole answer to a POST."""
        answer = await self.open("POST", url, body, headers, read_timeout=read_timeout)
        try:
            data = await answer.read()
        finally:
            answer.release()
        return Response(answer.status, answer.headers, data)

    async def open(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        read_timeout: float | _PoolDefault | None = POOL_DEFAULT,
    ) -> Answer:
        """The answer, once its head has come; release it when done with it. `read_timeout`:
        this call's bound on each wait, instead of the pool's."""
        limit = self.read_timeout if isinstance(read_timeout, _PoolDefault) else read_timeout
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs: {url!r}")
        address = (parts.hostname, parts.port or 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n{extra}"
            f"content-length: {len(body)}\r\n\r\n"
        )
        data = head.encode("latin-1") + body
        connection, reused = await self._connection(address)
        try:
            return await self._head(connection.send(data, self, address, limit), limit)
        except Disconnected:
            connection.close()
            if not reused:
                raise
        except BaseException:
            connection.close()
            raise
        # A kept-alive connection the server closed as the request went out: the request was not
        # read (no byte of an answer came). Once more, on a new connection.
        connection, _ = await self._connection(address, fresh=True)
        try:
            return await self._head(connection.send(data, self, address, limit), limit)
        except BaseException:
            connection.close()
            raise

    async def _head(self, head: asyncio.Future[Answer], limit: float | None) -> Answer:
        if limit is None:
            return await head
        async with asyncio.timeout(limit):
            return await head

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
