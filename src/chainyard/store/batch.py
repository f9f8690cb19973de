"""Writing a transaction's rows in one statement.

The ORM's flush sends one statement per table and per kind of change, each a round trip to the
database, and its bookkeeping costs more Python than the statements do. A hot path that knows
what it writes (the instance-type update: a new deployment, its chainlets, the settings and the
environment it changes, the audit rows) hands the rows to `write_together` instead:

- on PostgreSQL they go as one statement, every part but the last a data-modifying CTE (foreign
  keys are checked at the end of the statement, so parents and children may come in any order);
- elsewhere (SQLite, in process: a statement costs no round trip) part by part, in order.

Inserts come from transient ORM objects (they stay transient: the caller may still read them,
for its answer) or from plain rows; updates from the persistent objects the session holds as
modified, by primary key. Those objects then leave the session (their values stay readable), so
that the commit's flush has nothing left to write or to look at. What the ORM would check of
an update (that it matched one row) is not checked: callers write only rows they hold locked or
have just read in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, inspect, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert, Update

from chainyard.store.base import Base

Row = Mapping[str, Any]


@dataclass(frozen=True)
class _Part:
    table: Table
    kind: str  # "insert" or "update"
    rows: tuple[Row, ...]  # one, but for plain rows of one table (their order is kept)

    def shape(self) -> tuple[str, str, tuple[str, ...], int]:
        return (self.table.name, self.kind, tuple(self.rows[0]), len(self.rows))


# Statements by the shape of what they write, so that SQLAlchemy compiles each shape once.
_STATEMENTS: dict[tuple[Any, ...], tuple[Insert | Update, ...]] = {}
_MAX_SHAPES = 512


def write_together(
    session: Session,
    new: Sequence[Base] = (),
    rows: Sequence[tuple[type[Base], Sequence[Row]]] = (),
) -> None:
    """Inserts the transient objects `new` (in order; parents first), writes the changes of every
    modified object in the session, then inserts `rows` (per table, in order)."""
    if session.new:
        # Objects added the ORM way go the ORM way, first: what follows may refer to them.
        session.flush()
    updated = [obj for obj in session.dirty if session.is_modified(obj, include_collections=False)]
    parts = [*_inserts_of(new), *_updates_of(updated), *_plain_inserts(rows)]
    if not parts:
        return
    shape = tuple(p.shape() for p in parts)
    params = {
        f"p{i}_{r}_{column}": value
        for i, part in enumerate(parts)
        for r, row in enumerate(part.rows)
        for column, value in row.items()
    }
    one_statement = session.get_bind().dialect.name == "postgresql"
    statements = _STATEMENTS.get((one_statement, shape))
    if statements is None:
        if len(_STATEMENTS) >= _MAX_SHAPES:
            _STATEMENTS.clear()
        statements = _build(parts, one_statement)
        _STATEMENTS[(one_statement, shape)] = statements
    with session.no_autoflush:
        for i, statement in enumerate(statements):
            session.execute(statement, params if one_statement else _own(params, i))
    for obj in updated:
        # Written: the commit's flush must not write it again, nor spend time finding that it
        # need not. Its values stay readable.
        if obj in session:
            session.expunge(obj)


def _own(params: dict[str, Any], part: int) -> dict[str, Any]:
    prefix = f"p{part}_"
    return {k: v for k, v in params.items() if k.startswith(prefix)}


def _build(parts: Sequence[_Part], one_statement: bool) -> tuple[Insert | Update, ...]:
    statements = [_statement(i, part) for i, part in enumerate(parts)]
    if not one_statement or len(statements) == 1:
        return tuple(statements)
    *first, last = statements
    return (last.add_cte(*(s.cte(f"w{i}") for i, s in enumerate(first))),)


def _statement(i: int, part: _Part) -> Insert | Update:
    columns = tuple(part.rows[0])

    def bound(r: int, column: str) -> Any:
        return bindparam(f"p{i}_{r}_{column}", type_=part.table.c[column].type)

    if part.kind == "update":
        (pk,) = part.table.primary_key.columns
        return (
            update(part.table)
            .where(pk == bound(0, pk.name))
            .values({c: bound(0, c) for c in columns if c != pk.name})
        )
    if len(part.rows) == 1:
        return insert(part.table).values({c: bound(0, c) for c in columns})
    # Several rows as INSERT ... SELECT ... UNION ALL rather than a multi-row VALUES, which
    # SQLAlchemy never caches the compiled form of. One statement numbers its rows (a sequence
    # column's values) in their order; separate CTEs would run in no set order.
    selects = [select(*(bound(r, c) for c in columns)) for r in range(len(part.rows))]
    return insert(part.table).from_select(columns, union_all(*selects))


def _inserts_of(objects: Iterable[Base]) -> list[_Part]:
    """An insert per object, its Python-side defaults filled in on the object itself (the
    caller's answer reads them)."""
    parts: list[_Part] = []
    for obj in objects:
        mapper = inspect(obj).mapper
        row: dict[str, Any] = {}
        for attr in mapper.column_attrs:
            (column,) = attr.columns
            value = getattr(obj, attr.key)
            if value is None and column.default is not None and column.default.is_scalar:
                value = column.default.arg
            elif value is None and column.default is not None and column.default.is_callable:
                value = column.default.arg(None)
            if value is None:
                # Left to the database: its default, NULL, or its NOT NULL error.
                continue
            setattr(obj, attr.key, value)
            row[column.name] = value
        table = mapper.local_table
        assert isinstance(table, Table)
        parts.append(_Part(table, "insert", (row,)))
    return parts


def _updates_of(objects: Iterable[Base]) -> list[_Part]:
    parts = []
    for obj in objects:
        state = inspect(obj)
        changed = {
            attr.columns[0].name: getattr(obj, attr.key)
            for attr in state.mapper.column_attrs
            if state.attrs[attr.key].history.has_changes()
        }
        if not changed:
            continue
        table = state.mapper.local_table
        assert isinstance(table, Table)
        (pk,) = table.primary_key.columns
        identity = state.identity
        assert identity is not None  # persistent: it has one
        row = {pk.name: identity[0], **changed}
        parts.append(_Part(table, "update", (row,)))
    # A stable order, so that one change makes one shape however the session's set iterates.
    parts.sort(key=lambda p: (p.shape(), str(next(iter(p.rows[0].values())))))
    return parts


def _plain_inserts(rows: Sequence[tuple[type[Base], Sequence[Row]]]) -> list[_Part]:
    parts: list[_Part] = []
    for model, table_rows in rows:
        table = model.__table__
        assert isinstance(table, Table)
        if table_rows:
            parts.append(_Part(table, "insert", tuple(table_rows)))
    return parts
