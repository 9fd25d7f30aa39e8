"""Imports from a browser or a script: upload a file, follow its progress, fetch its rejects.

:func:`start_import` streams the upload to a private file (mode 0600, in a directory of
its own, 0700, under ``var/imports/``: it holds personal data), registers the import
run, and returns at once with status ``running``; the import itself
(:func:`engine.people.importer.import_file`, the same as ``tact contacts import``) runs
in a background thread of this process. The uploaded file is deleted when the import
ends, whatever happens; a directory left behind by a process that died mid-import is
deleted by the next upload once it is a day old.

Progress is kept per :class:`~engine.runtime.Runtime` (a registry of this process's
imports): ``bytes_done`` follows the importer's progress callback, the counters are
read from the run's row (each committed batch updates them). An import another process
runs, or one that ended, is read from its ``import_runs`` row alone; a row still
``running`` that no importer holds (:func:`engine.people.importer.claim_run`) shows as
``interrupted`` (upload the same file again: the import resumes after its last
committed batch). The run is claimed here, before its thread starts, and the thread
imports into that run and no other: the same file uploaded while another process
imports it gets that import's progress, not a second importer on its row.

The rejects file lists the line number and the reason of each refused row, never the
row itself (it may be personal data).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert, select, update

from engine.audit import record
from engine.db import writing
from engine.errors import ImportNotFound, TactError
from engine.models import ImportRun
from engine.people.importer import RunClaim, claim_run, import_file, run_claimed
from engine.runtime import Runtime

log = logging.getLogger(__name__)

runs_t = ImportRun.__table__  # type: ignore[attr-defined]

__all__ = [
    "ImportProgress",
    "import_progress",
    "list_imports",
    "rejects_file",
    "start_import",
    "wait_import",
]

#: The longest page :func:`list_imports` returns.
MAX_PAGE = 200
#: Bytes read from the upload at a time.
CHUNK = 1 << 20
#: Upload directories older than this are a dead process's: deleted by the next upload.
STALE_SECONDS = 24 * 3600
_UPLOAD_PREFIX = ".upload-"


@dataclass(frozen=True)
class ImportProgress:
    """Where one import stands. ``status``: running, finished, failed or interrupted."""

    id: int
    status: str
    source_name: str
    started_at: str
    finished_at: str | None
    rows_read: int
    inserted: int
    updated: int
    rejected: int
    suppressed: int
    bytes_total: int | None
    bytes_done: int | None
    rejects_available: bool
    error: str | None

    @property
    def done(self) -> bool:
        return self.status != "running"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Live:
    """One import this process runs (mutable: the thread moves it on)."""

    id: int
    source_name: str
    bytes_total: int
    bytes_done: int = 0
    status: str = "running"
    error: str | None = None
    thread: threading.Thread | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: dict[int, _Live] = {}


_registries: weakref.WeakKeyDictionary[Runtime, _Registry] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def _registry(rt: Runtime) -> _Registry:
    with _registries_lock:
        found = _registries.get(rt)
        if found is None:
            found = _registries[rt] = _Registry()
        return found


def _imports_dir(rt: Runtime) -> Path:
    return rt.settings.var_dir / "imports"


def _rejects_path(rt: Runtime, import_id: int) -> Path:
    """Where the importer writes a run's rejects (its default: import-<id>.rejects.csv)."""
    return _imports_dir(rt) / f"import-{import_id}.rejects.csv"


