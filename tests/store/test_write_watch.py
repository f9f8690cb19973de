"""`Database.watch`: called after a committed write to a watched table, whatever built the
statement, and never for a rollback, a read, or a write to other tables."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from chainyard.store.db import Database, written_tables
from chainyard.store.workspaces import Workspace


def test_the_tables_a_statement_writes_are_read_off_its_text() -> None:
    assert written_tables('UPDATE "environments" SET x=1') == {"environments"}
    assert written_tables("INSERT INTO chains (id) VALUES (?)") == {"chains"}
    assert written_tables("delete from chain_deployments where id = ?") == {"chain_deployments"}
    # store/batch.py's shape: CTEs in front of the last statement.
    cte = "WITH w0 AS (UPDATE chainlets SET a=1 RETURNING 1) INSERT INTO audit_logs (a) SELECT 1"
    assert written_tables(cte) == {"chainlets", "audit_logs"}
    assert written_tables("SELECT * FROM environments FOR UPDATE") == frozenset()


def test_watchers_run_after_commits_that_wrote_their_tables(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    calls: list[list[str]] = []

    def seen() -> None:
        # The change can be read once the watcher runs (a cache dropped earlier could be filled
        # again with the old rows).
        with db.read() as session:
            calls.append(list(session.scalars(select(Workspace.name).order_by(Workspace.name))))

    db.watch(frozenset({"workspaces"}), seen)
    others: list[int] = []
    db.watch(frozenset({"chains"}), lambda: others.append(1))
    try:
        with db.write() as session:
            session.add(Workspace(id="ws000001", name="first"))
            assert calls == []
        assert calls == [["first"]]

        with pytest.raises(RuntimeError), db.write() as session:
            session.add(Workspace(id="ws000002", name="second"))
            session.flush()
            raise RuntimeError("rolled back")
        assert len(calls) == 1

        with db.read() as session:
            list(session.scalars(select(Workspace)))
        assert len(calls) == 1

        # A bulk UPDATE, not the ORM's flush.
        with db.write() as session:
            session.execute(update(Workspace).values(name="renamed"))
        assert calls[-1] == ["renamed"]
        assert others == []
    finally:
        db.dispose()
