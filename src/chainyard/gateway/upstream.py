"""One request from the gateway to a replica, and its answer, whichever client carries it.

A body the gateway holds whole (small, with a declared length: `gateway/bodies.py`) goes on the
data plane's keep-alive client (`chainyard/http_client.py`), which costs a fraction of aiohttp per
request; a streamed upload (large, or of unknown length) goes on aiohttp, which can send an async
iterable as it arrives. Both answers are read the same way (`Upstream`), and their failures fall
into the same kinds, so the router's decisions do not depend on the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp

from chainyard import http_client


class Upstream(Protocol):
    status: int

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class _AiohttpAnswer:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self) -> bytes:
        return await self._response.read()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    def release(self) -> None:
        self._response.release()


class Clients:
    """The gateway's two clients to replicas, opened and closed together."""

    def __init__(self, read_timeout: float) -> None:
        self.pool = http_client.Pool(read_timeout=read_timeout)
        # A bound on each wait for the replica (its answer, or the next chunk of a stream), not
        # on the whole exchange: an LLM's stream may well run longer than that.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=read_timeout),
        )

    async def post(
        self,
        url: str,
        body: bytes | Any,
        headers: dict[str, str],
        *,
        read_timeout: float | None = None,
    ) -> Upstream:
        """The answer's head. `body`: bytes, or an async iterable of chunks. `read_timeout`:
        a longer bound for this call's waits (a body held whole only)."""
        if isinstance(body, bytes):
            if read_timeout is not None:
                return await self.pool.open("POST", url, body, headers, read_timeout=read_timeout)
            return await self.pool.open("POST", url, body, headers)
        return _AiohttpAnswer(await self.session.post(url, data=body, headers=headers))

    async def close(self) -> None:
        self.pool.close()
        await self.session.close()


ConnectFailed = http_client.ConnectFailed


def not_delivered(exc: BaseException) -> bool:
    """No connection, or one the replica closed under us while the request went out: the
    replica did not take the request, so another one may."""
    return isinstance(exc, http_client.ConnectFailed | aiohttp.ClientOSError)


# The replica broke the exchange off (after the request was delivered, or mid-answer).
BROKEN = (aiohttp.ClientError, http_client.Disconnected)
