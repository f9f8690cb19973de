"""`store.batch.write_together`: a transaction's rows written together (one statement on
PostgreSQL), with the same result as the ORM's flush, and nothing written twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from chainyard.store.audit_logs import AuditLog
from chainyard.store.base import utcnow
from chainyard.store.batch import write_together
from chainyard.store.chains import Chain, ChainDeployment, Chainlet
from chainyard.store.db import Database
from chainyard.store.workspaces import Workspace


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        session.add(Workspace(id="ws000001", name="default"))
        session.flush()
        session.add(Chain(id="chain001", workspace_id="ws000001", name="first"))
        session.add(Chain(id="chain002", workspace_id="ws000001", name="second"))
    yield database
    database.dispose()


def _statements(database: Database) -> list[str]:
    seen: list[str] = []

    @event.listens_for(database.engine, "before_cursor_execute")
    def _seen(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split()[0].upper())

    return seen


def _deployment(deployment_id: str) -> ChainDeployment:
    deployment = ChainDeployment(
        id=deployment_id, chain_id="chain001", name="d", status="BUILDING", entrypoint="A"
    )
    for position, name in enumerate(("A", "B")):
        deployment.chainlets.append(
            Chainlet(
                id=f"{deployment_id}c{position}",
                chain_deployment_id=deployment_id,
                name=name,
                position=position,
                instance_type_id="1x2",
                status="BUILDING",
                desired_replicas=1,
            )
        )
    return deployment


def _audit_row(n: int) -> dict[str, Any]:
    return {
        "id": f"audit{n:07d}",
        "workspace_id": "ws000001",
        "chain_id": "chain001",
        "created_at": utcnow(),
        "event_type": "CHAIN_DEPLOYED",
        "event_data": {"n": n},
        "source": "API",
        "actor_type": "API_KEY",
        "actor_key_prefix": "p",
        "actor_key_name": None,
        "environment_name": None,
        "chain_deployment_id": None,
    }


def test_inserts_updates_and_rows_land_as_the_orm_would_write_them(db: Database) -> None:
    seen = _statements(db)
    with db.write() as session:
        other = session.get(Chain, "chain002")
        assert other is not None
        other.name = "renamed"
        new = _deployment("dep00001")
        rows = [_audit_row(n) for n in (1, 2)]
        seen.clear()
        write_together(session, [new, *new.chainlets], [(AuditLog, rows)])
        written = list(seen)
        # Python-side defaults are filled in on the objects, as the answer reads them.
        assert new.created_at is not None and new.desired_state == "ACTIVE"
        assert [c.ready_replicas for c in new.chainlets] == [0, 0]
        # What was written is out of the session: the commit has nothing left to flush.
        assert other not in session
        seen.clear()
    assert seen == ["COMMIT"] or seen == []  # SQLite's commit is no statement
    if db.engine.dialect.name == "postgresql":
        assert written == ["WITH"]
    else:
        # 1 deployment, 2 chainlets, 1 update, the audit rows: one by one, in order.
        assert written == ["INSERT", "INSERT", "INSERT", "UPDATE", "INSERT"]

    with db.read() as session:
        stored = session.get(ChainDeployment, "dep00001")
        assert stored is not None
        assert stored.desired_state == "ACTIVE" and stored.retired is False
        assert [(c.name, c.dependencies, c.ready_replicas) for c in stored.chainlets] == [
            ("A", [], 0),
            ("B", [], 0),
        ]
        assert session.get(Chain, "chain002").name == "renamed"  # type: ignore[union-attr]
        logs = session.scalars(select(AuditLog).order_by(AuditLog.seq)).all()
        # The database numbers them, in the order given.
        assert [log.event_data for log in logs] == [{"n": 1}, {"n": 2}]
        assert logs[0].seq < logs[1].seq


def test_one_failing_row_writes_none_of_them(db: Database) -> None:
    with pytest.raises(IntegrityError), db.write() as session:
        chain = session.get(Chain, "chain002")
        assert chain is not None
        chain.name = "renamed"
        new = _deployment("dep00002")
        new.chainlets[1].chain_deployment_id = "nosuchdeploymnt"
        write_together(session, [new, *new.chainlets])
    with db.read() as session:
        assert session.get(ChainDeployment, "dep00002") is None
        assert session.scalars(select(Chainlet.id)).all() == []
        assert session.get(Chain, "chain002").name == "second"  # type: ignore[union-attr]


def test_the_same_shape_is_built_once_and_writes_each_call_its_own_values(db: Database) -> None:
    from chainyard.store import batch

    batch._STATEMENTS.clear()
    for n in range(3):
        with db.write() as session:
            new = _deployment(f"dep1000{n}")
            new.name = f"deployment-{n}"
            write_together(session, [new, *new.chainlets])
    assert len(batch._STATEMENTS) == 1
    with db.read() as session:
        names = session.scalars(select(ChainDeployment.name).order_by(ChainDeployment.id)).all()
    assert names == ["deployment-0", "deployment-1", "deployment-2"]
