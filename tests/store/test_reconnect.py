"""A pooled PostgreSQL connection that the server dropped is replaced, not reported as an error;
one in steady use is not pinged before every transaction."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text

from chainyard.store import db as db_module
from chainyard.store.db import Database
from tests.support import postgres

pytestmark = pytest.mark.postgres


def test_dropped_connections_are_replaced(
    postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database(postgres_admin_url, f"reconnect_{uuid.uuid4().hex[:8]}")
    database = Database(url)
    try:
        with database.read() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        # The server ends every session of this database (as a restart would).
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        # Idle long enough to be checked: the stale connection is found and replaced.
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        with database.read() as session:
            assert session.execute(text("SELECT 2")).scalar() == 2
    finally:
        database.dispose()


def test_a_connection_in_steady_use_is_not_pinged(
    postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database(postgres_admin_url, f"noping_{uuid.uuid4().hex[:8]}")
    pings: list[object] = []
    real_ping = db_module._ping

    def counting_ping(dbapi_conn: object) -> None:
        pings.append(dbapi_conn)
        real_ping(dbapi_conn)

    monkeypatch.setattr(db_module, "_ping", counting_ping)
    database = Database(url)
    try:
        for _ in range(5):
            with database.read() as session:
                session.execute(text("SELECT 42"))
        # Only the first checkout of the new connection is checked.
        assert len(pings) <= 1
        before = len(pings)
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        with database.read() as session:
            session.execute(text("SELECT 42"))
        assert len(pings) == before + 1
    finally:
        database.dispose()
