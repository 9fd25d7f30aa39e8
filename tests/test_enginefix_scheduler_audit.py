"""Every launch is in the audit log: a campaign launched by the scheduler (``tact run``'s
tick, :func:`engine.app.scheduling.run_due`, and the beat's, which share
:func:`engine.campaigns.launch_due`) writes one ``campaign.launched`` row naming the
scheduler, its campaign and its count of recipients, never an address; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Engine, select

from engine.app import scheduling
from engine.campaigns import lifecycle
from engine.campaigns.tick import SCHEDULER
from engine.config import Settings
from engine.db import writing
from engine.models import AuditEvent
from engine.runtime import Runtime
from engine.vault import Vault
from tests.helpers import people
from tests.test_campaigns import NOW, subscribers

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]


def _launched(engine: Engine) -> list[tuple[str, dict[str, object]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_t.c.actor, audit_t.c.detail)
            .where(audit_t.c.action == "campaign.launched")
            .order_by(audit_t.c.id)
        ).all()
    return [(r.actor, dict(r.detail)) for r in rows]


def test_a_scheduled_launch_is_audited_once_as_the_scheduler(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    subscribers(engine, vault, settings, 3)
    now = NOW - timedelta(hours=1)
    with writing(engine) as conn:
        cid = lifecycle.create(
            conn, settings, name="soon", template="autumn-2026", send_at=now + timedelta(hours=1)
        )
        lifecycle.schedule(conn, cid, now)
    rt = Runtime(settings, configure_logging=False)
    try:
        early = scheduling.run_due(rt, now + timedelta(minutes=30))
        assert early.launched == ()
        assert _launched(engine) == []  # not due: nothing launched, nothing audited

        first = scheduling.run_due(rt, now + timedelta(hours=1))
        assert first.launched == (cid,)
        rows = _launched(engine)
        assert rows == [
            (
                SCHEDULER,
                {"campaign": "soon", "campaign_id": cid, "early": False, "recipients": 3},
            )
        ]
        assert SCHEDULER == "scheduler"

        second = scheduling.run_due(rt, now + timedelta(hours=1, minutes=1))
        assert second.launched == ()
        assert _launched(engine) == rows  # a second tick adds none
    finally:
        rt.close()
    text = json.dumps(rows)
    for person in people(3):
        assert str(person["email"]) not in text
        assert str(person["email"]).split("@")[0] not in text


def test_the_beat_tick_audits_a_launch_it_only_queues(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    """The beat's tick hands batches on instead of running them; the launch is audited all
    the same (the same launch_due), once."""
    subscribers(engine, vault, settings, 2)
    with writing(engine) as conn:
        cid = lifecycle.create(conn, settings, name="queued", template="autumn-2026", send_at=NOW)
        lifecycle.schedule(conn, cid, NOW - timedelta(hours=1))
    rt = Runtime(settings, configure_logging=False)
    handed: list[tuple[int, int]] = []

    def queue(campaign_id: int, batch_no: int) -> bool:
        handed.append((campaign_id, batch_no))
        return True

    try:
        work = scheduling.due_work(rt, NOW, queue)
        assert work.launched == (cid,) and handed == [(cid, 0)]
        scheduling.due_work(rt, NOW + timedelta(seconds=5), lambda c, b: False)
    finally:
        rt.close()
    assert [(actor, d["campaign_id"], d["recipients"]) for actor, d in _launched(engine)] == [
        ("scheduler", cid, 2)
    ]
