"""Database engines: SQLite (embedded default) or PostgreSQL (``TACT_DATABASE_URL``).

On SQLite the keystore is a second database file attached as schema
``keystore``, so one transaction covers a contact and its data key while a copy
of ``tact.db`` alone carries no key. The keystore uses a rollback journal with
``secure_delete`` so an erased data key is overwritten on disk, not left in a
free page or a write-ahead log.

Both files are created 0600 in a 0700 folder. A keystore that is missing while
``tact.db`` holds contacts is an error (KeystoreMissing), never an empty file made
on the spot: the data keys of those contacts were in it. ``explain`` turns what
SQLAlchemy raises about a damaged, truncated, schema-less or unreachable database
into one sentence that names the file or host.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from engine.config import Settings
from engine.errors import DatabaseError, KeystoreMissing
from engine.fsmodes import private_dirs, private_file, tighten
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
        try:
            private_dirs(main.parent)
            # SQLite gives the WAL, shared-memory and journal files their database's mode.
            private_file(main)
            tighten(keystore_path_for(main))
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the database {main}: {exc.strerror or exc}"
            ) from None
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
            if not keystore.exists() or keystore.stat().st_size == 0:
                _first_run_keystore(cur, main, keystore)
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


def _first_run_keystore(cur: Any, main: Path, keystore: Path) -> None:
    """Create the keystore only while the database holds no contact (the first run).

    A keystore that is missing or empty while contacts exist means their data keys
    are gone: refuse, rather than let SQLite make a new empty file for ATTACH.
    """
    state = "is empty" if keystore.exists() else "is missing"
    has_table = cur.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contacts'"
    ).fetchone()
    if has_table and cur.execute("SELECT 1 FROM contacts LIMIT 1").fetchone():
        cur.close()
        raise KeystoreMissing(
            f"the keystore {keystore} {state} but {main} holds contacts: their data keys "
            "were in it and the personal data written with them cannot be read without it, "
            f"so restore {keystore.name} from the backup taken with {main.name} "
            "(Tact never recreates it empty)"
        )
    private_file(keystore)


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


# -- errors in one sentence ------------------------------------------------------------------

_SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_file_problem(path: Path) -> str | None:
    """What is wrong with an SQLite file, in words, or None when it looks sound.

    Reads the header (magic, page size, page count) and then asks SQLite itself
    (``PRAGMA quick_check``) on a read-only connection, so a file that was cut short,
    overwritten or is another kind of file is named as such.
    """
    if not path.exists():
        return "is missing"
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not head:
        return None  # an empty file is an empty database
    if len(head) < 100 or not head.startswith(_SQLITE_HEADER):
        return "is not an SQLite database (its header is overwritten, or it is another file)"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if pages and size < pages * page_size:
        return f"is truncated ({size:,} of {pages * page_size:,} bytes)"
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = probe.execute("PRAGMA quick_check(1)").fetchall()
        finally:
            probe.close()
    except sqlite3.Error as exc:
        return f"is damaged ({_first_line(exc)})"
    if rows != [("ok",)]:
        return "is damaged (SQLite's integrity check fails)"
    return None


def _first_line(exc: BaseException) -> str:
    """The first line of a driver message, capped: never SQL, parameters or DETAIL lines."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _where(url: URL) -> str:
    """The database as a person would name it: path, or name@host:port, never a password."""
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"the {url.get_backend_name()} database {url.database or '(default)'} on {host}{port}"


_NO_TABLE = re.compile(r'no such table: (\S+)|relation "([^"]+)" does not exist')


def explain(exc: BaseException, url: str) -> DatabaseError:
    """One sentence for an error raised by the database driver (via SQLAlchemy or not).

    The message names the file (SQLite: tact.db or its keystore) or the host, the
    problem, and what to do; it never carries SQL, bound parameters or a password.
    """
    orig = getattr(exc, "orig", None) or exc
    reason = _first_line(orig)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        main = Path(parsed.database)
        keystore = keystore_path_for(main)
        for path, role in ((main, "database"), (keystore, "keystore")):
            problem = sqlite_file_problem(path)
            if problem and not (role == "keystore" and problem == "is missing"):
                backup = (
                    f"restore {path.name} from a backup (the keystore and {main.name} "
                    "are backed up together)"
                )
                return DatabaseError(f"the {role} {path} {problem}: {backup}")
        missing = _NO_TABLE.search(reason)
        if missing:
            table = missing.group(1) or missing.group(2)
            in_keystore = table.startswith(f"{KEYSTORE_SCHEMA}.")
            role, path = ("keystore", keystore) if in_keystore else ("database", main)
            return DatabaseError(
                f"the {role} {path} has no table {table.split('.')[-1]}: run `tact db upgrade` "
                "for a new or older installation, or restore the file from a backup"
            )
        return DatabaseError(f"the database {main} cannot be used: {reason}")
    where = _where(parsed)
    missing = _NO_TABLE.search(reason)
    if missing:
        table = missing.group(1) or missing.group(2)
        return DatabaseError(
            f"{where} has no table {table}: run `tact db upgrade`, or restore a backup"
        )
    if "connection" in reason.lower() or "connect" in type(orig).__name__.lower():
        return DatabaseError(
            f"cannot connect to {where} ({reason}): check TACT_DATABASE_URL and that the "
            "server is running"
        )
    return DatabaseError(f"{where} cannot be used: {reason}")
