"""Callbacks queued on a write transaction run after its commit, and not after a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from chainyard.store.db import Database, after_commit
from chainyard.store.workspaces import Workspace


def test_a_callback_runs_after_the_commit_and_sees_the_change(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    seen: list[list[str]] = []

    def look() -> None:
        # From another session, as the reconciler's thread would look.
        with db.read() as session:
            seen.append(list(session.scalars(select(Workspace.name))))

    try:
        with db.write() as session:
            session.add(Workspace(id="ws000001", name="first"))
            after_commit(session, look)
            assert seen == []  # not yet: still inside the transaction
        assert seen == [["first"]]

        with pytest.raises(RuntimeError), db.write() as session:
            session.add(Workspace(id="ws000002", name="second"))
            after_commit(session, look)
            raise RuntimeError("rolled back")
        assert seen == [["first"]]  # the rolled-back transaction called nothing

        with db.write() as session:
            session.add(Workspace(id="ws000003", name="third"))
        assert seen == [["first"]]  # nothing queued: nothing called
    finally:
        db.dispose()
