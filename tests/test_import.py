"""Import: formats, validation, rejects, upsert, atomic batches and resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from engine.config import Settings
from engine.errors import ImportFileError
from engine.models import ConsentStateRow, EngagementEvent, Order
from engine.people.importer import _Batcher, import_file
from engine.vault import Vault
from engine.vault.vault import contacts, data_keys
from tests.helpers import contact_ids, emails, people, write_jsonl

orders_t = Order.__table__  # type: ignore[attr-defined]
engagement_t = EngagementEvent.__table__  # type: ignore[attr-defined]
consents_t = ConsentStateRow.__table__  # type: ignore[attr-defined]

MESSY_CSV = (
    "\ufeffEmail,First Name,Last-Name,Locale,Time Zone,Topics,Consent Source,Consent At,vip\r\n"
    "Mei.Wang@Example.NET,美玲,王,zh-CN,Asia/Shanghai,news;offers,checkout,2025-03-04T10:12:00Z,yes\r\n"
    "bad-address,x,y,,,,,,\r\n"
    '"o.brien@example.org","Seán, ""Jr""","Ó Briain 😀",en_IE,Europe/Dublin,,,,\r\n'
    '"multi@example.org","Line","Break\r\nSurname",en_GB,,,,,\r\n'
    "yael@example.org,יעל,כהן,he_IL,Asia/Jerusalem,news,,,\r\n"
    "sara@example.org,سارة,العلي,ar_EG,Mars/Olympus,,,,\r\n"
    '"Mei <mei@example.com>",Mei,,,,,,,\r\n'
    '"""john doe""@example.com",John,,,,,,,\r\n'
    "user@[192.0.2.1],Lit,,,,,,,\r\n"
    "mei.wang@example.net,,,,,product-updates,,,\r\n"
)


def test_messy_csv_good_rows_land_bad_rows_are_reported(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "messy.csv"
    path.write_bytes(MESSY_CSV.encode("utf-8"))
    report = import_file(engine, vault, settings, path)
    assert report.rows_read == 10
    assert (report.inserted, report.updated, report.rejected) == (3, 1, 6)
    assert report.rejects_path is not None
    with report.rejects_path.open(encoding="utf-8") as fh:
        rejects = list(csv.DictReader(fh))
    assert [int(r["line"]) for r in rejects] == [3, 5, 8, 9, 10, 11]
    reasons = " ".join(r["reason"] for r in rejects)
    assert "timezone" in reasons and "display names" in reasons
    assert "quoted local parts" in reasons and "domain literals" in reasons
    assert "control characters" in reasons  # the line break inside a last name
    text = report.rejects_path.read_text(encoding="utf-8")
    for fragment in ("bad-address", "mei@example.com", "john doe", "192.0.2.1", "سارة"):
        assert fragment not in text

    ids = contact_ids(engine)
    with engine.connect() as conn:
        read = vault.read(
            conn, ids, ["email", "first_name", "last_name", "attributes"], purpose="t"
        )
        topics = conn.execute(select(consents_t.c.topic).order_by(consents_t.c.topic)).scalars()
        topic_list = list(topics)
    by_email = {p.email: p for p in read.values()}
    assert set(by_email) == {"mei.wang@example.net", "o.brien@example.org", "yael@example.org"}
    mei = by_email["mei.wang@example.net"]  # the later spelling wins
    assert (mei.first_name, mei.last_name) == ("美玲", "王")  # the later row kept the names
    assert mei.attributes == {"vip": "yes"}  # undeclared attributes are personal: encrypted
    assert by_email["o.brien@example.org"].first_name == 'Seán, "Jr"'
    assert by_email["o.brien@example.org"].last_name == "Ó Briain 😀"
    assert by_email["yael@example.org"].first_name == "יעל"
    assert topic_list == ["news", "news", "offers", "product-updates"]


def test_jsonl_with_history_and_upsert_replaces_history(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    row = people(1)[0] | {
        "attributes": {"loyalty_tier": "gold", "birth_year": 1988},
        "orders": [
            {
                "order_id": "a",
                "ordered_at": "2026-01-01T10:00:00Z",
                "amount": "10.00",
                "currency": "EUR",
                "category": "outdoor",
            },
            {
                "order_id": "b",
                "ordered_at": "2026-02-01T10:00:00Z",
                "amount": "5.5",
                "currency": "EUR",
                "category": "books",
            },
        ],
        "engagement": [{"at": "2026-02-02T10:00:00Z", "kind": "open", "campaign": "feb"}],
    }
    import_file(engine, vault, settings, write_jsonl(tmp_path / "a.jsonl", [row]))
    row["orders"] = row["orders"][:1]
    report = import_file(engine, vault, settings, write_jsonl(tmp_path / "b.jsonl", [row]))
    assert (report.inserted, report.updated) == (0, 1)
    with engine.connect() as conn:
        amounts = list(conn.execute(select(orders_t.c.amount_cents)).scalars())
        public = conn.execute(select(contacts.c.attributes)).scalar_one()
        n_events = conn.execute(select(func.count()).select_from(engagement_t)).scalar_one()
        person = vault.read(conn, contact_ids(engine), ["attributes"], purpose="t")
    assert amounts == [1000]
    assert n_events == 1
    assert public == {"loyalty_tier": "gold"}  # declared public: plain, usable for segments
    assert next(iter(person.values())).attributes == {"birth_year": 1988}


def test_a_crash_never_leaves_half_a_batch_and_the_rerun_resumes(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", people(25))
    real = _Batcher._write_history
    calls = {"n": 0}

    def crash_on_third_batch(self: _Batcher, conn, touched):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(self, conn, touched)

    monkeypatch.setattr(_Batcher, "_write_history", crash_on_third_batch)
    with pytest.raises(RuntimeError):
        import_file(engine, vault, settings, path, batch_size=10)
    with engine.connect() as conn:
        n_contacts = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
        n_keys = conn.execute(select(func.count()).select_from(data_keys)).scalar_one()
    assert (n_contacts, n_keys) == (20, 20)  # two whole batches; none of the third

    monkeypatch.setattr(_Batcher, "_write_history", real)
    report = import_file(engine, vault, settings, path, batch_size=10)
    assert report.resumed_after_line == 20
    assert (report.rows_read, report.inserted) == (25, 25)  # the whole run, not the rest
    assert report.read_now == 5  # what this run read itself: its rows/s
    assert len(emails(engine, vault)) == 25


def test_unreadable_files_are_refused_clearly(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("email,first_name\nzoe@example.com,Zo\xeb\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="UTF-8"):
        import_file(engine, vault, settings, latin1)
    no_email = tmp_path / "noemail.csv"
    no_email.write_text("name,phone\nA,1\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="no email column"):
        import_file(engine, vault, settings, no_email)


def test_bad_json_lines_are_rejected_not_fatal(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    good = people(2)
    path.write_text(
        json.dumps(good[0]) + "\n{not json\n[1,2]\n" + json.dumps(good[1]) + "\n", encoding="utf-8"
    )
    report = import_file(engine, vault, settings, path)
    assert (report.inserted, report.rejected) == (2, 2)
    assert report.reject_reasons == {
        "not valid JSON (column 2)": 1,
        "a JSON object was expected": 1,
    }
