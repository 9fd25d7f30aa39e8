"""``tact run``: the embedded scheduler launches a campaign at its time, on SQLite, with no
broker (TACT_BROKER_URL unset), and stops cleanly on SIGTERM.

A real subprocess of ``tact run``. One campaign is due a few seconds after it starts,
another tomorrow: the first is launched after (never before) its time and its messages
land in the Maildir; the second is still scheduled when the loop stops. In-process,
:func:`engine.app.scheduling.run_due` is driven with a pinned clock for the same two
facts without waiting.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, select

from engine.app import scheduling
from engine.campaigns import lifecycle
from engine.campaigns.lifecycle import campaigns_t
from engine.config import Settings
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.runtime import Runtime
from engine.vault import Vault
from tests.helpers import people, write_jsonl
from tests.test_campaigns import NOW, subscribers
from tests.test_cli import _command, cli_env, tact

NO_QUIET = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0"}
#: How long after the last set-up command the first campaign is due.
LEAD = timedelta(seconds=8)


def _outbox(workdir: Path) -> list[Path]:
    new = workdir / "var" / "outbox" / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def _campaign(db: Engine, name: str) -> dict[str, object]:
    with db.connect() as conn:
        row = conn.execute(select(campaigns_t).where(campaigns_t.c.name == name)).one()
    return dict(row._mapping)


def test_tact_run_launches_at_its_time_and_stops_on_sigterm(tmp_path: Path) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in people(3)])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl")).code == 0, str(run)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for args in (
        ("campaigns", "create", "later", "-t", "autumn-2026", "--at", tomorrow),
        ("campaigns", "schedule", "later"),
    ):
        assert (run := tact(tmp_path, *args)).code == 0, str(run)
    # The soon one is created last, so that its few seconds are not spent on set-up.
    due = datetime.now(UTC) + LEAD
    created = tact(
        tmp_path, "campaigns", "create", "soon", "-t", "autumn-2026", "--at", due.isoformat()
    )
    assert created.code == 0, str(created)
    scheduled = tact(tmp_path, "campaigns", "schedule", "soon", "--json")
    assert scheduled.code == 0, str(scheduled)
    said = json.loads(scheduled.out)
    assert said["status"] == "scheduled" and said["launched_by"].startswith("tact run")
    assert datetime.fromisoformat(said["launches_at"]) == due

    env = {**NO_QUIET}  # cli_env drops every TACT_* of this process: no broker URL
    assert "TACT_BROKER_URL" not in cli_env(tmp_path, env)
    log = (tmp_path / "run.out").open("w+", encoding="utf-8")
    proc = subprocess.Popen(
        [*_command(("run", "--interval", "1"))],
        cwd=tmp_path,
        env=cli_env(tmp_path, env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    db = create_engine(f"sqlite:///{tmp_path / 'var' / 'tact.db'}")
    try:
        # Before its time: nothing launched, nothing in the Maildir.
        while datetime.now(UTC) < due - timedelta(seconds=1.5):
            assert proc.poll() is None, (tmp_path / "run.out").read_text()
            assert _campaign(db, "soon")["status"] == "scheduled"
            assert _outbox(tmp_path) == []
            time.sleep(0.25)
        # After it: launched, sent, finished.
        deadline = time.monotonic() + 60
        while _campaign(db, "soon")["status"] != "sent":
            assert proc.poll() is None, (tmp_path / "run.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "run.out").read_text()
            time.sleep(0.25)
        soon = _campaign(db, "soon")
        launched = soon["launched_at"]
        assert isinstance(launched, datetime)
        assert launched.replace(tzinfo=launched.tzinfo or UTC) >= due  # not before its time
        assert len(_outbox(tmp_path)) == 3
        later = _campaign(db, "later")
        assert (later["status"], later["launched_at"]) == ("scheduled", None)  # due tomorrow

        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        assert code == 0, (tmp_path / "run.out").read_text()
        assert time.monotonic() - stopped_at < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        db.dispose()
        log.close()
    printed = (tmp_path / "run.out").read_text()
    assert "Traceback" not in printed, printed
    assert f"launched campaign {soon['id']}" in printed and "stopped after" in printed


def test_run_due_launches_at_the_time_not_before_and_not_tomorrows(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    subscribers(engine, vault, settings, 3)
    now = NOW - timedelta(hours=1)  # due at NOW: daytime in every zone of the people
    with writing(engine) as conn:
        soon = lifecycle.create(
            conn, settings, name="soon", template="autumn-2026", send_at=now + timedelta(hours=1)
        )
        later = lifecycle.create(
            conn, settings, name="later", template="autumn-2026", send_at=now + timedelta(days=1)
        )
        lifecycle.schedule(conn, soon, now)
        lifecycle.schedule(conn, later, now)
    rt = Runtime(settings, configure_logging=False)
    try:
        before = scheduling.run_due(rt, now + timedelta(minutes=59))
        assert (before.launched, before.batches, before.finished) == ((), (), ())
        with rt.engine.connect() as conn:
            wake = lifecycle.next_due_at(conn, now)
        assert wake == now + timedelta(hours=1)  # the loop sleeps until then (or its bound)

        at_time = scheduling.run_due(rt, now + timedelta(hours=1))
        assert at_time.launched == (soon,)
        assert at_time.by_status == {"sent": 3} and at_time.finished == (soon,)
        with rt.engine.connect() as conn:
            assert lifecycle.get(conn, later).status == "scheduled"  # tomorrow's: not today
            assert lifecycle.next_due_at(conn, now + timedelta(hours=1)) == now + timedelta(days=1)
    finally:
        rt.close()
    outbox = MaildirTransport(settings.resolved_outbox_dir)
    assert len(list((outbox.root / "new").iterdir())) == 3
