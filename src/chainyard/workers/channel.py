"""The channel between the controller and its workers: JSON messages over a Unix socket, each
sent as a 4-byte length and the JSON text.

Every message is an object with a kind `t`. One that carries `ask` (a number) wants an answer:
the receiver's handler returns it, and it travels back as `{"t": "reply", "id": ask, "body": ...}`
(or `"error": text`). Messages are handled in the order they arrive, except asks, which each run in
a task of their own so that an ask may itself ask the other side (the controller gathering
metrics from the worker that asked for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("chainyard.workers")

_LENGTH = struct.Struct("!I")
# A replica table of tens of thousands of replicas fits; anything larger is a bug.
MAX_MESSAGE_BYTES = 256 * 2**20

Message = dict[str, Any]
Handler = Callable[["Peer", Message], Any]


class ChannelClosed(ConnectionError):
    pass


class Peer:
    """One end of a channel connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handle: Handler
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handle = handle
        self._asks = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self.closed = False
        # What the other side said of itself in its first message (a worker's number and pid).
        self.info: Message = {}

    def send(self, message: Message) -> None:
        """Queues `message` (on the event loop's thread); a closed channel drops it."""
        if self.closed:
            return
        data = json.dumps(message, separators=(",", ":")).encode()
        self._writer.write(_LENGTH.pack(len(data)) + data)

    def send_threadsafe(self, message: Message) -> None:
        """`send` from any thread (the store's watchers run in the committing one)."""
        self._loop.call_soon_threadsafe(self.send, message)

    async def ask(self, message: Message, timeout: float) -> Any:
        ask = next(self._asks)
        answer: asyncio.Future[Any] = self._loop.create_future()
        self._pending[ask] = answer
        try:
            self.send({**message, "ask": ask})
            return await asyncio.wait_for(answer, timeout)
        finally:
            self._pending.pop(ask, None)

    async def run(self) -> None:
        """Reads and handles messages until the other side closes the connection."""
        try:
            while True:
                try:
                    header = await self._reader.readexactly(_LENGTH.size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                (length,) = _LENGTH.unpack(header)
                if length > MAX_MESSAGE_BYTES:
                    log.error("channel message of %d bytes refused; closing", length)
                    return
                try:
                    message = json.loads(await self._reader.readexactly(length))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self._dispatch(message)
        finally:
            self.close()

    def _dispatch(self, message: Message) -> None:
        if message.get("t") == "reply":
            answer = self._pending.get(int(message.get("id", 0)))
            if answer is not None and not answer.done():
                if "error" in message:
                    answer.set_exception(RuntimeError(str(message["error"])))
                else:
                    answer.set_result(message.get("body"))
            return
        ask = message.get("ask")
        if ask is not None:
            task = asyncio.ensure_future(self._answer(int(ask), message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            result = self._handle(self, message)
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:
            log.exception("channel message %r failed", message.get("t"))

    async def _answer(self, ask: int, message: Message) -> None:
        try:
            body = self._handle(self, message)
            if isinstance(body, Awaitable):
                body = await body
            reply: Message = {"t": "reply", "id": ask, "body": body}
        except Exception as exc:
            log.exception("channel ask %r failed", message.get("t"))
            reply = {"t": "reply", "id": ask, "error": f"{type(exc).__name__}: {exc}"}
        self.send(reply)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(ChannelClosed("the channel closed"))
        with contextlib.suppress(Exception):
            self._writer.close()

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
