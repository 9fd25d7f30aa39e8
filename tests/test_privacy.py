"""Invariant 1: no plaintext personal data at rest.

After the demo (generate, import, segments, the campaign sent through the
pipeline into the outbox) and an erasure, no address, name or phone number of
any customer appears in any file under ``var/`` but the outbox: not in the
database (outbox rows and gate decisions included), its write-ahead log or its
keystore, not in the logs, the rejects file or the keyring. On PostgreSQL the
same holds for a ``pg_dump`` of the database. The outbox itself must hold the
messages, so the scan cannot pass by finding nothing at all.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.app.demo import DemoReport, run_demo
from engine.config import Settings
from engine.db import engine_from_settings
from engine.errors import InvalidAddress
from engine.logs import configure
from engine.models import OutboxStatus
from engine.people.erasure import erase_contact
from engine.synthetic import generate_customers
from engine.vault import Vault, normalize_address
from support.services import find_pg_bindir, libpq_url

CUSTOMERS = 300
SEED = 7
BAD_ROWS = 12  # run_demo's default: the rejects file and its log lines are scanned too
#: Needles shorter than this could turn up by chance in ciphertext, so none is used.
MIN_NEEDLE = 6
_ADDRESS_IN_BRACKETS = re.compile(r"<([^<>]+@[^<>]+)>")


# -- what to look for, and a fast way to look -----------------------------------------------------


def _variants(text: str) -> set[str]:
    out = {text, text.lower(), text.casefold()}
    escaped = json.dumps(text)[1:-1]  # a JSON column would store non-ASCII as \\uXXXX
    out.add(escaped)
    return out


def personal_needles(records: Iterable[dict[str, Any]]) -> set[bytes]:
    """Byte strings that must not be found at rest: addresses, names, phone numbers."""
    texts: set[str] = set()
    for record in records:
        address = record.get("email")
        if isinstance(address, str) and "@" in address:
            texts |= _variants(address)
            inner = _ADDRESS_IN_BRACKETS.search(address)
            if inner:
                texts |= _variants(inner.group(1))
            try:
                texts |= _variants(normalize_address(address))
            except InvalidAddress:
                pass
        first = record.get("first_name") or ""
        last = record.get("last_name") or ""
        if first and last:
            texts |= _variants(f"{first} {last}")
            texts |= _variants(f"{last}{first}")  # CJK order
            texts |= _variants(f"{last} {first}")
        texts |= _variants(first) | _variants(last)
        phone = record.get("phone")
        if phone:
            texts |= _variants(phone)
    return {t.encode("utf-8") for t in texts if len(t.encode("utf-8")) >= MIN_NEEDLE}


def find_needles(data: bytes, needles: Iterable[bytes]) -> list[bytes]:
    """The needles found in ``data``.

    One pass builds the set of all MIN_NEEDLE-byte windows; a needle is searched
    for in full only if its first and last windows occur (thousands of needles
    times megabytes of data would otherwise take seconds).
    """
    w = MIN_NEEDLE
    windows = {data[i : i + w] for i in range(len(data) - w + 1)}
    return sorted(n for n in needles if n[:w] in windows and n[-w:] in windows and n in data)


def scan(files: Iterable[Path], needles: set[bytes]) -> dict[str, list[str]]:
    leaks: dict[str, list[str]] = {}
    for path in files:
        found = find_needles(path.read_bytes(), needles)
        if found:
            leaks[str(path)] = [n.decode("utf-8", "replace") for n in found[:10]]
    return leaks


def files_at_rest(var_dir: Path) -> list[Path]:
    outbox = var_dir / "outbox"
    return sorted(p for p in var_dir.rglob("*") if p.is_file() and outbox not in p.parents)


def test_the_scan_finds_what_it_looks_for() -> None:
    """The scanner itself, on planted data: a clean scan must mean something."""
    record = {"email": "Mei.Wang@Example.NET", "first_name": "美玲", "last_name": "王"}
    needles = personal_needles([record])
    assert b"mei.wang@example.net" in needles
    assert "王美玲".encode() in needles and "美玲 王".encode() in needles
    assert "美玲".encode() in needles  # 6 bytes in UTF-8
    assert "王".encode() not in needles  # 3 bytes: too short to be evidence
    noise = bytes(range(256)) * 40
    for planted in ("mei.wang@example.net", "王美玲", "\\u7f8e\\u73b2"):
        data = noise + planted.encode() + noise
        assert find_needles(data, needles) != [], planted
    assert find_needles(noise, needles) == []
    hexed = {n.hex().encode() for n in needles}
    assert find_needles(noise + "美玲".encode().hex().encode() + noise, hexed) != []


# -- logging into a test's own file ------------------------------------------------------------


@pytest.fixture
def tact_log(tmp_path: Path) -> Iterator[Path]:
    """``engine.logs.configure`` as the CLI calls it, undone afterwards.

    configure() installs one handler per process; one left by another test would
    keep this test's lines out of this test's file, so it is set aside meanwhile.
    """
    root = logging.getLogger()
    level = root.level
    earlier = [h for h in root.handlers if getattr(h, "_tact", False)]
    for handler in earlier:
        root.removeHandler(handler)
    path = tmp_path / "var" / "log" / "tact.log"
    configure(path)
    added = [h for h in root.handlers if getattr(h, "_tact", False)]
    assert added, "configure() installed no handler"
    try:
        yield path
    finally:
        for handler in added:
            root.removeHandler(handler)
            handler.close()
        for handler in earlier:
            root.addHandler(handler)
        root.setLevel(level)


def flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


# -- the invariant ---------------------------------------------------------------------------


def pg_dump_binary() -> str:
    """pg_dump of the server's version: next to initdb (PATH may hold only a symlink)."""
    bindir = find_pg_bindir()
    if bindir is not None:
        for candidate in (bindir / "pg_dump", (bindir / "initdb").resolve().parent / "pg_dump"):
            if candidate.is_file():
                return str(candidate)
    found = shutil.which("pg_dump")
    if found is None:
        pytest.fail("pg_dump not found (install the PostgreSQL client)", pytrace=False)
    return found


