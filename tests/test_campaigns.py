"""Campaigns end to end on SQLite and PostgreSQL: lifecycle, fan-out, the batch pipeline
(gate at send time, at most once per contact, caps, bounces, self-pause) and the report.

Deterministic: every call gets an explicit ``now``; the Maildir outbox lives in tmp.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, select, update

from engine.campaigns import (
    cancel,
    create,
    get,
    launch,
    pause,
    report,
    resume,
    run_batch,
    run_due,
    schedule,
    send_campaign,
)
from engine.campaigns.lifecycle import outbox_t
from engine.config import Settings
from engine.consent.service import Origin, withdraw
from engine.consent.suppression import reason_for
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.delivery.smtp import SmtpTransport
from engine.errors import IllegalTransition
from engine.models import SendReservation
from engine.vault import Vault
from support.services import free_port
from tests.helpers import import_rows, people
from tests.test_smtp import Server

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # daytime in London and in Tokyo
reservations_t = SendReservation.__table__  # type: ignore[attr-defined]


def subscribers(engine: Engine, vault: Vault, settings: Settings, n: int, **extra: Any) -> None:
    rows = [{**p, "topics": ["offers"], **extra} for p in people(n)]
    import_rows(engine, vault, settings, rows)


def new_campaign(engine: Engine, settings: Settings, name: str = "c1", **kw: Any) -> int:
    with writing(engine) as conn:
        cid = create(conn, settings, name=name, template="autumn-2026", now=NOW, **kw)
        schedule(conn, cid, NOW)
        return cid


def launched(engine: Engine, settings: Settings, name: str = "c1", **kw: Any) -> int:
    cid = new_campaign(engine, settings, name, **kw)
    with writing(engine) as conn:
        launch(conn, cid, NOW, settings=settings)
    return cid


def outbox(tmp_path: Path) -> MaildirTransport:
    t = MaildirTransport(tmp_path / "outbox")
    t.open()
    return t


def files(tmp_path: Path) -> int:
    return len(list((tmp_path / "outbox" / "new").iterdir()))


def rows(engine: Engine, campaign_id: int) -> dict[UUID, Any]:
    with engine.connect() as conn:
        return {
            r.contact_id: r
            for r in conn.execute(select(outbox_t).where(outbox_t.c.campaign_id == campaign_id))
        }


def status(engine: Engine, campaign_id: int) -> str:
    with engine.connect() as conn:
        return str(get(conn, campaign_id).status)


# -- lifecycle -------------------------------------------------------------------------------


def test_lifecycle_moves_and_refusals(engine: Engine, settings: Settings) -> None:
    with writing(engine) as conn:
        cid = create(conn, settings, name="spring", template="autumn-2026", now=NOW)
        assert get(conn, cid).topic == "offers"  # from campaign.toml
        with pytest.raises(IllegalTransition, match="draft; it cannot become paused"):
            pause(conn, cid, NOW)
        with pytest.raises(IllegalTransition):
            launch(conn, cid, NOW, settings=settings)
    with writing(engine) as conn:
        schedule(conn, cid, NOW)
        pause(conn, cid, NOW)
        resume(conn, cid, NOW)  # never launched: back to scheduled
        assert get(conn, cid).status == "scheduled"
        launch(conn, cid, NOW, settings=settings)
        assert get(conn, cid).status == "sending"
        pause(conn, cid, NOW)
        resume(conn, cid, NOW)
        assert get(conn, cid).status == "sending"
        with pytest.raises(IllegalTransition):
            schedule(conn, cid, NOW)
        cancel(conn, cid, NOW)
    with writing(engine) as conn:
        for move in (schedule, pause, resume, cancel):
            with pytest.raises(IllegalTransition):
                move(conn, cid, NOW)


def test_launch_writes_one_row_per_subscriber_and_again_none(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    settings = settings.model_copy(update={"campaign_batch_size": 4})
    subscribers(engine, vault, settings, 10)
    import_rows(engine, vault, settings, people(3, domain="other.example"), name="nosub")
    cid = new_campaign(engine, settings)
    with writing(engine) as conn:
        assert launch(conn, cid, NOW, settings=settings) == 10
    with writing(engine) as conn:
        assert launch(conn, cid, NOW, settings=settings) == 0
    got = rows(engine, cid)
    assert len(got) == 10
    assert Counter(r.batch_no for r in got.values()) == {0: 4, 1: 4, 2: 2}
    assert len({r.message_id for r in got.values()}) == 10
    assert all(r.status == "pending" and r.due_at == NOW for r in got.values())


def test_local_hour_is_due_in_each_contacts_zone(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    base = people(3)
    base[0]["timezone"] = "Asia/Tokyo"
    base[1]["timezone"] = "America/New_York"
    base[2].pop("timezone")
    import_rows(engine, vault, settings, [{**p, "topics": ["offers"]} for p in base])
    cid = launched(engine, settings, local_hour="09:00", send_date=date(2026, 12, 1))
    dues = sorted(r.due_at for r in rows(engine, cid).values())
    assert dues == [
        datetime(2026, 12, 1, 0, 0, tzinfo=UTC),  # Tokyo 09:00
        datetime(2026, 12, 1, 9, 0, tzinfo=UTC),  # unknown zone: UTC
        datetime(2026, 12, 1, 14, 0, tzinfo=UTC),  # New York 09:00 (EST)
    ]


# -- the pipeline ----------------------------------------------------------------------------


def test_run_batch_sends_once_and_a_rerun_sends_nothing(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    subscribers(engine, vault, settings, 6)
    cid = launched(engine, settings)
    transport = outbox(tmp_path)
    first = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    assert first.by_status == {"sent": 6}
    assert files(tmp_path) == 6
    again = run_batch(engine, vault, settings, cid, 0, transport, now=NOW + timedelta(hours=1))
    assert again.claimed == 0
    # A crash after the send but before it was recorded: the row is claimed, lease over.
    victim = next(iter(rows(engine, cid)))
    with writing(engine) as conn:
        conn.execute(
            update(outbox_t)
            .where(outbox_t.c.campaign_id == cid, outbox_t.c.contact_id == victim)
            .values(status="claimed", lease_until=NOW)
        )
    later = NOW + timedelta(hours=2)
    redo = run_batch(engine, vault, settings, cid, 0, transport, now=later)
    assert redo.claimed == 1 and redo.by_status == {"sent": 1}  # Maildir: duplicate refused
    assert files(tmp_path) == 6
    with engine.connect() as conn:
        keys = conn.execute(
            select(reservations_t.c.message_key, reservations_t.c.state).where(
                reservations_t.c.contact_id == victim
            )
        ).all()
    assert keys == [(f"{cid}:{victim}", "sent")]  # reserved once, not twice
    send_campaign(engine, vault, settings, cid, transport, now=later)
    assert status(engine, cid) == "sent"


def test_consent_withdrawn_after_launch_wins_and_the_report_says_why(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    subscribers(engine, vault, settings, 4)
    cid = launched(engine, settings)
    leaver = sorted(rows(engine, cid))[1]
    with writing(engine) as conn:
        withdraw(conn, vault, leaver, "offers", Origin(source="admin"))
    result = run_batch(engine, vault, settings, cid, 0, outbox(tmp_path), now=NOW)
    assert result.by_status == {"sent": 3, "skipped": 1}
    assert files(tmp_path) == 3
    got = rows(engine, cid)[leaver]
    assert (got.status, got.reason) == ("skipped", "consent-withdrawn")
    with engine.connect() as conn:
        summary = report(conn, cid)
    assert summary["by_status"] == {"sent": 3, "skipped": 1}
    assert summary["by_reason"] == {"ok": 3, "consent-withdrawn": 1}
    assert summary["decisions"] == {"send:ok": 3, "skip:consent-withdrawn": 1}
    assert summary["by_segment"] == {"standard": {"sent": 3, "skipped": 1}}


def test_frequency_cap_holds_across_three_campaigns(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    from engine.consent.service import set_cadence
    from engine.models import Cadence
    from engine.vault.vault import contacts

    settings = settings.model_copy(update={"cap_global_count": 2, "cap_min_gap_hours": 0})
    subscribers(engine, vault, settings, 5)
    # Each chose "as it happens" for offers: only the global cap limits them (the topic's
    # weekly default cadence would defer the second wave on its own).
    with writing(engine) as conn:
        for contact_id in conn.execute(select(contacts.c.id)).scalars().all():
            set_cadence(conn, contact_id, "offers", Cadence.AS_IT_HAPPENS, now=NOW)
    transport = outbox(tmp_path)
    ids = [launched(engine, settings, f"wave{i}", allow_defer=i != 2) for i in range(3)]
    for cid in ids:
        run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    assert files(tmp_path) == 10
    sent = Counter(c for cid in ids for c, r in rows(engine, cid).items() if r.status == "sent")
    assert set(sent.values()) == {2}
    last = rows(engine, ids[2]).values()
    assert {(r.status, r.reason) for r in last} == {("skipped", "cap-global")}
    # The same wave with deferral allowed waits for the slot the window frees.
    cid = launched(engine, settings, "wave3")
    run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    deferred = rows(engine, cid).values()
    assert {(r.status, r.reason) for r in deferred} == {("deferred", "cap-global")}
    assert {r.due_at for r in deferred} == {NOW + timedelta(days=7)}


def test_consecutive_failures_pause_the_campaign(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    settings = settings.model_copy(update={"campaign_pause_after_failures": 3})
    subscribers(engine, vault, settings, 5)
    cid = launched(engine, settings)
    # The relay is down: nothing listens on its port, every connection is refused.
    transport = SmtpTransport("127.0.0.1", free_port(), timeout=5.0, pool_size=1)  # in order
    transport.open()
    result = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    assert result.paused
    assert result.by_status == {"deferred": 3, "pending": 2}
    with engine.connect() as conn:
        camp = get(conn, cid)
    assert (camp.status, camp.consecutive_failures) == ("paused", 3)
    assert "3 consecutive" in camp.pause_reason
    deferred = [r for r in rows(engine, cid).values() if r.status == "deferred"]
    assert all(r.attempts == 1 and r.due_at > NOW for r in deferred)
    assert run_batch(engine, vault, settings, cid, 0, transport, now=NOW).claimed == 0


def test_a_550_bounce_is_suppressed_and_the_others_sent_once(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    subscribers(engine, vault, settings, 4)
    cid = launched(engine, settings)
    server = Server()
    server.start()
    try:
        server.handler.reject_rcpts.add("person2@example.com")
        transport = SmtpTransport("127.0.0.1", server.port, timeout=10.0)
        transport.open()
        try:
            result = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
            again = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
        finally:
            transport.close()
    finally:
        server.stop()
    assert result.by_status == {"sent": 3, "bounced": 1}
    assert again.claimed == 0
    assert sorted(server.handler.accepted.values()) == [1, 1, 1]
    with engine.connect() as conn:
        assert reason_for(conn, vault.index_for("person2@example.com")) == "hard-bounce"
        assert reason_for(conn, vault.index_for("person1@example.com")) is None
        assert report(conn, cid)["by_reason"] == {"ok": 3, "hard-bounce": 1}


def test_run_due_launches_at_its_time_and_finishes(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    subscribers(engine, vault, settings, 3)
    cid = new_campaign(engine, settings, send_at=NOW + timedelta(hours=1))
    transport = MaildirTransport(tmp_path / "outbox")
    assert run_due(engine, vault, settings, transport, NOW) == []
    assert status(engine, cid) == "scheduled"
    reports = run_due(engine, vault, settings, transport, NOW + timedelta(hours=1))
    assert sum(r.sent for r in reports) == 3
    assert status(engine, cid) == "sent"
    assert files(tmp_path) == 3


# -- a render error, from the command line ------------------------------------------------------


def test_send_ends_with_one_line_when_a_template_fails_and_resume_sends_the_rest(
    tmp_path: Path,
) -> None:
    """`tact campaigns send`: exit 1 and one sentence naming file:line, never the data."""
    import json
    import shutil

    from engine.config import PROJECT_ROOT
    from tests.helpers import write_jsonl
    from tests.test_cli import assert_plain_failure, tact

    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    block = templates / "campaigns" / "autumn-2026" / "blocks" / "closing" / "standard.html.j2"
    original = block.read_text("utf-8")
    block.write_text(
        original + '{% if first_name == "Firstname0002" %}{{ 1 // (first_name|length - 13) }}'
        "{% endif %}\n",
        "utf-8",
    )
    env = {
        "TACT_QUIET_HOURS_START": "0",
        "TACT_QUIET_HOURS_END": "0",
        "TACT_TEMPLATES_DIR": str(templates),
    }
    assert (run := tact(tmp_path, "init", env=env)).code == 0, str(run)
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in people(4)])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl", env=env)).code == 0, str(run)
    run = tact(tmp_path, "campaigns", "create", "promo", "--template", "autumn-2026", env=env)
    assert run.code == 0, str(run)

    failed = tact(tmp_path, "campaigns", "send", "promo", env=env)
    assert_plain_failure(failed, 1)
    said = " ".join(failed.err.split())  # the console wraps its one sentence at 80 columns
    assert said.startswith("error: campaign 'promo' paused, render-error: "), str(failed)
    assert "standard.html.j2:3 (ZeroDivisionError)" in said and "resume promo" in said
    assert "Firstname" not in failed.text and "person" not in failed.text
    status = json.loads(tact(tmp_path, "campaigns", "status", "promo", "--json", env=env).out)
    assert status["status"] == "paused" and status["pause_reason"].startswith("render-error: ")
    reported = json.loads(tact(tmp_path, "campaigns", "report", "promo", "--json", env=env).out)
    assert "claimed" not in reported["by_status"] and reported["by_status"].get("pending")
    outbox_dir = tmp_path / "var" / "outbox" / "new"
    before = len(list(outbox_dir.iterdir())) if outbox_dir.exists() else 0
    assert before < 4

    block.write_text(original, "utf-8")  # the fix
    assert (run := tact(tmp_path, "campaigns", "resume", "promo", env=env)).code == 0, str(run)
    sent = tact(tmp_path, "campaigns", "send", "promo", "--json", env=env)
    assert sent.code == 0, str(sent)
    assert json.loads(sent.out)["status"] == "sent"
    assert len(list(outbox_dir.iterdir())) == 4
