"""Fixtures shared by the whole suite.

`api` runs every API test twice: on SQLite and on a real PostgreSQL server that this test run
starts itself (one server per run, a fresh database per test).
"""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support import postgres
from tests.support.server import Api, fast_config


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`chainyard serve` leaves a record per port in the user's cache dir, which the CLI reads
    to find a local server's key (cli/local_server.py): the tests' servers must neither read a
    developer's records nor leave theirs behind."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres.running_server() as url:
        yield url


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A two-node Ray cluster on this machine (head + a node with an A10G), for the whole run."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from tests.support.ray_cluster import running_cluster

    with running_cluster() as cluster:
        yield cluster


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
        from chainyard.server import create_app

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


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """One server per database for a whole test module (server start-up dominates otherwise);
    tests using it work on chains of their own."""
    from chainyard.server import create_app

    tmp: pathlib.Path = tmp_path_factory.mktemp("shared")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'chainyard.db'}"
    else:
        admin: str = request.getfixturevalue("postgres_admin_url")
        url = postgres.create_database(admin, f"t_{uuid.uuid4().hex[:12]}")
    config = fast_config(data_dir=tmp / "data", database_url=url, reconcile_interval=0.02)
    with TestClient(create_app(config)) as client:
        yield Api(client=client, config=config)
