"""Alembic migrations build the schema of the models, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pprint
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, inspect, select, text

from chainyard.store import db as db_module
from chainyard.store.chains import Chainlet, unsettled
from chainyard.store.db import Database
from chainyard.store.models import metadata
from chainyard.store.workspaces import Workspace


def _head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(db_module._MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def _tables(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def _version(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


# Indexes on expressions or with a condition, which Alembic's comparison cannot match between
# model and database: test_the_unsettled_index_serves_the_reconcilers_query checks this one.
_NOT_COMPARED = {"ix_chainlets_unsettled"}


def _compared(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    return not (type_ == "index" and name in _NOT_COMPARED)


def _schema_differences(db: Database, target: MetaData = metadata) -> list[Any]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": False,
                "include_object": _compared,
            },
        )
        diffs: list[Any] = compare_metadata(context, target)
    return diffs


def _with_extra_column() -> MetaData:
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["workspaces"].append_column(Column("not_migrated", String(10)))
    return changed


def test_migrate_builds_the_models_schema_and_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert _tables(db) == set()  # an empty database to start from
        db.migrate()
        expected = set(metadata.tables)
        assert expected >= {
            "workspaces",
            "api_keys",
            "secrets",
            "chains",
            "chain_deployments",
            "chainlets",
            "environments",
            "chainlet_environment_settings",
            "audit_logs",
            "chainlet_logs",
        }
        assert _tables(db) == expected | {"alembic_version"}
        assert _version(db) == [_head()]

        differences = _schema_differences(db)
        assert differences == [], pprint.pformat(differences)
        # The comparison does see a difference when there is one.
        assert any(
            d[0] == "add_column" and d[2] == "workspaces" and d[3].name == "not_migrated"
            for d in _schema_differences(db, _with_extra_column())
        )

        # A second run (every server start does one) changes nothing and keeps the data.
        with db.write() as session:
            session.add(Workspace(id="ws000001", name="kept"))
        db.migrate()
        assert _tables(db) == expected | {"alembic_version"}
        assert _version(db) == [_head()]
        assert _schema_differences(db) == []
        with db.read() as session:
            assert session.scalars(select(Workspace.name)).all() == ["kept"]
    finally:
        db.dispose()


def test_a_second_database_object_sees_the_migrated_schema(database_url: str) -> None:
    first = Database(database_url)
    first.migrate()
    first.dispose()
    second = Database(database_url)
    try:
        second.migrate()  # finds the schema at head: nothing to do
        assert _version(second) == [_head()]
        with second.write() as session:
            session.add(Workspace(id="ws000002", name="again"))
        with second.read() as session:
            assert session.scalars(select(Workspace.id)).all() == ["ws000002"]
    finally:
        second.dispose()


def test_the_unsettled_index_serves_the_reconcilers_query(database_url: str) -> None:
    """The reconciler reads unsettled chainlets every tick; the migrated index must be the one
    the database picks for that query, or each tick scans every chainlet ever deployed."""
    db = Database(database_url)
    try:
        db.migrate()
        with db.engine.connect() as conn:
            assert "ix_chainlets_unsettled" in {
                ix["name"] for ix in inspect(conn).get_indexes("chainlets")
            }
            query = select(Chainlet.id).where(unsettled())
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "postgresql":
                # Empty tables: without this the planner scans them, whatever the indexes.
                conn.execute(text("SET enable_seqscan = off"))
                plan = " ".join(row[0] for row in conn.execute(text("EXPLAIN " + sql)))
            else:
                plan = " ".join(
                    str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))
                )
        assert "ix_chainlets_unsettled" in plan, plan
    finally:
        db.dispose()
