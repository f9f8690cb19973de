"""Fixtures shared by the whole suite.

`api` runs every API test twice: on SQLite and on a real PostgreSQL server that this test run
starts itself (one server per run, a fresh database per test).
"""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support import postgres
from tests.support.server import Api, fast_config


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres.running_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chainyard.db'}"
    admin: str = request.getfixturevalue("postgres_admin_url")
    return postgres.create_database(admin, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def make_api(database_url: str, tmp_path: pathlib.Path) -> Iterator[Any]:
    """Factory: `make_api(**config_overrides)` starts a server on this test's database."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Api:
        config = fast_config(
            data_dir=tmp_path / f"data{len(clients)}", database_url=database_url, **overrides
        )
        from chainyard.api.app import create_app

        client = TestClient(create_app(config))
        client.__enter__()
        clients.append(client)
        return Api(client=client, config=config)

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Any) -> Api:
    result: Api = make_api()
    return result
