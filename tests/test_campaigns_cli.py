"""``tact campaigns`` as a real subprocess: init, import, create, send, report.

Quiet hours are switched off through the environment (start == end), so the
result does not depend on the hour the test runs at.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import people, write_jsonl
from tests.test_cli import assert_plain_failure, tact

NO_QUIET = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0"}


def test_create_send_report_and_refusals(tmp_path: Path) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    rows = [{**p, "topics": ["offers"]} for p in people(3)]
    rows.append({**people(1, domain="quiet.example")[0]})  # not subscribed to anything
    write_jsonl(tmp_path / "in.jsonl", rows)
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl")).code == 0, str(run)

    created = tact(tmp_path, "campaigns", "create", "promo", "--template", "autumn-2026", "--json")
    assert created.code == 0, str(created)
    data = json.loads(created.out)
    assert (data["status"], data["topic"], data["audience"]) == ("draft", "offers", {"all": True})

    sent = tact(tmp_path, "campaigns", "send", "promo", "--json", env=NO_QUIET)
    assert sent.code == 0, str(sent)
    data = json.loads(sent.out)
    assert data["status"] == "sent" and data["this_run"] == {"sent": 3}
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == 3

    reported = tact(tmp_path, "campaigns", "report", "promo", "--json")
    assert reported.code == 0, str(reported)
    data = json.loads(reported.out)
    assert data["by_status"] == {"sent": 3}
    assert data["by_reason"] == {"ok": 3}
    assert data["decisions"] == {"send:ok": 3}

    shown = tact(tmp_path, "contacts", "show", "person0@example.com", "--json")
    assert shown.code == 0, str(shown)
    decisions = json.loads(shown.out)["last_decisions"]
    assert [(d["campaign"], d["action"], d["reason"]) for d in decisions] == [
        ("promo", "send", "ok")
    ]

    assert_plain_failure(tact(tmp_path, "campaigns", "pause", "promo"), 1)
    assert_plain_failure(tact(tmp_path, "campaigns", "status", "nope"), 1)
    again = tact(tmp_path, "campaigns", "send", "promo", env=NO_QUIET)
    assert_plain_failure(again, 1)
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == 3
