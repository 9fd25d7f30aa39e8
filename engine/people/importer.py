"""``tact contacts import``: stream a file into the vault in atomic batches.

Each batch of rows is one transaction: contacts, their data keys (keystore),
orders, engagement and imported consent land together or not at all, with the
import's checkpoint and its counters. Re-running the same file after a crash
resumes after the last committed line; rows are upserted by blind index, so
nothing doubles. Rows for an erased address are never stored again.

One row never stops an import: a row that cannot be parsed or breaks a limit
(engine.people.rows) goes to the rejects file with its line and reason, and so
does a row the database still refuses. When a batch write fails, the batch is
written again row by row, each row under a savepoint, so only the refused row
is rejected. The counters of a resumed run cover the whole run: they are read
back from the run's row, and the reject reasons from the rejects file, which is
cut back to the checkpoint first (rows after it are read again).

One run has one importer at a time: whoever imports a run holds its claim
(:func:`claim_run`: a session advisory lock on PostgreSQL, an ``flock`` on
``var/imports/import-<id>.lock`` on SQLite), which a process's end lets go. A run
still ``running`` whose claim nobody holds was interrupted and may be resumed; one
claimed is being imported, by this process or another, and is not entered twice (two
importers of one run overwrote each other's counters and checkpoint).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from engine.config import Settings
from engine.consent import ledger
from engine.consent.ledger import CASL_IMPLIED_PURCHASE, NewEvent, Regime, Source
from engine.consent.service import store_default_cadences
from engine.consent.topics import Topics, cached_topics
from engine.db import writing
from engine.errors import ImportFileError, RowError, TactError
from engine.models import (
    AuditEvent,
    ConsentEventType,
    ConsentState,
    ConsentStateRow,
    Contact,
    EngagementEvent,
    EventType,
    ImportRun,
    Order,
    Suppression,
    SuppressionReason,
)
from engine.people.rows import ContactIn, CountingReader, parse_row, read_raw_rows
from engine.vault.vault import ContactCipher, Vault, data_keys

log = logging.getLogger(__name__)

contacts = Contact.__table__  # type: ignore[attr-defined]
orders_t = Order.__table__  # type: ignore[attr-defined]
engagement_t = EngagementEvent.__table__  # type: ignore[attr-defined]
suppressions_t = Suppression.__table__  # type: ignore[attr-defined]
runs_t = ImportRun.__table__  # type: ignore[attr-defined]
state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

ProgressFn = Callable[[int], None]
RejectFn = Callable[[int, str], None]

#: Errors that say the database is unreachable or busy, not that a row is bad: the
#: import stops (and resumes on the next run) rather than reject good rows.
_NOT_THE_ROW = (OperationalError, InterfaceError)
#: Errors a write can raise because of the values of one row.
_ROW_ERRORS = (SQLAlchemyError, ValueError, OverflowError, TypeError)
COUNTERS = ("rows_read", "inserted", "updated", "rejected", "suppressed")


@dataclass
class ImportReport:
    import_id: int
    source_name: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    suppressed: int = 0
    batches: int = 0
    resumed_after_line: int = 0
    rejects_path: Path | None = None
    reject_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Rows read by this run alone (``rows_read`` covers the whole run, resumes included).
    read_now: int = 0

    @property
    def rows_per_second(self) -> float:
        """Of this run: its rows over its time."""
        return self.read_now / self.seconds if self.seconds else 0.0


class RejectsWriter:
    """Line number and reason of each bad row. Never the row itself: it may be personal data."""

    def __init__(self, path: Path, append: bool) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        self._append = append

    def write(self, line: int, reason: str) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not (self._append and self.path.exists())
            self._fh = self.path.open("a" if not fresh else "w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._fh)
            if fresh:
                self._writer.writerow(["line", "reason"])
        self._writer.writerow([line, reason])
        self._dirty = True

    def sync(self) -> None:
        """On disk before the checkpoint that covers these lines commits."""
        if self._fh is not None and getattr(self, "_dirty", False):
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._dirty = False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    @staticmethod
    def cut_back(path: Path, checkpoint: int) -> dict[str, int]:
        """Keep the reasons of lines up to ``checkpoint`` (later ones are read again).

        Returns the count per reason kept, for the summary of a resumed run.
        """
        reasons: dict[str, int] = {}
        if not path.exists():
            return reasons
        kept: list[list[str]] = []
        with path.open(encoding="utf-8", newline="") as fh:
            for record in csv.reader(fh):
                if len(record) != 2 or not record[0].isdigit():
                    continue  # the header, or a line cut short by a crash
                if int(record[0]) <= checkpoint:
                    kept.append(record)
                    key = reason_key(record[1])
                    reasons[key] = reasons.get(key, 0) + 1
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["line", "reason"])
            writer.writerows(kept)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        return reasons


def reason_key(reason: str) -> str:
    """The summary's group of a reason: the field it names, ``orders[3]`` as ``orders[]``."""
    return re.sub(r"\[\d+\]", "[]", reason.split(":", 1)[0])


