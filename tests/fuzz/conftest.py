"""The server under fuzz, with echoing replicas and chains to aim at (tests/fuzz/harness.py).

CHAINYARD_FUZZ_DATABASE picks its store: `sqlite` (the default, in a temp dir) or `postgres` (a
fresh database on the server the test session starts, as the API tests use).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import uuid
from collections.abc import Iterator

import httpx
import pytest

from chainyard.gateway import routes as gateway_routes
from tests.fuzz.harness import EchoServer, LiveServer, World, openapi_document
from tests.support import postgres

# A run_remote with no ready replica waits for one; a fuzz request must not wait two minutes.
WAKE_TIMEOUT = 10.0

# Hypothesis keeps caches in ./.hypothesis unless told otherwise (its example database is off, see
# the test module); the checkout is no place for them.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY",
    str(pathlib.Path(tempfile.gettempdir()) / "chainyard-fuzz-hypothesis"),
)


@pytest.fixture(scope="session")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("fuzz")
    database = os.environ.get("CHAINYARD_FUZZ_DATABASE", "sqlite")
    if database == "sqlite":
        url = f"sqlite:///{tmp / 'chainyard.db'}"
    elif database == "postgres":
        admin: str = request.getfixturevalue("postgres_admin_url")
        url = postgres.create_database(admin, f"fuzz_{uuid.uuid4().hex[:12]}")
    else:
        raise ValueError(f"CHAINYARD_FUZZ_DATABASE must be sqlite or postgres, not {database!r}")
    echo = EchoServer()
    echo.start()
    server = LiveServer(tmp / "data", url, echo.url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway_routes, "WAKE_TIMEOUT", WAKE_TIMEOUT)
        server.start()
        try:
            yield server
        finally:
            server.stop()
            echo.stop()


@pytest.fixture(scope="session")
def world(live: LiveServer) -> Iterator[World]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        # What the tests were generated from is what the server publishes.
        assert client.get("/openapi.json").json() == openapi_document()
        world = World(client)
        world.seed()
        yield world
