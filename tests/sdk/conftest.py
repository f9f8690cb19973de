"""One live server for the SDK tests; each test works on chains of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from chainyard.sdk import Client
from tests.sdk.live import LiveServer, serve


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(tmp_path_factory.mktemp("sdk-live"))


@pytest.fixture
def client(live: LiveServer) -> Iterator[Client]:
    with Client(live.url, live.key, timeout=30) as c:
        yield c


@pytest.fixture
def name() -> str:
    """A chain name no other test uses."""
    return f"c{uuid.uuid4().hex[:10]}"
