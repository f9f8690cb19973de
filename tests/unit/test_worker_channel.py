"""The controller-worker channel (workers/channel.py) over a real socket pair."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from chainyard.workers.channel import ChannelClosed, Message, Peer


async def _pair(left: Any, right: Any) -> tuple[Peer, Peer, list[asyncio.Task[None]]]:
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_unix_connection(sock=a)
    rb, wb = await asyncio.open_unix_connection(sock=b)
    pa, pb = Peer(ra, wa, left), Peer(rb, wb, right)
    return pa, pb, [asyncio.create_task(pa.run()), asyncio.create_task(pb.run())]


def test_messages_arrive_in_order_and_asks_get_their_answers() -> None:
    async def main() -> None:
        seen: list[Message] = []

        def right(_peer: Peer, message: Message) -> Any:
            if message["t"] == "double":
                return message["n"] * 2
            seen.append(message)
            return None

        left, _right, tasks = await _pair(lambda p, m: None, right)
        for n in range(100):
            left.send({"t": "note", "n": n})
        assert await left.ask({"t": "double", "n": 21}, timeout=5) == 42
        # The ask was sent after the notes, and handled after them.
        assert [m["n"] for m in seen] == list(range(100))
        left.close()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_an_ask_may_ask_the_other_side_back() -> None:
    """The controller gathers metrics from the very worker that asked for them."""

    async def main() -> None:
        def worker(_peer: Peer, message: Message) -> Any:
            return {"mine": 1} if message["t"] == "collect" else None

        async def gather(peer: Peer) -> Any:
            theirs = await peer.ask({"t": "collect"}, timeout=5)
            return {**theirs, "controller": 2}

        def controller(peer: Peer, message: Message) -> Any:
            return gather(peer) if message["t"] == "scrape" else None

        left, _right, tasks = await _pair(worker, controller)
        assert await left.ask({"t": "scrape"}, timeout=5) == {"mine": 1, "controller": 2}
        left.close()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_a_failing_handler_answers_an_error_and_the_channel_goes_on() -> None:
    async def main() -> None:
        def right(_peer: Peer, message: Message) -> Any:
            if message["t"] == "boom":
                raise ValueError("no such thing")
            return "fine"

        left, _right, tasks = await _pair(lambda p, m: None, right)
        with pytest.raises(RuntimeError, match="no such thing"):
            await left.ask({"t": "boom"}, timeout=5)
        assert await left.ask({"t": "other"}, timeout=5) == "fine"
        left.close()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_a_closed_channel_fails_what_waits_on_it() -> None:
    async def main() -> None:
        never = asyncio.Event()

        async def stall() -> None:
            await never.wait()

        left, right, tasks = await _pair(lambda p, m: None, lambda p, m: stall())
        waiting = asyncio.create_task(left.ask({"t": "slow"}, timeout=30))
        await asyncio.sleep(0.05)
        right.close()  # the other process went away
        with pytest.raises(ChannelClosed):
            await waiting
        await asyncio.gather(*tasks)
        # Sending on a closed channel drops the message instead of raising.
        left.send({"t": "late"})

    asyncio.run(main())
