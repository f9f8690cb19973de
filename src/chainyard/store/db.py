"""Engine and transactions for SQLite (the default) and PostgreSQL.

Every use case runs in `Database.write()` or `Database.read()`. On SQLite a write transaction
starts with BEGIN IMMEDIATE, so that two writers queue at the start instead of failing at their
first write; on PostgreSQL the services lock the rows they change with SELECT ... FOR UPDATE.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from chainyard.domain.errors import Invalid, Unavailable

_MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


# How much of a SQLite database file a connection maps into memory (the OS shares the pages).
SQLITE_MMAP_BYTES = 1 << 30


def normalize_url(url: str) -> str:
    """Accepts the URLs people write (postgresql://, postgres://) and picks our drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_url(data_dir: str | os.PathLike[str]) -> str:
    path = pathlib.Path(data_dir).resolve() / "chainyard.db"
    return f"sqlite:///{path}"


def is_sqlite_url(url: str) -> bool:
    """Whether `url` names a SQLite store (one server per store); an unreadable URL counts as
    SQLite, so that the stricter rule applies until the store refuses it with its own message."""
    try:
        return bool(make_url(normalize_url(url)).get_backend_name() == "sqlite")
    except Exception:
        return True


_AFTER_COMMIT = "chainyard_after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Runs `callback` once the write transaction of `session` has committed, and not at all if it
    rolls back. For waking a loop about a change: woken before the commit, it may look before the
    change can be seen, and then sleep through it."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


# The tables a statement writes, by its text: whatever built it (the ORM's flush, a bulk UPDATE,
# store/batch.py's CTEs), the text says which tables change.
_WRITTEN = re.compile(r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def written_tables(statement: str) -> frozenset[str]:
    return frozenset(m.lower() for m in _WRITTEN.findall(statement))


class _Watch(threading.local):
    # The tables written so far by the write transaction running on this thread; None outside one.
    tables: set[str] | None = None


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        self.engine = self._make_engine(echo)
        # (tables, callback): called after a write transaction that wrote one of the tables has
        # committed (see `watch`).
        self._watchers: list[tuple[frozenset[str], Callable[[], None]]] = []
        self._watch = _Watch()
        self._watch_statements()
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(chainyard_write=True) if self.is_sqlite else None
        self._write = sessionmaker(writer or self.engine, expire_on_commit=False)

    def _make_engine(self, echo: bool) -> Engine:
        if not self.is_sqlite:
            # LIFO: the connection used last is warm (its prepared statements, the server's
            # caches for its backend), and the ones beyond need stay idle.
            engine = create_engine(
                self.url, echo=echo, pool_size=10, max_overflow=20, pool_use_lifo=True
            )
            _ping_when_idle(engine)
            return engine
        db_path = make_url(self.url).database
        if db_path and db_path != ":memory:":
            pathlib.Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            # A small pool: opening a connection per transaction (and closing it, which
            # checkpoints the WAL) doubled the cost of a request in the benchmark.
            pool_size=5,
            max_overflow=10,
            # LIFO: a request gets the connection used last. SQLite empties a connection's page
            # cache when another connection has written since its last transaction, so handing
            # the pool's connections out in turn made most requests start cold.
            pool_use_lifo=True,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Pages a cold connection reads come from the mapped file rather than one read()
            # each.
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            if conn.get_execution_options().get("chainyard_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine

    def watch(self, tables: frozenset[str], callback: Callable[[], None]) -> None:
        """Calls `callback` after each committed write transaction of this process that wrote
        one of `tables`, from the thread that committed it. For caches of rows: dropped once
        the change can be read, never before (a reader between the two would cache the old
        rows again)."""
        self._watchers.append((tables, callback))

    def _watch_statements(self) -> None:
        @event.listens_for(self.engine, "before_cursor_execute")
        def _seen(
            _conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool
        ) -> None:
            tables = self._watch.tables
            if tables is not None:
                tables.update(written_tables(statement))

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends without an exception; then runs what
        `after_commit` queued on it, and the watchers of the tables it wrote."""
        outer = self._watch.tables
        written: set[str] = set()
        self._watch.tables = written
        try:
            with _translate_operational(), self._write() as session:
                with session.begin():
                    yield session
                for callback in session.info.pop(_AFTER_COMMIT, ()):
                    callback()
        finally:
            self._watch.tables = outer
        if outer is not None:
            outer.update(written)
        if written:
            for tables, watcher in self._watchers:
                if not tables.isdisjoint(written):
                    watcher()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with _translate_operational(), self._read() as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Brings the schema to the newest revision (creates it on an empty database)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def _translate_operational() -> Iterator[None]:
    # A locked or unreachable database is transient: the client gets a 503 and may retry.
    try:
        yield
    except OperationalError as exc:
        raise Unavailable(f"the database is unavailable: {exc.orig.__class__.__name__}") from exc
    except DataError as exc:
        # A value the database cannot hold or compare (PostgreSQL: a NUL character in text, a
        # number out of range): it came from the request, so it is the client's error, not a 500.
        raise Invalid(
            "a value in the request is not valid for the database (a NUL character, "
            "too long, or out of range)",
            code="INVALID_VALUE",
        ) from exc


# A pooled connection idle longer than this is tested before use (the server may have restarted
# or dropped it); one in steady use is not, which saves a round trip per transaction.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            _ping(dbapi_conn)
        except Exception as exc:
            # The pool drops this connection and checks out another (SQLAlchemy's documented
            # way to refuse a stale connection).
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _ping(dbapi_conn: Any) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("SELECT 1")
    finally:
        cursor.close()
    # psycopg opened a transaction for the ping; leave the connection as the pool hands it out,
    # idle.
    dbapi_conn.rollback()