#: The first key of an import run's advisory lock on PostgreSQL (the second is its id).
_PG_LOCK_CLASS = 0x7AC7
#: Tries at an SQLite claim a momentary look (:func:`run_claimed`) may stand in the way of.
_CLAIM_TRIES = 20


def _lock_path(settings: Settings, import_id: int) -> Path:
    return settings.var_dir / "imports" / f"import-{int(import_id)}.lock"


class RunClaim:
    """One import run taken by one importer until :meth:`release` (or its process ends)."""

    def __init__(
        self,
        import_id: int,
        *,
        conn: Connection | None = None,
        fd: int | None = None,
        path: Path | None = None,
    ) -> None:
        self.import_id = int(import_id)
        self._conn = conn
        self._fd = fd
        self._path = path

    def release(self, *, ended: bool = False) -> None:
        """Let the run go; ``ended``: it is finished or failed (its lock file goes too)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:k, :id)"),
                    {"k": _PG_LOCK_CLASS, "id": self.import_id},
                )
                conn.commit()
            except Exception:
                conn.invalidate()  # the session ends, and its lock with it
            finally:
                conn.close()
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if ended and self._path is not None:
                    with contextlib.suppress(OSError):
                        self._path.unlink()  # under the lock: see claim_run's inode check
            finally:
                os.close(fd)


def claim_run(engine: Engine, settings: Settings, import_id: int) -> RunClaim | None:
    """Take import run ``import_id`` for this importer; None when another holds it."""
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k, :id)"),
                {"k": _PG_LOCK_CLASS, "id": int(import_id)},
            ).scalar()
            conn.commit()  # the lock is the session's: no transaction is left open
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return RunClaim(import_id, conn=conn)
    path = _lock_path(settings, import_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_CLAIM_TRIES):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not _lock_is_held(path):  # a look (run_claimed) held it a moment
                time.sleep(0.005)
                continue
            return None
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False  # the holder ended the run and removed the file meanwhile
        if same:
            return RunClaim(import_id, fd=fd, path=path)
        os.close(fd)
    return None


def _lock_is_held(path: Path) -> bool:
    """An exclusive claim is held on ``path`` (a shared look does not count)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def run_claimed(engine: Engine, settings: Settings, import_id: int) -> bool:
    """Someone (this process or another) is importing run ``import_id`` now."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                        " AND granted AND classid = CAST(:k AS oid)"
                        " AND objid = CAST(:id AS oid) AND objsubid = 2"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database()))"
                    ),
                    {"k": _PG_LOCK_CLASS, "id": int(import_id)},
                ).scalar()
            )
    return _lock_is_held(_lock_path(settings, import_id))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_file(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    path: Path,
    *,
    rejects_path: Path | None = None,
    progress: ProgressFn | None = None,
    batch_size: int | None = None,
    claim: RunClaim | None = None,
) -> ImportReport:
    """Import ``path``; resumes an interrupted import of the same file.

    With ``claim`` (a run the caller registered for this file and claimed, as
    :func:`engine.app.imports.start_import` does; the caller releases it), into that run.
    Without, into the running run of this file (by its digest) if no importer holds it,
    else a new one; the claim is taken and let go here. A run of this file that another
    importer holds is refused (ImportFileError): its counters are its own."""
    started = datetime.now(UTC)
    batch_size = batch_size or settings.import_batch_size
    digest = file_sha256(path)
    own: RunClaim | None = None
    try:
        with engine.begin() as conn:
            vault.verify(conn)
            if claim is not None:
                import_id = claim.import_id
                run = conn.execute(
                    select(runs_t.c.file_sha256, runs_t.c.status, runs_t.c.checkpoint_line).where(
                        runs_t.c.id == import_id
                    )
                ).first()
                if run is None or run.status != "running" or run.file_sha256 != digest:
                    raise ImportFileError(
                        f"import {import_id} is not a running import of this file"
                    )
                resume_after = int(run.checkpoint_line or 0)
            else:
                previous = conn.execute(
                    select(runs_t.c.id, runs_t.c.checkpoint_line)
                    .where(runs_t.c.file_sha256 == digest, runs_t.c.status == "running")
                    .order_by(runs_t.c.id.desc())
                ).first()
                if previous is not None:
                    import_id, resume_after = int(previous[0]), int(previous[1] or 0)
                    own = claim_run(engine, settings, import_id)
                    if own is None:
                        raise ImportFileError(
                            f"this file is being imported now (import {import_id}); "
                            "wait for it to end, or follow it in the console"
                        )
                else:
                    inserted = conn.execute(
                        insert(runs_t).values(
                            source_name=path.name[:255], file_sha256=digest, started_at=started
                        )
                    ).inserted_primary_key
                    if inserted is None:
                        raise RuntimeError("the database returned no id for the import run")
                    import_id = int(inserted[0])
                    resume_after = 0
                    # Claimed before the run is committed: nobody can see it unclaimed.
                    own = claim_run(engine, settings, import_id)
                    if own is None:
                        raise RuntimeError(f"import {import_id} could not be claimed")
            run_counts = conn.execute(
                select(*(runs_t.c[name] for name in COUNTERS)).where(runs_t.c.id == import_id)
            ).one()
            counts = {name: int(getattr(run_counts, name) or 0) for name in COUNTERS}
    except BaseException:
        if own is not None:
            own.release()
        raise
    ended = False
    try:
        report = _import_run(
            engine,
            vault,
            settings,
            path,
            import_id=import_id,
            resume_after=resume_after,
            counts=counts,
            started=started,
            rejects_path=rejects_path,
            progress=progress,
            batch_size=batch_size,
        )
        ended = True
        return report
    finally:
        if own is not None:
            own.release(ended=ended)


def _import_run(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    path: Path,
    *,
    import_id: int,
    resume_after: int,
    counts: dict[str, int],
    started: datetime,
    rejects_path: Path | None,
    progress: ProgressFn | None,
    batch_size: int,
) -> ImportReport:
    """Read ``path`` after line ``resume_after`` into run ``import_id`` (claimed)."""
    report = ImportReport(
        import_id=import_id, source_name=path.name, resumed_after_line=resume_after
    )
    _restore(report, counts)  # a resumed run counts from where the last one committed
    report.rejects_path = (
        rejects_path or settings.var_dir / "imports" / f"import-{import_id}.rejects.csv"
    )
    if resume_after > 0:
        report.reject_reasons = RejectsWriter.cut_back(report.rejects_path, resume_after)
    rejects = RejectsWriter(report.rejects_path, append=resume_after > 0)

    def reject(line: int, reason: str) -> None:
        report.rejected += 1
        key = reason_key(reason)
        report.reject_reasons[key] = report.reject_reasons.get(key, 0) + 1
        rejects.write(line, reason)
        log.info("import %s: line %d rejected: %s", import_id, line, reason)

    batcher = _Batcher(engine, vault, settings, import_id, reject)
    now = datetime.now(UTC)
    try:
        with path.open("rb") as raw:
            counter = CountingReader(raw)
            batch: list[ContactIn] = []
            last_line = resume_after
            for line, record in read_raw_rows(path, counter):
                if line <= resume_after:
                    continue
                report.rows_read += 1
                report.read_now += 1
                last_line = line
                try:
                    batch.append(parse_row(line, record, now=now))
                except RowError as exc:
                    reject(line, str(exc))
                if len(batch) >= batch_size:
                    rejects.sync()
                    batcher.commit(batch, last_line, report)
                    rejects.sync()  # rows the database refused, under this checkpoint
                    batch = []
                    if progress:
                        progress(counter.consumed)
            rejects.sync()
            batcher.commit(batch, last_line, report)
            rejects.sync()
            if progress:
                progress(counter.consumed)
    finally:
        rejects.close()
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    with engine.begin() as conn:
        conn.execute(
            update(runs_t)
            .where(runs_t.c.id == import_id)
            .values(status="finished", finished_at=datetime.now(UTC))
        )
        conn.execute(
            insert(audit_t).values(
                occurred_at=datetime.now(UTC),
                action=EventType.IMPORT_FINISHED,
                actor="import",
                detail={
                    "import_id": import_id,
                    "rows": report.rows_read,
                    "inserted": report.inserted,
                    "updated": report.updated,
                    "rejected": report.rejected,
                    "suppressed": report.suppressed,
                },
            )
        )
    if report.rejected == 0 and report.rejects_path.exists():
        report.rejects_path.unlink()
    if report.rejected == 0:
        report.rejects_path = None
    log.info(
        "import %s finished: %d rows, %d inserted, %d updated, %d rejected, %d suppressed",
        import_id,
        report.rows_read,
        report.inserted,
        report.updated,
        report.rejected,
        report.suppressed,
    )
    return report


class _Batcher:
    """Writes one batch of validated rows in one transaction."""

    def __init__(
        self, engine: Engine, vault: Vault, settings: Settings, import_id: int, reject: RejectFn
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.import_id = import_id
        self.public = frozenset(settings.public_attributes)
        self.regime = settings.import_regime
        self.reject = reject
        try:
            self.topics = cached_topics(settings.resolved_topics_file)
        except TactError:  # no topics file: the gate's default applies when sending
            self.topics = Topics({})

    def commit(self, batch: list[ContactIn], last_line: int, report: ImportReport) -> None:
        before = _counts(report)
        try:
            with writing(self.engine) as conn:
                if batch:
                    self._write(conn, batch, report)
                self._checkpoint(conn, last_line, report)
        except _NOT_THE_ROW:
            raise
        except _ROW_ERRORS as exc:
            if not batch:
                raise
            _restore(report, before)
            log.warning(
                "import %s: the batch ending at line %d was refused (%s); writing it row by row",
                self.import_id,
                last_line,
                _error_name(exc),
            )
            self._commit_row_by_row(batch, last_line, report)
        report.batches += 1

    def _commit_row_by_row(
        self, batch: list[ContactIn], last_line: int, report: ImportReport
    ) -> None:
        with writing(self.engine) as conn:
            for row in batch:
                before = _counts(report)
                try:
                    with conn.begin_nested():
                        self._write(conn, [row], report)
                except _NOT_THE_ROW:
                    raise
                except _ROW_ERRORS as exc:
                    _restore(report, before)
                    self.reject(row.line, f"the database refused this row ({_error_name(exc)})")
            self._checkpoint(conn, last_line, report)

    def _checkpoint(self, conn: Connection, last_line: int, report: ImportReport) -> None:
        conn.execute(
            update(runs_t)
            .where(runs_t.c.id == self.import_id)
            .values(checkpoint_line=last_line, **_counts(report))
        )

    def _write(self, conn: Connection, batch: list[ContactIn], report: ImportReport) -> None:
        # Rows for one address merge in file order, as if applied one after another.
        by_index: dict[bytes, ContactIn] = {}
        for row in batch:
            index = self.vault.blind_index(row.email)
            earlier = by_index.get(index)
            if earlier is None:
                by_index[index] = row
            else:
                by_index[index] = _merged(earlier, row)
                report.updated += 1
        indexes = list(by_index)
        erased = set(
            conn.execute(
                select(suppressions_t.c.address_hash).where(
                    suppressions_t.c.address_hash.in_(indexes),
                    suppressions_t.c.reason == SuppressionReason.ERASED,
                )
            ).scalars()
        )
        existing = {
            r.blind_index: r
            for r in conn.execute(
                select(
                    contacts.c.id,
                    contacts.c.key_version,
                    contacts.c.blind_index,
                    contacts.c.attributes_ct,
                    contacts.c.attributes,
                ).where(contacts.c.blind_index.in_(indexes))
            )
        }
        ciphers = self.vault.ciphers(conn, ((r.id, r.key_version) for r in existing.values()))
        now = datetime.now(UTC)
        new_contacts: list[dict[str, Any]] = []
        new_keys: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        touched: list[tuple[UUID, ContactIn]] = []
        for index, row in by_index.items():
            if index in erased:
                report.suppressed += 1
                continue
            public = {k: v for k, v in row.attributes.items() if k in self.public}
            personal = {k: v for k, v in row.attributes.items() if k not in self.public}
            current = existing.get(index)
            if current is None:
                contact_id = uuid.uuid4()
                key_row, cipher = self.vault.new_contact_key(contact_id)
                new_keys.append(key_row)
                new_contacts.append(
                    {
                        "id": contact_id,
                        "public_id": uuid.uuid4(),
                        "blind_index": index,
                        "status": "active",
                        "key_version": cipher.key_version,
                        "email_ct": cipher.seal("email_ct", row.email),
                        "first_name_ct": cipher.seal("first_name_ct", row.first_name),
                        "last_name_ct": cipher.seal("last_name_ct", row.last_name),
                        "phone_ct": cipher.seal("phone_ct", row.phone),
                        "attributes_ct": cipher.seal_json("attributes_ct", personal),
                        "attributes": public,
                        "locale": row.locale,
                        "timezone": row.timezone,
                        "signup_at": row.signup_at,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                report.inserted += 1
            else:
                contact_id = current.id
                cipher_or_none = ciphers.get(contact_id)
                if cipher_or_none is None:
                    report.suppressed += 1  # key destroyed mid-flight: treat as erased
                    continue
                updates.append(
                    self._update_values(cipher_or_none, current, row, public, personal, now)
                )
                report.updated += 1
            touched.append((contact_id, row))
        if new_keys:
            conn.execute(insert(data_keys), new_keys)
        if new_contacts:
            conn.execute(insert(contacts), new_contacts)
        if updates:
            self._apply_updates(conn, updates)
        self._write_history(conn, touched)

    @staticmethod
    def _update_values(
        cipher: ContactCipher,
        current: Any,
        row: ContactIn,
        public: dict[str, Any],
        personal: dict[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        """Fields given in the file overwrite; fields left empty keep what is stored."""
        merged_personal = {**cipher.open_json("attributes_ct", current.attributes_ct), **personal}
        values: dict[str, Any] = {
            "b_id": current.id,
            "email_ct": cipher.seal("email_ct", row.email),
            "attributes_ct": cipher.seal_json("attributes_ct", merged_personal),
            "attributes": {**(current.attributes or {}), **public},
            "updated_at": now,
        }
        for name in ("first_name", "last_name", "phone"):
            value = getattr(row, name)
            values[f"{name}_ct"] = cipher.seal(f"{name}_ct", value) if value is not None else None
        for name in ("locale", "timezone", "signup_at"):
            values[name] = getattr(row, name)
        return values

    @staticmethod
    def _apply_updates(conn: Connection, updates: list[dict[str, Any]]) -> None:
        # Group by which optional columns are given, so one executemany per shape.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for values in updates:
            given = {k: v for k, v in values.items() if v is not None}
            shapes.setdefault(tuple(sorted(given)), []).append(given)
        for keys, rows in shapes.items():
            stmt = (
                update(contacts)
                .where(contacts.c.id == bindparam("b_id"))
                .values({k: bindparam(k) for k in keys if k != "b_id"})
            )
            conn.execute(stmt, rows)

    def _write_history(self, conn: Connection, touched: list[tuple[UUID, ContactIn]]) -> None:
        with_orders = [cid for cid, row in touched if row.orders is not None]
        with_events = [cid for cid, row in touched if row.engagement is not None]
        if with_orders:
            conn.execute(delete(orders_t).where(orders_t.c.contact_id.in_(with_orders)))
        if with_events:
            conn.execute(delete(engagement_t).where(engagement_t.c.contact_id.in_(with_events)))
        order_rows: list[dict[str, Any]] = []
        event_rows: list[dict[str, Any]] = []
        for cid, row in touched:
            seen_refs: set[str] = set()
            for o in row.orders or []:
                if o.order_ref in seen_refs:
                    continue
                seen_refs.add(o.order_ref)
                order_rows.append(
                    {
                        "contact_id": cid,
                        "order_ref": o.order_ref,
                        "ordered_at": o.ordered_at,
                        "amount_cents": o.amount_cents,
                        "currency": o.currency,
                        "category": o.category,
                    }
                )
            for e in row.engagement or []:
                event_rows.append(
                    {
                        "contact_id": cid,
                        "occurred_at": e.occurred_at,
                        "kind": e.kind,
                        "campaign": e.campaign,
                    }
                )
        if order_rows:
            conn.execute(insert(orders_t), order_rows)
        if event_rows:
            conn.execute(insert(engagement_t), event_rows)
        self._grant_imported_consent(conn, touched)

    def _grant_imported_consent(
        self, conn: Connection, touched: list[tuple[UUID, ContactIn]]
    ) -> None:
        """Consent stated by the file becomes ledger events, never overriding a withdrawal.

        A topic is granted when the contact has no state for it yet, or when the file
        proves consent (``consent_at``) newer than the withdrawal or expiry it has.
        Re-importing the same file therefore records nothing twice and never
        re-subscribes someone who unsubscribed.
        """
        wanted = [(cid, row) for cid, row in touched if row.topics]
        if not wanted:
            return
        known: dict[tuple[UUID, str], Any] = {}
        ids = [cid for cid, _ in wanted]
        for start in range(0, len(ids), 500):
            for r in conn.execute(
                select(
                    state_t.c.contact_id, state_t.c.topic, state_t.c.state, state_t.c.since
                ).where(state_t.c.contact_id.in_(ids[start : start + 500]))
            ):
                known[(r.contact_id, r.topic)] = r
        events: list[NewEvent] = []
        now = datetime.now(UTC)
        for cid, row in wanted:
            for topic in row.topics:
                current = known.get((cid, topic))
                if current is not None and (
                    current.state in (ConsentState.SUBSCRIBED, ConsentState.PENDING)
                    or row.consent_at is None
                    or row.consent_at <= current.since
                ):
                    continue
                at = row.consent_at or now
                regime = row.consent_regime or self.regime
                events.append(
                    NewEvent(
                        contact_id=cid,
                        topic=topic,
                        event=ConsentEventType.GRANTED,
                        source=Source.IMPORT,
                        regime=regime,
                        lawful_basis="consent" if regime != Regime.CASL_IMPLIED else "implied",
                        occurred_at=at,
                        expires_at=at + CASL_IMPLIED_PURCHASE
                        if regime == Regime.CASL_IMPLIED
                        else None,
                        detail={"import_id": self.import_id, "stated_source": row.consent_source}
                        if row.consent_source
                        else {"import_id": self.import_id},
                    )
                )
        ledger.append(conn, self.vault, events)
        # The topic's default cadence becomes the contact's (a choice already made stays).
        store_default_cadences(conn, self.topics, [(e.contact_id, e.topic) for e in events])


def _counts(report: ImportReport) -> dict[str, int]:
    return {name: getattr(report, name) for name in COUNTERS}


def _restore(report: ImportReport, counts: dict[str, int]) -> None:
    for name, value in counts.items():
        setattr(report, name, value)


def _error_name(exc: BaseException) -> str:
    """The driver's error class (NumericValueOutOfRange, ...): its message may quote the row."""
    return type(getattr(exc, "orig", None) or exc).__name__


def _merged(earlier: ContactIn, later: ContactIn) -> ContactIn:
    """A new row: ``later`` on top of ``earlier`` (the rows stay as read, for a retry)."""
    merged = replace(earlier, topics=list(earlier.topics), attributes=dict(earlier.attributes))
    _merge_into(merged, later)
    return merged


def _merge_into(earlier: ContactIn, later: ContactIn) -> None:
    """Apply ``later`` on top of ``earlier``: given fields override, lists of topics add up."""
    for name in (
        "email",
        "first_name",
        "last_name",
        "phone",
        "locale",
        "timezone",
        "signup_at",
        "consent_source",
        "consent_regime",
        "consent_at",
        "orders",
        "engagement",
    ):
        value = getattr(later, name)
        if value is not None:
            setattr(earlier, name, value)
    earlier.topics += [t for t in later.topics if t not in earlier.topics]
    earlier.attributes.update(later.attributes)
    earlier.line = later.line