def pg_dump(db_url: str) -> bytes:
    binary = pg_dump_binary()
    done = subprocess.run(
        [binary, "--no-owner", "--no-privileges", "--dbname", libpq_url(db_url)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def test_no_personal_data_at_rest_after_the_demo(
    tmp_path: Path, settings: Settings, tact_log: Path
) -> None:
    assert settings.resolved_log_file == tact_log
    # Quiet hours off and the clock pinned: everyone subscribed is mailed in this run.
    settings = settings.model_copy(update={"quiet_hours_start": 0, "quiet_hours_end": 0})
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    report: DemoReport = run_demo(settings, customers=CUSTOMERS, seed=SEED, now=now)
    assert report.imported.inserted == CUSTOMERS
    assert report.imported.rejected == BAD_ROWS
    subscribed = [r for r in generate_customers(CUSTOMERS, seed=SEED) if "offers" in r["topics"]]
    assert report.count(OutboxStatus.SENT) == len(subscribed) > 0
    assert report.by_status == {OutboxStatus.SENT: len(subscribed)}

    records = list(generate_customers(CUSTOMERS, seed=SEED, bad_rows=BAD_ROWS))
    assert len(records) == CUSTOMERS + BAD_ROWS
    needles = personal_needles(records)
    assert len(needles) > 4 * CUSTOMERS

    # An erasure too: its log line names the contact by id, and nothing of it may stay.
    engine = engine_from_settings(settings)
    try:
        vault = Vault.from_settings(settings)
        with engine.begin() as conn:
            erased = erase_contact(conn, vault, records[0]["email"], actor="test")
        assert erased.contact_id is not None
        flush_logs()

        files = files_at_rest(settings.var_dir)
        names = {p.relative_to(settings.var_dir).as_posix() for p in files}
        expected = {
            "keys.json",
            "log/tact.log",
            f"imports/import-{report.imported.import_id}.rejects.csv",
        }
        if settings.is_sqlite:
            # Scanned while the engine is open: the write-ahead log holds the last pages.
            expected |= {"tact.db", "tact.db-wal", "tact.keystore.db"}
        assert expected <= names, names
        leaks = scan(files, needles)
        if not settings.is_sqlite:
            dump = pg_dump(settings.resolved_database_url)
            assert b"CREATE TABLE keystore.data_keys" in dump
            assert b"CREATE TABLE public.contacts" in dump
            # bytea columns are dumped as hex: plaintext in one would show as hex.
            hexed = {n.hex().encode("ascii") for n in needles}
            found = find_needles(dump, needles | hexed)
            if found:
                leaks["pg_dump"] = [n.decode("utf-8", "replace") for n in found[:10]]
    finally:
        engine.dispose()
    assert leaks == {}

    # The logs exist, name contacts by id, and hold no address (scanned above).
    text = tact_log.read_text(encoding="utf-8")
    assert text.strip()
    assert str(erased.contact_id) in text
    assert f"import {report.imported.import_id} finished" in text
    assert "rejected" in text

    # Not vacuous: the outbox does hold every message, addressed in clear.
    messages = sorted((report.outbox / "new").iterdir())
    assert len(messages) == len(subscribed)
    recipients = set()
    parser = email.parser.BytesParser(policy=email.policy.default)
    for path in messages:
        with path.open("rb") as fh:
            recipients.add(str(parser.parse(fh, headersonly=True)["To"]).lower())
    assert recipients == {normalize_address(r["email"]).lower() for r in subscribed}
    outbox_bytes = b"".join(p.read_bytes() for p in messages[:20])
    assert find_needles(outbox_bytes, needles)


# -- the redacting log filter -----------------------------------------------------------------


def test_log_filter_masks_addresses(tact_log: Path) -> None:
    log = logging.getLogger("engine.test_privacy")
    log.warning("welcome sent to %s", "mei.wang@example.net")
    log.warning("bounce for Mei.Wang+news@Example.NET (retrying)")
    log.warning("to %s and %s", "a.b@example.org", "用户@例子.广告")
    logging.getLogger("sqlalchemy.engine").warning("parameters: ('yael@example.org',)")
    log.info("contact %s updated", "0b6f1e2a-8c1d-4e2b-9a57-1c2d3e4f5a6b")
    flush_logs()
    text = tact_log.read_text(encoding="utf-8")
    for address in (
        "mei.wang@example.net",
        "Mei.Wang+news@Example.NET",
        "a.b@example.org",
        "用户@例子.广告",
        "yael@example.org",
    ):
        assert address not in text
    assert "@" not in text
    assert text.count("<address>") == 5
    assert "welcome sent to <address>" in text
    assert "contact 0b6f1e2a-8c1d-4e2b-9a57-1c2d3e4f5a6b updated" in text


def test_log_filter_masks_addresses_in_tracebacks(tact_log: Path) -> None:
    """A database error quoting a row ends up in a traceback: masked all the same."""
    log = logging.getLogger("engine.test_privacy")
    try:
        raise ValueError("duplicate key value (email)=(mei.wang@example.net)")
    except ValueError:
        log.exception("import batch failed for %s", "yael@example.org")
    flush_logs()
    text = tact_log.read_text(encoding="utf-8")
    assert "import batch failed for <address>" in text
    assert "ValueError" in text
    assert "yael@example.org" not in text
    assert "mei.wang@example.net" not in text
