"""The import corpus: every valid row lands, every bad row is rejected with its line and reason.

tests/import_corpus/ holds a JSONL and a CSV file in which valid rows are
interleaved with each kind of row that used to stop an import for good (deeply
nested JSON, a 5,000-digit integer, year-1 dates with an offset, amounts of 1e20
and 1e100000000, NaN and Infinity) and the addresses Tact cannot deliver to or
should not trust (65-octet and non-ASCII local parts, mixed-script domains), next
to legitimate internationalized domains. expected.json says what each line must
end as. Each test runs on SQLite and on PostgreSQL (the ``db_url`` fixtures).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from engine.config import Settings
from engine.db import make_engine
from engine.models import ImportRun, Order
from engine.people.export import contact_status
from engine.people.importer import import_file
from engine.vault import Vault
from engine.vault.vault import contacts
from tests.helpers import emails, people, write_jsonl
from tests.test_cli import _command, cli_env, summary, tact

CORPUS = Path(__file__).resolve().parent / "import_corpus"
EXPECTED: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
#: Every bad row of the corpus carries this in its address and name.
MARKER = "leak"
runs_t = ImportRun.__table__  # type: ignore[attr-defined]
orders_t = Order.__table__  # type: ignore[attr-defined]


def read_rejects(path: Path | None) -> dict[int, list[str]]:
    assert path is not None and path.exists()
    by_line: dict[int, list[str]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["line", "reason"]
        for line, reason in reader:
            by_line.setdefault(int(line), []).append(reason)
    return by_line


def assert_rejects_match(by_line: dict[int, list[str]], expected: dict[str, str]) -> None:
    assert sorted(by_line) == sorted(int(n) for n in expected), by_line
    for line, reason in expected.items():
        got = by_line[int(line)]
        assert len(got) == 1, f"line {line} rejected {len(got)} times"
        assert reason in got[0], f"line {line}: {got[0]!r} does not say {reason!r}"


def assert_no_content(*texts: str) -> None:
    for blob in texts:
        assert MARKER not in blob.lower()
        assert "p\u0430ypal" not in blob and "xn--pypal" not in blob


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.csv"])
def test_corpus_valid_rows_land_bad_rows_are_rejected(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
    name: str,
) -> None:
    expected = EXPECTED[name]
    report = import_file(engine, vault, settings, CORPUS / name, batch_size=4)

    assert report.rows_read == expected["rows"]
    assert report.rejected == len(expected["rejected"])
    assert sorted(emails(engine, vault).values()) == sorted(expected["imported"])
    assert report.inserted == len(expected["imported"])
    assert report.inserted + report.updated + report.rejected == report.rows_read
    assert report.rejects_path is not None
    assert_rejects_match(read_rejects(report.rejects_path), expected["rejected"])
    assert_no_content(report.rejects_path.read_text(encoding="utf-8"), logs.text)
    with engine.connect() as conn:
        status = conn.execute(select(runs_t.c.status)).scalar_one()
        public = list(conn.execute(select(contacts.c.attributes)).scalars())
    assert status == "finished"
    assert "NaN" not in json.dumps(public)  # json.dumps writes a float NaN as NaN


def test_nan_in_a_csv_is_text_and_stays_text(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_file(engine, vault, settings, CORPUS / "corpus.csv")
    with engine.connect() as conn:
        row = vault.find(conn, "valid2@example.net")
        person = vault.read(conn, [row.id], ["attributes"], purpose="t")[row.id]
    assert person.attributes == {"score": "NaN"}


def test_an_idn_address_is_one_contact_whatever_its_spelling(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_file(engine, vault, settings, CORPUS / "corpus.jsonl")
    with engine.connect() as conn:
        shown = [
            contact_status(conn, vault, settings, spelling)
            for spelling in ("hans@bücher.de", "hans@xn--bcher-kva.de", "HANS@BÜCHER.DE".lower())
        ]
        ids = {vault.find(conn, s).id for s in ("hans@bücher.de", "hans@XN--BCHER-KVA.DE")}
        person = vault.read(conn, list(ids), ["email", "last_name"], purpose="t")
    assert len(ids) == 1
    assert shown[0] == shown[1] == shown[2]
    (only,) = person.values()
    # Stored in the form SMTP without SMTPUTF8 carries; the later row updated it.
    assert (only.email, only.last_name) == ("hans@xn--bcher-kva.de", "Update")


def test_overlong_lines_are_rejected_and_the_rows_around_them_land(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    huge = "z" * (2 << 20)
    jsonl = tmp_path / "long.jsonl"
    jsonl.write_text(
        json.dumps({"email": "a@example.com"})
        + "\n"
        + json.dumps({"email": "leak@example.com", "bio": huge})
        + "\n"
        + json.dumps({"email": "b@example.com"})
        + "\n",
        encoding="utf-8",
    )
    report = import_file(engine, vault, settings, jsonl)
    assert (report.inserted, report.rejected) == (2, 1)
    assert read_rejects(report.rejects_path) == {2: ["line longer than 1,048,576 characters"]}

    table = tmp_path / "long.csv"
    table.write_text(
        "email,bio\r\n"
        "c@example.com,x\r\n"
        f"leak1@example.com,{huge}\r\n"
        "d@example.com,y\r\n"
        # An overlong line that opens a quoted field spanning two lines.
        f'leak2@example.com,"{huge}\r\nsecond line of the field"\r\n'
        "e@example.com,z\r\n",
        encoding="utf-8",
    )
    report = import_file(engine, vault, settings, table)
    assert (report.inserted, report.rejected) == (3, 2)
    by_line = read_rejects(report.rejects_path)
    assert sorted(by_line) == [3, 5]
    assert all("longer than 1,048,576 characters" in r[0] for r in by_line.values())
    assert set(emails(engine, vault).values()) == {f"{c}@example.com" for c in "abcde"}


def _refuse_category(engine: Engine, category: str) -> None:
    """A trigger that makes the database itself refuse an order: a real refusal, not a mock."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_order BEFORE INSERT ON orders "
                    f"WHEN NEW.category = '{category}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_order() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    f"BEGIN IF NEW.category = '{category}' THEN "
                    "RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_order BEFORE INSERT ON orders "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_order()"
                )
            )


