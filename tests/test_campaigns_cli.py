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


def test_send_refuses_a_campaign_not_due_and_now_launches_it(tmp_path: Path) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in people(3)])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl")).code == 0, str(run)
    at = "2099-01-01T09:00:00+00:00"
    created = tact(tmp_path, "campaigns", "create", "later", "-t", "autumn-2026", "--at", at)
    assert created.code == 0, str(created)

    scheduled = tact(tmp_path, "campaigns", "schedule", "later")
    assert scheduled.code == 0, str(scheduled)
    assert "launches at 2099-01-01 09:00 UTC, by tact run" in scheduled.flat

    refused = tact(tmp_path, "campaigns", "send", "later", env=NO_QUIET)
    assert_plain_failure(refused, 2)
    assert f"not due until {at}" in refused.flat and "tact run" in refused.flat
    assert "--now" in refused.flat
    status = json.loads(tact(tmp_path, "campaigns", "status", "later", "--json").out)
    assert (status["status"], status["launched_at"], status["open_rows"]) == ("scheduled", None, 0)
    assert not (tmp_path / "var" / "outbox" / "new").exists() or not list(
        (tmp_path / "var" / "outbox" / "new").iterdir()
    )

    estimate = tact(tmp_path, "campaigns", "estimate", "later", "--json")
    assert estimate.code == 0, str(estimate)
    assert json.loads(estimate.out)["recipients"] == 3

    sent = tact(tmp_path, "campaigns", "send", "later", "--now", "--json", env=NO_QUIET)
    assert sent.code == 0, str(sent)
    data = json.loads(sent.out)
    assert data["status"] == "sent" and data["this_run"] == {"sent": 3}
    assert data["launched_at"] is not None and data["launched_at"] < at
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == 3
