"""Campaign management through the CLI (issue 12, new-user items 6 and 7): list, clone,
edit, delete, delete --cancelled, pause and resume as no-ops, the check before create,
edit and schedule, and every change in the audit trail. On SQLite and PostgreSQL (the
``db_url`` fixture), each step a ``tact`` subprocess.

Quiet hours are off (start == end) so nothing depends on the hour the test runs at.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.db import make_engine
from engine.models import AuditEvent, Campaign, OutboxRow
from tests.helpers import people, write_jsonl
from tests.test_cli import Run, assert_plain_failure, table_rows, tact

N = 3
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
campaigns_t = Campaign.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]


class Site:
    def __init__(self, root: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.env = {
            "TACT_DATABASE_URL": db_url,
            "TACT_QUIET_HOURS_START": "0",
            "TACT_QUIET_HOURS_END": "0",
        }

    def __call__(self, *args: str) -> Run:
        return tact(self.root, *args, env=self.env)

    def ok(self, *args: str) -> Run:
        run = self(*args)
        assert run.code == 0, str(run)
        assert "Traceback" not in run.text, str(run)
        return run

    def data(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").out)

    def rows(self, query: Any) -> list[Any]:
        engine = make_engine(self.db_url, pool=False)
        try:
            with engine.connect() as conn:
                return list(conn.execute(query).all())
        finally:
            engine.dispose()


def _site(tmp_path: Path, db_url: str) -> Site:
    site = Site(tmp_path, db_url)
    site.ok("init")
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in people(N)])
    site.ok("contacts", "import", "in.jsonl")
    return site


def _error(run: Run, code: int) -> dict[str, Any]:
    """The error object of a failed ``--json`` run (stdout), its sentence on stderr."""
    assert_plain_failure(run, code)
    error: dict[str, Any] = json.loads(run.out)["error"]
    assert set(error) >= {"code", "message", "hint"}
    assert error["message"] in " ".join(run.err.split()) or error["message"][:40] in run.flat
    return error


def test_list_create_edit_clone_delete(tmp_path: Path, db_url: str) -> None:
    site = _site(tmp_path, db_url)
    empty = site.ok("campaigns", "list")
    assert "no campaigns yet" in empty.flat and "next:" in empty.flat
    assert site.data("campaigns", "list") == []

    # A send time in the past is refused (nothing written) unless --now says it is meant.
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    refused = site("campaigns", "create", "old", "-t", "autumn-2026", "--at", past, "--json")
    error = _error(refused, 2)
    assert error["code"] == "lint-failed"
    assert any("past" in f["message"] for f in error["findings"]), error
    assert site.data("campaigns", "list") == []
    site.ok("campaigns", "create", "old", "-t", "autumn-2026", "--at", past, "--now")
    late = site("campaigns", "schedule", "old", "--json")  # checked again: still in the past
    assert _error(late, 2)["code"] == "lint-failed"
    assert site.data("campaigns", "status", "old")["status"] == "draft"
    site.ok("campaigns", "schedule", "old", "--now")

    # Unknown segments are refused with the lint's findings, as data.
    nope = site("campaigns", "create", "seg", "-t", "autumn-2026", "--segments", "vip", "--json")
    assert _error(nope, 2)["code"] == "lint-failed"

    at = "2099-03-01T09:00:00+00:00"
    created = site.ok("campaigns", "create", "spring", "-t", "autumn-2026", "--at", at)
    assert "sends at 2099-03-01 09:00 UTC" in created.flat, str(created)
    assert "next:" in created.flat and "tact campaigns schedule spring" in created.flat
    assert len(created.out.splitlines()) <= 4, "a sentence and the next step, not a dump"

    listed = {c["name"]: c for c in site.data("campaigns", "list")}
    spring = listed["spring"]
    assert (spring["status"], spring["sends_at"]) == ("draft", at)  # its time, not now
    assert (spring["audience"], spring["estimated"], spring["sent"]) == (N, True, 0)
    human = site.ok("campaigns", "list")
    cells = {row[0]: row for row in table_rows(human.out) if row and row[0] in listed}
    assert cells["spring"][1:4] == ["draft", "2099-03-01 09:00 UTC", f"~{N}"], human.out

    # edit: a new time, priority and deadline, until the launch.
    later = "2099-04-01T10:30:00+00:00"
    edited = site.ok(
        "campaigns", "edit", "spring", "--at", later, "--priority", "5", "--deadline", "2099-05-01"
    )
    assert "sends at 2099-04-01 10:30 UTC" in edited.flat and "priority 5" in edited.flat
    state = site.data("campaigns", "status", "spring")
    assert (state["send_at"], state["priority"]) == (later, 5)
    assert state["deadline"].startswith("2099-05-01")
    local = site.data(
        "campaigns", "edit", "spring", "--local-hour", "08:00", "--date", "2099-04-02"
    )
    assert (local["send_at"], local["local_hour"], local["send_date"]) == (
        None,
        "08:00",
        "2099-04-02",
    )
    bad = site("campaigns", "edit", "spring", "--segments", "vip,outdoor", "--json")
    assert _error(bad, 2)["code"] == "lint-failed"
    assert site.data("campaigns", "status", "spring")["audience"] == {"all": True}  # unchanged

    # clone: same template, topic, priority; the time is cleared.
    cloned = site.data("campaigns", "clone", "spring", "summer")
    assert (cloned["status"], cloned["template"], cloned["topic"], cloned["priority"]) == (
        "draft",
        "autumn-2026",
        "offers",
        5,
    )
    assert (cloned["send_at"], cloned["local_hour"]) == (None, None)
    taken = site("campaigns", "clone", "spring", "summer", "--json")
    assert _error(taken, 2)["code"] == "campaign-exists"

    # delete: drafts only.
    deleted = site.ok("campaigns", "delete", "summer")
    assert "deleted the draft summer" in deleted.flat
    assert "summer" not in {c["name"] for c in site.data("campaigns", "list")}
    site.ok("campaigns", "schedule", "spring")
    refused_delete = site("campaigns", "delete", "spring", "--json")
    error = _error(refused_delete, 1)
    assert error["code"] == "illegal-transition" and "only a draft" in error["message"]
    assert error["hint"] and "cancel" in error["hint"]
    missing = site("campaigns", "delete", "nope", "--json")
    assert _error(missing, 1)["code"] == "campaign-not-found"

    actions = [
        (r.action, r.detail.get("campaign"))
        for r in site.rows(select(audit_t).order_by(audit_t.c.id))
        if r.action.startswith("campaign.")
    ]
    assert actions == [
        ("campaign.created", "old"),
        ("campaign.scheduled", "old"),
        ("campaign.created", "spring"),
        ("campaign.edited", "spring"),
        ("campaign.edited", "spring"),
        ("campaign.created", "summer"),
        ("campaign.cloned", "summer"),
        ("campaign.deleted", "summer"),
        ("campaign.scheduled", "spring"),
    ]


def test_pause_resume_no_ops_edit_after_launch_and_names_freed(tmp_path: Path, db_url: str) -> None:
    site = _site(tmp_path, db_url)
    site.ok("campaigns", "create", "promo", "-t", "autumn-2026", "--at", "2099-01-01T09:00")
    site.ok("campaigns", "schedule", "promo")

    paused = site.ok("campaigns", "pause", "promo")
    assert "now paused" in paused.flat
    again = site.ok("campaigns", "pause", "promo")  # a no-op with a message, exit 0
    assert "already paused" in again.flat and "tact campaigns resume promo" in again.flat
    assert site.data("campaigns", "pause", "promo")["changed"] is False
    site.ok("campaigns", "resume", "promo")
    noop = site.ok("campaigns", "resume", "promo")
    assert "nothing to do" in noop.flat and "not paused" in noop.flat

    # Launched: edit refuses, saying why and what to do instead.
    sent = site.data("campaigns", "send", "promo", "--now")
    assert (sent["status"], sent["this_run"]) == ("sent", {"sent": N})
    report = site.data("campaigns", "report", "promo")
    assert report["by_locale"] == {"en": {"sent": N}}  # en_GB, folded to its language
    assert report["by_status_reason"] == {"sent": {"ok": N}}
    refused = site("campaigns", "edit", "promo", "--priority", "1", "--json")
    error = _error(refused, 1)
    assert "launched" in error["message"] and "clone" in (error["hint"] or "")
    words = site("campaigns", "edit", "promo", "--priority", "1")
    assert_plain_failure(words, 1)
    assert "cannot be edited" in words.err and "hint:" in words.err
    resumed = site("campaigns", "resume", "promo")  # sent: refused, it is no pause
    assert_plain_failure(resumed, 1)

    # A cancelled campaign that never reached the gate: its name is freed, its row kept.
    site.ok("campaigns", "create", "winter", "-t", "autumn-2026", "--at", "2099-02-01T09:00")
    site.ok("campaigns", "schedule", "winter")
    site.ok("campaigns", "cancel", "winter")
    drafted = site("campaigns", "delete", "winter", "--json")
    assert "--cancelled" in (_error(drafted, 1)["hint"] or "")
    freed = site.data("campaigns", "delete", "--cancelled", "winter")
    renamed = freed["renamed_to"]
    assert renamed == f"winter~deleted-{freed['id']}"
    names = {c["name"]: c["status"] for c in site.data("campaigns", "list")}
    assert names[renamed] == "cancelled" and "winter" not in names
    site.ok("campaigns", "create", "winter", "-t", "autumn-2026", "--at", "2099-02-01T09:00")

    # One that reached the gate keeps its name: its decisions and Message-IDs derive from it.
    # Everyone got `promo` a moment ago, so the frequency cap (20 h apart) defers them all.
    site.ok("campaigns", "create", "second", "-t", "autumn-2026")
    deferred = site.data("campaigns", "send", "second", "--now")
    assert deferred["status"] == "sending" and deferred["this_run"].get("deferred") == N
    words = site.ok("campaigns", "send", "second")
    assert "tact run sends them at their time" in words.flat, str(words)
    site.ok("campaigns", "cancel", "second")
    kept = site("campaigns", "delete", "--cancelled", "second", "--json")
    error = _error(kept, 1)
    assert "stays taken" in error["message"] and "second-2" in (error["hint"] or "")
    assert "second" in {c["name"] for c in site.data("campaigns", "list")}
    message_ids = {
        r.message_id
        for r in site.rows(
            select(outbox_t.c.message_id)
            .join(campaigns_t, campaigns_t.c.id == outbox_t.c.campaign_id)
            .where(campaigns_t.c.name == "second")
        )
    }
    assert len(message_ids) == N  # the rows and their Message-IDs are all still there

    actions = [
        r.action
        for r in site.rows(select(audit_t).order_by(audit_t.c.id))
        if r.action.startswith("campaign.") and r.detail.get("campaign") in ("promo", "winter")
    ]
    assert actions == [
        "campaign.created",
        "campaign.scheduled",
        "campaign.paused",
        "campaign.resumed",
        "campaign.launched",
        "campaign.created",
        "campaign.scheduled",
        "campaign.cancelled",
        "campaign.name-freed",
        "campaign.created",
    ]
