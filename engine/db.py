"""Database engines: SQLite (embedded default) or PostgreSQL (``TACT_DATABASE_URL``).

On SQLite the keystore is a second database file attached as schema
``keystore``, so one transaction covers a contact and its data key while a copy
of ``tact.db`` alone carries no key. The keystore uses a rollback journal with
``secure_delete`` so an erased data key is overwritten on disk, not left in a
free page or a write-ahead log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from engine.config import Settings
from engine.models import KEYSTORE_SCHEMA


def keystore_path_for(main_db: Path) -> Path:
    """``var/tact.db`` → ``var/tact.keystore.db``."""
    return main_db.with_name(f"{main_db.stem}.keystore{main_db.suffix or '.db'}")


def make_engine(url: str, *, pool: bool = True) -> Engine:
    """An engine for ``url`` with Tact's pragmas (SQLite) or schema layout (PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("Tact needs a file-backed SQLite database (the keystore is attached)")
        main = Path(parsed.database)
        main.parent.mkdir(parents=True, exist_ok=True)
        keystore = keystore_path_for(main)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy manage transactions; pysqlite's own BEGIN handling is off.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Random (uuid) keys touch pages all over the B-trees: a 2 MB default page
            # cache thrashes once tables pass ~10^4 rows: 16 MB (keystore 4 MB), bounded.
            cur.execute("PRAGMA cache_size=-16384")
            cur.execute("PRAGMA temp_store=MEMORY")
            # Checkpoint the WAL every ~80 MB rather than 4 MB: fewer, larger checkpoints
            # keep bulk imports from slowing as the tables grow.
            cur.execute("PRAGMA wal_autocheckpoint=20000")
            cur.execute(f"ATTACH DATABASE ? AS {KEYSTORE_SCHEMA}", (str(keystore),))
            cur.execute(f"PRAGMA {KEYSTORE_SCHEMA}.journal_mode=DELETE")
            cur.execute(f"PRAGMA {KEYSTORE_SCHEMA}.synchronous=FULL")
            cur.execute(f"PRAGMA {KEYSTORE_SCHEMA}.secure_delete=ON")
            cur.execute(f"PRAGMA {KEYSTORE_SCHEMA}.cache_size=-4096")
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Readers never block in WAL mode. A transaction opened by ``writing()``
            # takes the write lock up front (IMMEDIATE), so concurrent writers queue on
            # busy_timeout instead of failing when a read would upgrade to a write.
            if conn.get_execution_options().get("tact_immediate"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if not pool:
        kwargs = {"poolclass": NullPool}
    return create_engine(url, **kwargs)


def engine_from_settings(settings: Settings) -> Engine:
    return make_engine(settings.resolved_database_url)


_writer_locks: dict[int, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock:
    with _writer_locks_guard:
        return _writer_locks.setdefault(id(engine), threading.Lock())


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A read-then-write transaction that holds the write lock from its start.

    On PostgreSQL this is ``engine.begin()``. On SQLite it begins IMMEDIATE, so a
    transaction that reads before it writes cannot fail when another writer commits;
    and threads of one process queue on a lock first, because SQLite's busy handler
    sleeps in growing steps instead of waking when the lock frees (p99 of the
    one-click endpoint fell from ~90 ms to ~40 ms at 200 requests/s with it).
    Other processes still wait on ``busy_timeout``.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _writer_lock(engine), engine.connect() as conn:
        conn = conn.execution_options(tact_immediate=True)
        with conn.begin():
            yield conn


@contextmanager
def writing_on(conn: Connection) -> Iterator[Connection]:
    """``writing()`` on a connection the caller holds (no pool checkout per transaction).

    For a thread that writes many short transactions in a row, e.g. the SMTP
    handover, one per message. The caller must not be inside a transaction on it.
    """
    engine = conn.engine
    if engine.dialect.name != "sqlite":
        with conn.begin():
            yield conn
        return
    with _writer_lock(engine):
        conn.execution_options(tact_immediate=True)
        with conn.begin():
            yield conn


class PreparedWrite:
    """A write statement compiled once for SQLite and run on the DBAPI cursor directly.

    For the hottest write in Tact, the SMTP handover (one transaction per message),
    SQLAlchemy's per-execution work — cache look-up, parameter processing, result
    set-up — cost several times what SQLite itself spends. Parameters still go
    through their column types' own bind processors, so what is stored (UUIDs,
    UTC timestamps) is exactly what the ORM writes and compares.
    """

    def __init__(self, statement: Any, dialect: Any) -> None:
        if dialect.name != "sqlite":
            raise ValueError("PreparedWrite is for SQLite (positional qmark parameters)")
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self._slots: list[tuple[str | None, Any, Any]] = []  # (key, processor, constant)
        for name in compiled.positiontup or []:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self._slots.append((bind.key, process, None))
            else:
                value = bind.effective_value
                self._slots.append((None, None, process(value) if process else value))

    def run(self, cursor: Any, values: dict[str, Any]) -> int:
        """Execute with ``values`` by key; returns the row count."""
        params = [
            constant if key is None else (process(values[key]) if process else values[key])
            for key, process, constant in self._slots
        ]
        cursor.execute(self.sql, params)
        return int(cursor.rowcount)

    def run_alone(self, conn: Connection, values: dict[str, Any]) -> int:
        """Execute as a transaction of its own on ``conn`` (held outside any transaction).

        One statement needs no BEGIN IMMEDIATE … COMMIT: in autocommit SQLite takes the
        write lock as the statement starts (waiting on busy_timeout; there is no older
        read to upgrade, so no SQLITE_BUSY_SNAPSHOT) and commits as it ends, all or
        nothing. It also leaves the attached keystore unlocked, which BEGIN IMMEDIATE
        locks too: 20 µs a handover instead of 36 (measured here, 2026-12-02). Writers
        of this process still queue on the writer lock first, as in ``writing()``.
        """
        raw: Any = conn.connection.driver_connection
        with _writer_lock(conn.engine):
            cursor = raw.cursor()
            try:
                return self.run(cursor, values)
            finally:
                cursor.close()


def upsert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...]
) -> None:
    """Insert rows, or update the other columns where the ``keys`` already exist.

    One statement per call (``INSERT … ON CONFLICT … DO UPDATE``) on both backends: a
    delete-then-insert by a list of composite keys makes SQLite scan the table.
    """
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    others = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=others), rows)