def _safe_name(filename: str) -> str:
    """The upload's own name, reduced to a plain file name (it is shown, and it decides the
    format by its suffix): no directory, letters, digits, ``.``, ``-`` and ``_`` only."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[-120:]
    return cleaned or "upload"


def _clear_stale(directory: Path) -> None:
    """Delete upload directories a dead process left (older than a day)."""
    cutoff = time.time() - STALE_SECONDS
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(_UPLOAD_PREFIX) or entry.is_symlink():
            continue
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _receive(rt: Runtime, data: BinaryIO, filename: str) -> tuple[Path, int, str]:
    """Stream the upload into a private file; (its path, its size, its SHA-256)."""
    directory = _imports_dir(rt)
    directory.mkdir(parents=True, exist_ok=True)
    _clear_stale(directory)
    private = Path(tempfile.mkdtemp(prefix=_UPLOAD_PREFIX, dir=directory))  # mode 0700
    path = private / _safe_name(filename)
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = data.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        raise
    return path, size, digest.hexdigest()


def _run_row(rt: Runtime, import_id: int) -> Any:
    with rt.engine.connect() as conn:
        return conn.execute(select(runs_t).where(runs_t.c.id == import_id)).first()


def _not_found(import_id: int) -> TactError:
    return ImportNotFound(f"no import with id {import_id}")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _progress(rt: Runtime, row: Any, live: _Live | None) -> ImportProgress:
    status = str(row.status)
    error = None
    bytes_total = bytes_done = None
    if live is not None:
        status, error = live.status, live.error
        bytes_total, bytes_done = live.bytes_total, live.bytes_done
    elif status == "running" and not run_claimed(rt.engine, rt.settings, int(row.id)):
        status = "interrupted"  # nobody imports it: uploading the file again resumes it
    return ImportProgress(
        id=int(row.id),
        status=status,
        source_name=str(row.source_name),
        started_at=_iso(row.started_at) or "",
        finished_at=_iso(row.finished_at),
        rows_read=int(row.rows_read or 0),
        inserted=int(row.inserted or 0),
        updated=int(row.updated or 0),
        rejected=int(row.rejected or 0),
        suppressed=int(row.suppressed or 0),
        bytes_total=bytes_total,
        bytes_done=bytes_done,
        rejects_available=_rejects_path(rt, int(row.id)).is_file(),
        error=error,
    )


def _work(rt: Runtime, live: _Live, path: Path, claim: RunClaim) -> None:
    """The thread: import into the claimed run, record how it ended, let the run go, delete
    the upload whatever happens."""

    def moved(consumed: int) -> None:
        live.bytes_done = consumed

    ended = False
    try:
        import_file(rt.engine, rt.vault, rt.settings, path, progress=moved, claim=claim)
        live.bytes_done = live.bytes_total
        live.status = "finished"
        ended = True
    except TactError as exc:
        live.error = str(exc)
        live.status = "failed"
        ended = _mark_failed(rt, live.id)
    except Exception as exc:  # the database went away...: the run stays resumable
        live.error = f"the import stopped ({type(exc).__name__}); upload the file again to resume"
        live.status = "failed"
        log.warning("import %s stopped: %s", live.id, type(exc).__name__)
    finally:
        try:
            claim.release(ended=ended)
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
            live.finished.set()


def _mark_failed(rt: Runtime, import_id: int) -> bool:
    """Record the run as failed; False when that could not be written."""
    try:
        with writing(rt.engine) as conn:
            conn.execute(
                update(runs_t)
                .where(runs_t.c.id == import_id, runs_t.c.status == "running")
                .values(status="failed", finished_at=datetime.now(UTC))
            )
    except Exception as exc:  # the run then shows as interrupted; nothing else to do
        log.warning("import %s: could not record the failure (%s)", import_id, type(exc).__name__)
        return False
    return True


def start_import(rt: Runtime, data: BinaryIO, *, filename: str) -> ImportProgress:
    """Receive the upload and start importing it in the background; returns at once with
    status ``running``. An interrupted import of the same file (same bytes) is resumed
    under its own id; the same file while it is being imported (by this process or
    another) is not started a second time (that import's progress is returned). CSV or
    JSON lines, by the name's suffix or the content, as ``tact contacts import`` reads
    them."""
    rt.vault  # noqa: B018 - refuse missing or wrong keys before receiving anything
    registry = _registry(rt)
    path, size, digest = _receive(rt, data, filename)
    started = False
    claim: RunClaim | None = None
    try:
        with registry.lock:
            with writing(rt.engine) as conn:
                previous = conn.execute(
                    select(runs_t.c.id)
                    .where(runs_t.c.file_sha256 == digest, runs_t.c.status == "running")
                    .order_by(runs_t.c.id.desc())
                ).scalar()
                if previous is not None:
                    current = registry.live.get(int(previous))
                    if current is not None and current.status == "running":
                        return import_progress(rt, int(previous))  # this process imports it
                    claim = claim_run(rt.engine, rt.settings, int(previous))
                    if claim is None:  # another process imports it now
                        return import_progress(rt, int(previous))
                    import_id = int(previous)
                else:
                    inserted = conn.execute(
                        insert(runs_t).values(
                            source_name=path.name[:255],
                            file_sha256=digest,
                            started_at=datetime.now(UTC),
                        )
                    ).inserted_primary_key
                    if inserted is None:
                        raise RuntimeError("the database returned no id for the import run")
                    import_id = int(inserted[0])
                    # Claimed before the run is committed: nobody sees it unclaimed.
                    claim = claim_run(rt.engine, rt.settings, import_id)
                    if claim is None:
                        raise RuntimeError(f"import {import_id} could not be claimed")
                record(
                    conn,
                    "import.started",
                    datetime.now(UTC),
                    import_id=import_id,
                    bytes=size,
                    resumed=previous is not None,
                )
            live = _Live(import_id, path.name, size)
            # What the caller gets: taken before the thread starts, so it says "running".
            progress = _progress(rt, _run_row(rt, import_id), live)
            context = contextvars.copy_context()  # the thread acts as the caller did
            live.thread = threading.Thread(
                target=context.run,
                args=(_work, rt, live, path, claim),
                name=f"tact-import-{import_id}",
                daemon=True,
            )
            registry.live[import_id] = live
            live.thread.start()
            started = True
    finally:
        if not started:
            if claim is not None:
                claim.release()
            shutil.rmtree(path.parent, ignore_errors=True)
    return progress


def import_progress(rt: Runtime, import_id: int) -> ImportProgress:
    """Where the import stands: live from this process's registry, else from its row."""
    row = _run_row(rt, import_id)
    if row is None:
        raise _not_found(import_id)
    return _progress(rt, row, _registry(rt).live.get(import_id))


def wait_import(rt: Runtime, import_id: int, *, timeout: float | None = None) -> ImportProgress:
    """Wait until an import this process runs has ended (or ``timeout`` seconds passed),
    then its progress."""
    live = _registry(rt).live.get(import_id)
    if live is not None:
        live.finished.wait(timeout)
    return import_progress(rt, import_id)


def list_imports(
    rt: Runtime, *, before: int | None = None, limit: int = 50
) -> list[ImportProgress]:
    """Imports newest first, ``limit`` at most, with an id below ``before``."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(runs_t).order_by(runs_t.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(runs_t.c.id < before)
    with rt.engine.connect() as conn:
        rows = conn.execute(query).all()
    live = _registry(rt).live
    return [_progress(rt, row, live.get(int(row.id))) for row in rows]


def rejects_file(rt: Runtime, import_id: int) -> Path | None:
    """The import's rejects file (CSV: line, reason; never a row's content), or None when
    no row was refused (or the import has not refused one yet)."""
    if _run_row(rt, import_id) is None:
        raise _not_found(import_id)
    path = _rejects_path(rt, import_id)
    return path if path.is_file() else None
