"""Imports started at the same time count only their own file, on SQLite and PostgreSQL.

Uploads go through :func:`engine.app.imports.start_import`, as the console and the API
call it. Two different files at once: each import's progress and summary count its own
rows. The same file uploaded at once through two runtimes (two processes on one
database): it was imported twice into one run, each importer overwriting the other's
counters and checkpoint (one said 6,000 inserted, the other 0 inserted and 6,000
updated, for the same run); now one importer holds the run (its claim) and the other
upload follows it. A run held by a live importer is ``running`` for every process, not
``interrupted``; once let go, uploading the file again resumes it.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from engine.app import contacts, imports
from engine.config import Settings
from engine.errors import ImportFileError
from engine.models import AuditEvent, Contact, ImportRun
from engine.people.importer import claim_run, file_sha256, run_claimed
from engine.runtime import Runtime
from engine.vault import Keyring, Vault
from tests.helpers import people

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
runs_t = ImportRun.__table__  # type: ignore[attr-defined]
contacts_t = Contact.__table__  # type: ignore[attr-defined]

BATCH = 50


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Small batches, so that two imports' batches interleave."""
    return Settings(var_dir=tmp_path / "var", database_url=db_url, import_batch_size=BATCH)


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


def _jsonl(n: int, bad: int, domain: str) -> bytes:
    """``n`` good rows and ``bad`` rows without an address among them."""
    rows = [json.dumps(p) for p in people(n, domain)]
    for i in range(bad):
        rows.insert(i * 9 + 2, json.dumps({"email": f"not-an-address-{i}"}))
    return ("\n".join(rows) + "\n").encode()


def _csv(n: int, bad: int) -> bytes:
    lines = ["email,first_name"] + [f"csv{i}@b.example,Csvname" for i in range(n)]
    lines += [f"broken-{i},Csvname" for i in range(bad)]
    return ("\n".join(lines) + "\n").encode()