def test_a_row_the_database_refuses_is_rejected_alone(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    _refuse_category(engine, "poison")
    rows = people(9)
    for i, row in enumerate(rows):
        category = "poison" if i == 4 else "books"
        row["orders"] = [
            {
                "order_id": f"o{i}",
                "ordered_at": "2025-01-01T00:00:00Z",
                "amount": "5",
                "currency": "EUR",
                "category": category,
            }
        ]
    rows.insert(6, {"email": "leak@", "first_name": "Leakname"})  # a parse reject in a batch
    path = write_jsonl(tmp_path / "refused.jsonl", rows)
    report = import_file(engine, vault, settings, path, batch_size=4)

    assert (report.rows_read, report.inserted, report.rejected) == (10, 8, 2)
    by_line = read_rejects(report.rejects_path)
    assert sorted(by_line) == [5, 7]
    assert by_line[5][0].startswith("the database refused this row")
    assert set(emails(engine, vault).values()) == {
        r["email"] for i, r in enumerate(people(9)) if i != 4
    }
    with engine.connect() as conn:
        n_orders = len(list(conn.execute(select(orders_t.c.id)).scalars()))
        run = conn.execute(select(runs_t.c.status, runs_t.c.rejected)).one()
    assert n_orders == 8
    assert tuple(run) == ("finished", 2)
    assert_no_content(report.rejects_path.read_text(encoding="utf-8"), logs.text)
    assert "person4" not in logs.text


# -- a killed import ---------------------------------------------------------------------------

KILL_ROWS = 3000  # 300 batches: the kill lands long before the last
KILL_BATCH = 10
#: Lines (1-based) of bad rows spread over the file, before and after the kill.
BAD_LINES = (3, 15, 500, 999)


def _kill_file(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, row in enumerate(people(KILL_ROWS), start=1):
            if i in BAD_LINES:
                fh.write(f'{{"email": "leak{i}@example.com", "n": NaN}}\n')
            else:
                fh.write(json.dumps(row) + "\n")
    return path


def _wait(condition: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_import_resumes_and_counts_the_whole_run(tmp_path: Path, db_url: str) -> None:
    env = {"TACT_DATABASE_URL": db_url}
    init = tact(tmp_path, "init", env=env)
    assert init.code == 0, str(init)
    path = _kill_file(tmp_path / "big.jsonl")
    watcher = make_engine(db_url, pool=False)
    args = ["contacts", "import", path.name, "--batch-size", str(KILL_BATCH)]
    proc = subprocess.Popen(
        _command(args),
        cwd=tmp_path,
        env=cli_env(tmp_path, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def committed() -> int:
            with watcher.connect() as conn:
                return int(conn.execute(select(runs_t.c.checkpoint_line)).scalar() or 0)

        _wait(committed, "the first committed batch")
        # Killed at once, then read: what the kill left behind. (Holding SQLite's write
        # lock first is no fence: its busy handler let the importer finish meanwhile.)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    with watcher.connect() as conn:
        status, checkpoint = conn.execute(select(runs_t.c.status, runs_t.c.checkpoint_line)).one()
    run = (status, checkpoint)
    assert status == "running" and 0 < checkpoint < KILL_ROWS, run

    rerun = tact(
        tmp_path, "contacts", "import", path.name, "--batch-size", str(KILL_BATCH), env=env
    )
    assert rerun.code == 0, str(rerun)
    assert re.search(rf"resumed after line\W+{checkpoint}\b", rerun.flat), str(rerun)
    numbers = summary(rerun)
    assert numbers == {
        "rows_read": KILL_ROWS,
        "inserted": KILL_ROWS - len(BAD_LINES),
        "updated": 0,
        "rejected": len(BAD_LINES),
        "suppressed": 0,
    }
    # The reasons of the whole run too, though the rejects before the kill were not re-read.
    assert re.search(rf"rejected: NaN or Infinity\W+{len(BAD_LINES)}\b", rerun.flat), str(rerun)
    rejects = read_rejects(next((tmp_path / "var" / "imports").glob("*.rejects.csv")))
    assert sorted(rejects) == list(BAD_LINES)  # each once, though some were read twice
    log_file = tmp_path / "var" / "log" / "tact.log"
    log_text = log_file.read_text(encoding="utf-8")
    assert "line 3 rejected" in log_text  # the log file is the one the import wrote to
    assert_no_content(rerun.text, json.dumps(rejects), log_text)
    with watcher.connect() as conn:
        n_contacts = len(list(conn.execute(select(contacts.c.id)).scalars()))
        final = conn.execute(select(runs_t.c.status, runs_t.c.rejected)).one()
    watcher.dispose()
    assert n_contacts == KILL_ROWS - len(BAD_LINES)
    assert tuple(final) == ("finished", len(BAD_LINES))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_row_that_is_not_utf8_is_rejected_alone(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path, suffix: str
) -> None:
    def row(email: str, name: bytes) -> bytes:
        if suffix == ".csv":
            return email.encode() + b"," + name + b"\n"
        return b'{"email": "' + email.encode() + b'", "first_name": "' + name + b'"}\n'

    path = tmp_path / f"mixed{suffix}"
    path.write_bytes(
        (b"email,first_name\n" if suffix == ".csv" else b"")
        + row("a@example.com", b"Ann")
        + row("leak@example.com", b"Zo\xeb")  # Latin-1 in a UTF-8 file
        + row("b@example.com", "Zoë".encode())
    )
    report = import_file(engine, vault, settings, path)
    assert (report.inserted, report.rejected) == (2, 1)
    first = 3 if suffix == ".csv" else 2
    assert read_rejects(report.rejects_path) == {first: ["not valid UTF-8"]}
    assert set(emails(engine, vault).values()) == {"a@example.com", "b@example.com"}
