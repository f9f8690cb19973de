"""The data plane's keep-alive client (chainyard/http_client.py) against raw servers that answer
byte for byte what a test wants: pooling, both body framings, a kept-alive connection the server
closed, refusal, timeouts, garbage."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from chainyard import http_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def run(handler: Handler, scenario: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await scenario(f"http://127.0.0.1:{port}")
        finally:
            server.close()

    asyncio.run(main())


def test_answers_are_read_whole_and_connections_are_kept_alive() -> None:
    connections: list[int] = []
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                head, body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            seen.append(head + body)
            writer.write(_ok(b"echo:" + body, b"content-type: application/json\r\n"))
            await writer.drain()

    async def scenario(url: str) -> None:
        pool = http_client.Pool()
        for i in range(3):
            answer = await pool.post(f"{url}/v1/models/model:predict", b"%d" % i, {"x-k": "v"})
            assert (answer.status, answer.body) == (200, b"echo:%d" % i)
            assert answer.headers["content-type"] == "application/json"
        pool.close()

    run(handler, scenario)
    assert len(connections) == 1
    assert seen[0].startswith(b"POST /v1/models/model:predict HTTP/1.1\r\n")
    assert b"\r\nx-k: v\r\n" in seen[0] and seen[0].endswith(b"\r\n\r\n0")


def test_a_chunked_answer_and_an_error_status_come_back_as_sent() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        await writer.drain()

    async def scenario(url: str) -> None:
        pool = http_client.Pool()
        answer = await pool.post(url, b"")
        assert (answer.status, answer.body) == (500, b"abcdefg")
        pool.close()

    run(handler, scenario)


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_losing_the_call() -> None:
    answered: list[int] = []
    dropped: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The first connection answers once, then closes as the next request arrives (a server
        # ending an idle keep-alive connection just as the client sends on it).
        first = not answered
        await _read_request(reader)
        answered.append(1)
        writer.write(_ok(b"fine"))
        await writer.drain()
        if first:
            await _read_request(reader)
            dropped.append(1)
            writer.close()

    async def scenario(url: str) -> None:
        pool = http_client.Pool()
        assert (await pool.post(url, b"")).body == b"fine"
        assert (await pool.post(url, b"")).body == b"fine"
        pool.close()

    run(handler, scenario)
    assert (len(answered), len(dropped)) == (2, 1)


def test_connection_close_is_honoured() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_ok(b"bye", b"connection: close\r\n"))
        await writer.drain()

    async def scenario(url: str) -> None:
        pool = http_client.Pool()
        assert (await pool.post(url, b"")).body == b"bye"
        assert pool.idle_count() == 0
        pool.close()

    run(handler, scenario)


def test_a_refused_connection_is_connect_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        pool = http_client.Pool()
        with pytest.raises(http_client.ConnectFailed):
            await pool.post(f"http://127.0.0.1:{port}/", b"")

    asyncio.run(main())


def test_a_late_answer_is_a_timeout_and_a_cut_one_a_disconnect() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _read_request(reader)
        if b"/slow" in head:
            await asyncio.sleep(5)
        elif b"/cut" in head:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            await writer.drain()
            writer.close()
        else:
            writer.write(b"this is not HTTP\r\n\r\n")
            await writer.drain()

    async def scenario(url: str) -> None:
        pool = http_client.Pool(read_timeout=0.2)
        with pytest.raises(TimeoutError):
            await pool.post(f"{url}/slow", b"")
        with pytest.raises(http_client.Disconnected) as cut:
            await pool.post(f"{url}/cut", b"")
        assert cut.value.head  # the answer had begun: not a request to send again
        with pytest.raises(http_client.Disconnected):
            await pool.post(f"{url}/garbage", b"")
        assert pool.idle_count() == 0
        pool.close()

    run(handler, scenario)


def test_a_call_may_wait_longer_than_the_pools_bound() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            await asyncio.sleep(0.3)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nlate!")
            await writer.drain()

    async def scenario(url: str) -> None:
        pool = http_client.Pool(read_timeout=0.1)
        with pytest.raises(TimeoutError):
            await pool.post(f"{url}/a", b"")
        # The async runner's calls may run for an hour where a sync call may not.
        answer = await pool.post(f"{url}/b", b"", read_timeout=5.0)
        assert (answer.status, answer.body) == (200, b"late!")
        pool.close()

    run(handler, scenario)


def test_a_streamed_answer_comes_part_by_part_and_its_connection_is_reused_after() -> None:
    connections: list[int] = []
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                head, _ = await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if b"/stream" in head:
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n")
                await writer.drain()
                await go.wait()
                writer.write(b"2\r\ncd\r\n0\r\n\r\n")
            else:
                writer.write(_ok(b"plain"))
            await writer.drain()

    async def scenario(url: str) -> None:
        pool = http_client.Pool(read_timeout=5)
        answer = await pool.open("POST", f"{url}/stream")
        assert answer.status == 200 and not answer.done  # the head came before the body ended
        parts = answer.chunks()
        assert await parts.__anext__() == b"ab"
        go.set()
        assert [p async for p in parts] == [b"cd"]
        answer.release()
        assert (await pool.post(f"{url}/plain", b"")).body == b"plain"
        # An answer released before its end takes its connection with it.
        go.clear()
        unread = await pool.open("POST", f"{url}/stream")
        unread.release()
        assert pool.idle_count() == 0
        go.set()
        assert (await pool.post(f"{url}/plain", b"")).body == b"plain"
        pool.close()

    run(handler, scenario)
    assert len(connections) == 2  # the second after the unread answer, not before