def _at_once(calls: list[tuple[Runtime, bytes, str]]) -> list[imports.ImportProgress]:
    """Every upload started in its own thread at the same moment (concurrent requests)."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def go(i: int, runtime: Runtime, data: bytes, name: str) -> None:
        barrier.wait()
        try:
            out[i] = imports.start_import(runtime, io.BytesIO(data), filename=name)
        except BaseException as exc:  # shown by the assert below
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i, *c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for got in out:
        assert isinstance(got, imports.ImportProgress), got
    return out


def _until_done(runtimes: list[Runtime], import_id: int) -> imports.ImportProgress:
    deadline = time.monotonic() + 120
    while True:
        for runtime in runtimes:
            done = imports.wait_import(runtime, import_id, timeout=0.2)
            if done.done:
                return done
        assert time.monotonic() < deadline, "the import did not end"


def _finished_audits(engine: Engine, import_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_t.c.detail).where(audit_t.c.action == "import.finished")
        ).scalars()
        return [dict(d) for d in rows if d["import_id"] == import_id]


def _counts(p: imports.ImportProgress) -> tuple[int, int, int, int]:
    return (p.rows_read, p.inserted, p.updated, p.rejected)


def test_two_different_uploads_at_once_count_only_their_own_file(rt: Runtime) -> None:
    a, b = _jsonl(600, 7, "a.example"), _csv(260, 3)
    first, second = _at_once([(rt, a, "a.jsonl"), (rt, b, "b.csv")])
    assert first.id != second.id
    seen: dict[int, list[imports.ImportProgress]] = {first.id: [], second.id: []}
    while not all(imports.import_progress(rt, i).done for i in seen):
        for i in seen:
            seen[i].append(imports.import_progress(rt, i))
    done_a = imports.wait_import(rt, first.id, timeout=120)
    done_b = imports.wait_import(rt, second.id, timeout=120)
    assert done_a.status == done_b.status == "finished", (done_a, done_b)
    assert (done_a.source_name, _counts(done_a)) == ("a.jsonl", (607, 600, 0, 7))
    assert (done_b.source_name, _counts(done_b)) == ("b.csv", (263, 260, 0, 3))
    assert done_a.bytes_done == len(a) and done_b.bytes_done == len(b)
    # While they ran, neither ever counted more than its own file holds.
    for snapshot in seen[first.id]:
        assert snapshot.rows_read <= 607 and snapshot.inserted <= 600 and snapshot.rejected <= 7
    for snapshot in seen[second.id]:
        assert snapshot.rows_read <= 263 and snapshot.inserted <= 260 and snapshot.rejected <= 3
    # The summaries in the audit log, and the rejects files, are each its own.
    assert [d["rows"] for d in _finished_audits(rt.engine, first.id)] == [607]
    assert [d["rows"] for d in _finished_audits(rt.engine, second.id)] == [263]
    for done, reasons in ((done_a, 7), (done_b, 3)):
        path = imports.rejects_file(rt, done.id)
        assert path is not None
        assert len(path.read_text("utf-8").splitlines()) == 1 + reasons
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(contacts_t)).scalar_one() == 860


def test_the_same_file_uploaded_at_once_by_two_processes_is_imported_once(
    rt: Runtime, settings: Settings
) -> None:
    data = _jsonl(600, 4, "same.example")
    other = Runtime(settings, configure_logging=False)  # a second process on the database
    try:
        one, two = _at_once([(rt, data, "people.jsonl"), (other, data, "copy.jsonl")])
        assert one.id == two.id  # one run: the later upload follows it
        done = _until_done([rt, other], one.id)
        assert done.status == "finished", done
        assert _counts(done) == (604, 600, 0, 4)  # counted once, by one importer
        for runtime in (rt, other):
            assert _counts(imports.import_progress(runtime, one.id)) == (604, 600, 0, 4)
    finally:
        other.close()
    assert [
        (d["rows"], d["inserted"], d["updated"]) for d in _finished_audits(rt.engine, one.id)
    ] == [(604, 600, 0)]
    with rt.engine.connect() as conn:
        started = conn.execute(
            select(func.count()).select_from(audit_t).where(audit_t.c.action == "import.started")
        ).scalar_one()
        assert started == 1
        assert conn.execute(select(func.count()).select_from(runs_t)).scalar_one() == 1
    assert not run_claimed(rt.engine, rt.settings, one.id)  # let go when it ended
    assert list((rt.settings.var_dir / "imports").glob("*.lock")) == []


def test_a_held_run_is_running_everywhere_and_resumes_once_let_go(
    rt: Runtime, tmp_path: Path
) -> None:
    data = _jsonl(120, 0, "held.example")
    file = tmp_path / "held.jsonl"
    file.write_bytes(data)
    with rt.engine.begin() as conn:  # a run another process has begun
        held_id = int(
            conn.execute(
                insert(runs_t)
                .values(
                    source_name="held.jsonl",
                    file_sha256=file_sha256(file),
                    started_at=datetime.now(UTC),
                )
                .returning(runs_t.c.id)
            ).scalar_one()
        )
    assert imports.import_progress(rt, held_id).status == "interrupted"  # nobody holds it
    claim = claim_run(rt.engine, rt.settings, held_id)  # that process's importer
    assert claim is not None
    try:
        assert claim_run(rt.engine, rt.settings, held_id) is None  # one importer at a time
        assert imports.import_progress(rt, held_id).status == "running"
        again = imports.start_import(rt, io.BytesIO(data), filename="held.jsonl")
        assert (again.id, again.status, again.rows_read) == (held_id, "running", 0)
        with pytest.raises(ImportFileError, match=f"being imported now \\(import {held_id}\\)"):
            contacts.import_contacts(rt, file)  # tact contacts import, meanwhile
        time.sleep(0.3)
        assert imports.import_progress(rt, held_id).rows_read == 0  # nobody entered it
    finally:
        claim.release()
    assert imports.import_progress(rt, held_id).status == "interrupted"
    resumed = imports.start_import(rt, io.BytesIO(data), filename="held.jsonl")
    assert resumed.id == held_id
    done = imports.wait_import(rt, held_id, timeout=60)
    assert (done.status, done.inserted, done.rows_read) == ("finished", 120, 120)
    assert _finished_audits(rt.engine, held_id)[0]["inserted"] == 120
