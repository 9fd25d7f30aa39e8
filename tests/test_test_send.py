"""``tact campaigns test``: one copy to a typed address, outside the campaign's bookkeeping.

A real subprocess on the embedded default (Maildir outbox). The test copy arrives
addressed to the typed address with the sample fields, carries a fresh Message-ID each
time, leaves the campaign's outbox and the consent ledger untouched, and its audit
event names the campaign and the Message-ID, never the address.
"""

from __future__ import annotations

import email
import json
import sqlite3
from email import policy
from pathlib import Path

from tests.helpers import people, write_jsonl
from tests.test_cli import assert_plain_failure, tact

TO = "marketer.test@example.org"


def _messages(tmp_path: Path) -> list[email.message.EmailMessage]:
    new = tmp_path / "var" / "outbox" / "new"
    return (
        [
            email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(new.iterdir())
        ]
        if new.exists()
        else []
    )


def test_a_test_send_reaches_the_address_and_touches_no_campaign_state(tmp_path: Path) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in people(2)])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl")).code == 0, str(run)
    created = tact(tmp_path, "campaigns", "create", "promo", "--template", "autumn-2026")
    assert created.code == 0, str(created)

    first = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, "--json")
    assert first.code == 0, str(first)
    sent = json.loads(first.out)
    assert (sent["campaign"], sent["version"], sent["status"]) == ("promo", "standard", "sent")
    second = tact(
        tmp_path, "campaigns", "test", "promo", "--to", TO, "--segment", "win-back", "--json"
    )
    assert second.code == 0, str(second)
    assert json.loads(second.out)["version"] == "win-back"

    messages = _messages(tmp_path)
    assert [m["To"] for m in messages] == [TO, TO]
    assert len({m["Message-ID"] for m in messages}) == 2
    assert sent["message_id"] in {m["Message-ID"] for m in messages}
    subjects = {str(m["Subject"]) for m in messages}
    assert "The autumn collection is here" in subjects  # the standard subject
    assert "It has been a while: see what is new this autumn" in subjects  # win-back's

    db = sqlite3.connect(tmp_path / "var" / "tact.db")
    try:
        assert db.execute("select count(*) from outbox").fetchone() == (0,)
        assert db.execute("select count(*) from send_reservations").fetchone() == (0,)
        audit = db.execute(
            "select detail from audit_events where action = 'campaign.test_sent'"
        ).fetchall()
    finally:
        db.close()
    assert len(audit) == 2
    assert all(TO not in text and "marketer" not in text for (text,) in audit)
    status = json.loads(tact(tmp_path, "campaigns", "status", "promo", "--json").out)
    assert status["status"] == "draft"


def test_a_test_send_refuses_a_bad_address_and_an_unknown_segment(tmp_path: Path) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    created = tact(tmp_path, "campaigns", "create", "promo", "--template", "autumn-2026")
    assert created.code == 0, str(created)
    assert_plain_failure(tact(tmp_path, "campaigns", "test", "promo", "--to", "not an address"), 1)
    unknown = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, "--segment", "nope")
    assert_plain_failure(unknown, 1)
    assert "no version for segment 'nope'" in unknown.flat
    assert _messages(tmp_path) == []
