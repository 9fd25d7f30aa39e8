"""A marketer's first campaign, end to end, in the embedded default (SQLite, no Redis):
create → a lint error refuses it → fix → estimate → test send → schedule → ``tact run``
launches it at its time → report.

Every step is the ``tact`` command in a subprocess, as a marketer types it; nothing is
set up behind the CLI's back. TACT_BROKER_URL is unset (``cli_env`` drops every TACT_*
variable of this process), so no step can reach Redis.
"""

from __future__ import annotations

import email
import json
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

from engine.config import PROJECT_ROOT
from tests.helpers import people, write_jsonl
from tests.test_cli import _command, assert_plain_failure, cli_env, tact

N = 5
LEAD = timedelta(seconds=10)


def _maildir(workdir: Path) -> list[Path]:
    new = workdir / "var" / "outbox" / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def test_create_refuse_fix_estimate_test_schedule_run_report(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    shutil.copytree(templates / "campaigns" / "autumn-2026", templates / "campaigns" / "winter")
    toml = templates / "campaigns" / "winter" / "campaign.toml"
    toml.write_text(toml.read_text("utf-8").replace('"autumn-2026"', '"winter"'), "utf-8")
    block = templates / "campaigns" / "winter" / "blocks" / "closing" / "standard.html.j2"
    good = block.read_text("utf-8")
    block.write_text("{% if first_name %}<p>Hi {{ first_name }}</p>\n" + good, "utf-8")
    env = {
        "TACT_TEMPLATES_DIR": str(templates),
        "TACT_QUIET_HOURS_START": "0",
        "TACT_QUIET_HOURS_END": "0",
    }
    assert "TACT_BROKER_URL" not in cli_env(tmp_path, env)
    assert (run := tact(tmp_path, "init", env=env)).code == 0, str(run)
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in people(N)])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl", env=env)).code == 0, str(run)

    # 1. The broken block refuses the campaign, naming the file; nothing is created.
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    refused = tact(tmp_path, "campaigns", "create", "winter", "-t", "winter", "--at", at, env=env)
    assert_plain_failure(refused, 2)
    assert "closing/standard.html.j2" in refused.flat, str(refused)
    as_data = tact(
        tmp_path, "campaigns", "create", "winter", "-t", "winter", "--at", at, "--json", env=env
    )
    assert as_data.code == 2, str(as_data)
    error = json.loads(as_data.out or as_data.err)["error"]
    assert error["code"] == "lint-failed"
    assert any("closing/standard.html.j2" in f["where"] for f in error["findings"]), error
    listed = json.loads(tact(tmp_path, "campaigns", "list", "--json", env=env).out)
    assert listed == []

    # 2. Fixed, it is created as a draft; the output says what to do next.
    block.write_text(good, "utf-8")
    created = tact(tmp_path, "campaigns", "create", "winter", "-t", "winter", "--at", at, env=env)
    assert created.code == 0, str(created)
    assert "next" in created.flat.lower(), str(created)

    # 3. The estimate writes nothing and counts everyone (all subscribed to offers).
    estimate = tact(tmp_path, "campaigns", "estimate", "winter", "--json", env=env)
    assert estimate.code == 0, str(estimate)
    assert json.loads(estimate.out)["recipients"] == N
    assert _maildir(tmp_path) == []

    # 4. A test send reaches the marketer, marked as a test; no customer gets anything.
    test = tact(tmp_path, "campaigns", "test", "winter", "--to", "me@marketer.example", env=env)
    assert test.code == 0, str(test)
    [sent] = _maildir(tmp_path)
    message = email.message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert message["To"] == "me@marketer.example"
    assert str(message["Subject"]).startswith("[TEST]")
    sent.unlink()

    # 5. Rescheduled to a few seconds from now, then scheduled: `tact run` launches it then.
    due = datetime.now(UTC) + LEAD
    edited = tact(tmp_path, "campaigns", "edit", "winter", "--at", due.isoformat(), env=env)
    assert edited.code == 0, str(edited)
    scheduled = tact(tmp_path, "campaigns", "schedule", "winter", "--json", env=env)
    assert scheduled.code == 0, str(scheduled)
    log = (tmp_path / "run.out").open("w+", encoding="utf-8")
    proc = subprocess.Popen(
        _command(("run", "--interval", "1")),
        cwd=tmp_path,
        env=cli_env(tmp_path, env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while len(_maildir(tmp_path)) < N:
            assert proc.poll() is None, (tmp_path / "run.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "run.out").read_text()
            if datetime.now(UTC) < due - timedelta(seconds=1):
                assert _maildir(tmp_path) == []  # never before its time
            time.sleep(0.25)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, (tmp_path / "run.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()

    # 6. The report: every recipient sent, by segment; the status says sent.
    report = tact(tmp_path, "campaigns", "report", "winter", "--json", env=env)
    assert report.code == 0, str(report)
    data = json.loads(report.out)
    assert data["by_status"] == {"sent": N}, data
    status = json.loads(tact(tmp_path, "campaigns", "status", "winter", "--json", env=env).out)
    assert status["status"] == "sent"
    human = tact(tmp_path, "campaigns", "report", "winter", env=env)
    assert human.code == 0 and "{" not in human.out, str(human)  # tables, not JSON in cells
