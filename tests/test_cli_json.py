"""``--json`` on every command, errors as data, and output in words (issue 12, new-user
item 6): every command of the CLI takes ``--json``; under it an error prints
``{"error": {"code", "message", "hint"}}`` on stdout with the documented exit code (and
its sentence on stderr); without it, a sentence or a table and the next step.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

from engine.cli.main import app
from tests.helpers import people, write_jsonl
from tests.test_cli import _command, assert_plain_failure, cli_env, table_rows, tact

#: Long-running processes: what they print is a log, not a result.
PROCESSES = {("serve",), ("worker",), ("beat",)}
#: Commands that do not take --json yet (none: keep it so).
NOT_YET: set[tuple[str, ...]] = set()


def leaves() -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subs = command.load_all() if hasattr(command, "load_all") else None
        if subs is None:
            subs = getattr(command, "commands", None)
        if subs is None:
            found.append((path, command))
            return
        for name, sub in sorted(subs.items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_every_command_takes_json() -> None:
    commands = leaves()
    assert len(commands) > 30
    missing = [
        " ".join(path)
        for path, command in commands
        if path not in PROCESSES | NOT_YET
        and not any("--json" in getattr(p, "opts", ()) for p in command.params)
    ]
    assert missing == []
    runner = CliRunner()
    for path in PROCESSES | NOT_YET:  # the exemptions are real commands
        assert runner.invoke(app, [*path, "--help"]).exit_code == 0, path


def test_errors_under_json_are_data_with_the_same_exit_code(tmp_path: Path) -> None:
    no_keys = tact(tmp_path, "contacts", "show", "someone@example.com", "--json")
    assert_plain_failure(no_keys, 2)  # the sentence is on stderr still
    error = json.loads(no_keys.out)["error"]
    assert error["code"] == "missing-keys" and "tact init" in error["message"]
    plain = tact(tmp_path, "contacts", "show", "someone@example.com")
    assert_plain_failure(plain, 2)
    assert plain.out == "" and plain.err.startswith("error:")

    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    missing = tact(tmp_path, "campaigns", "status", "nope", "--json")
    assert_plain_failure(missing, 1)
    error = json.loads(missing.out)["error"]
    assert error == {
        "code": "campaign-not-found",
        "message": "no campaign 'nope'",
        "hint": "`tact campaigns list` shows the campaigns there are",
    }
    assert "hint: `tact campaigns list`" in missing.err
    bad_time = tact(
        tmp_path, "campaigns", "create", "x", "-t", "autumn-2026", "--at", "soon", "--json"
    )
    assert_plain_failure(bad_time, 1)
    assert json.loads(bad_time.out)["error"]["code"] == "bad-option"


def test_report_is_tables_by_reason_segment_and_language(tmp_path: Path) -> None:
    env = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0"}
    assert (run := tact(tmp_path, "init", env=env)).code == 0, str(run)
    rows = [{**p, "topics": ["offers"]} for p in people(3)]
    rows[2] = {**rows[2], "locale": "zh_CN", "timezone": "Asia/Shanghai"}
    write_jsonl(tmp_path / "in.jsonl", rows)
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl", env=env)).code == 0, str(run)
    assert tact(tmp_path, "campaigns", "create", "r", "-t", "autumn-2026", env=env).code == 0
    sent = tact(tmp_path, "campaigns", "send", "r", env=env)
    assert sent.code == 0, str(sent)
    assert "sent 3" in sent.flat and "next:" in sent.flat
    assert "{" not in sent.out  # words, not a dump

    data = json.loads(tact(tmp_path, "campaigns", "report", "r", "--json", env=env).out)
    assert data["by_locale"] == {"en": {"sent": 2}, "zh": {"sent": 1}}
    assert data["by_email_language"] == {"en": {"sent": 2}, "zh-Hans": {"sent": 1}}
    assert data["by_status_reason"] == {"sent": {"ok": 3}}
    human = tact(tmp_path, "campaigns", "report", "r", env=env)
    assert human.code == 0, str(human)
    assert "{" not in human.out, human.out
    cells = table_rows(human.out)
    assert ["sent", "3"] in cells
    assert ["en", "2", "0", "0", "0", "2"] in cells and ["zh", "1", "0", "0", "0", "1"] in cells
    assert ["standard", "3", "0", "0", "0", "3"] in cells
    assert ["zh-Hans", "1", "0", "0", "0", "1"] in cells  # the email's own language
    assert ["send", "ok", "3"] in cells  # the gate's decisions

    status = tact(tmp_path, "campaigns", "status", "r", env=env)
    assert "{" not in status.out and "next:" in status.flat
    shown = tact(tmp_path, "contacts", "show", "person0@example.com", env=env)
    assert shown.code == 0, str(shown)
    assert "{" not in shown.out, shown.out  # no JSON in table cells
    assert any(row[:2] == ["offers", "subscribed"] for row in table_rows(shown.out)), shown.out


def test_usage_errors_under_json_are_data_too(tmp_path: Path) -> None:
    missing = tact(tmp_path, "campaigns", "create", "x", "--json")
    assert_plain_failure(missing, 2)
    error = json.loads(missing.out)["error"]
    assert error["code"] == "usage" and "--template" in error["message"]
    assert error["hint"] == "`tact campaigns create --help` shows how to use it"
    unknown = tact(tmp_path, "campaigns", "launch-all", "--json")
    assert_plain_failure(unknown, 2)
    assert json.loads(unknown.out)["error"]["code"] == "usage"
    helped = tact(tmp_path, "campaigns", "list", "--help", "--json")
    assert helped.code == 0 and "Usage: tact campaigns list" in helped.flat
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_run_json_prints_one_event_a_line(tmp_path: Path) -> None:
    env = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0"}
    assert (run := tact(tmp_path, "init", env=env)).code == 0, str(run)
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in people(2)])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl", env=env)).code == 0, str(run)
    assert tact(tmp_path, "campaigns", "create", "now", "-t", "autumn-2026", env=env).code == 0
    assert tact(tmp_path, "campaigns", "schedule", "now", env=env).code == 0
    proc = subprocess.Popen(
        _command(("run", "--json", "--interval", "1")),
        cwd=tmp_path,
        env=cli_env(tmp_path, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    guard = threading.Timer(120, proc.kill)  # a run that never finishes fails, not hangs
    guard.start()
    try:
        assert proc.stdout is not None
        events = []
        for line in proc.stdout:  # each line one whole JSON object, as it happens
            events.append(json.loads(line))
            if events[-1]["event"] == "finished":
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0
    events += [json.loads(line) for line in rest.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "launched" and "sent" in kinds and kinds[-1] == "stopped", events
    assert sum(e["by_status"].get("sent", 0) for e in events if e["event"] == "sent") == 2
    assert events[-1]["launched"] == 1 and events[-1]["finished"] == 1


def test_operator_commands_print_their_result_as_json(tmp_path: Path) -> None:
    init = tact(tmp_path, "init", "--json")
    assert init.code == 0, str(init)
    assert any("keys" in line for line in json.loads(init.out)["done"])
    generated = json.loads(tact(tmp_path, "generate", "-n", "4", "--out", "c.jsonl", "--json").out)
    assert generated == {"written": 4, "out": "c.jsonl"}
    imported = json.loads(tact(tmp_path, "contacts", "import", "c.jsonl", "--json").out)
    assert (imported["rows_read"], imported["inserted"]) == (4, 4)
    revision = json.loads(tact(tmp_path, "db", "current", "--json").out)["revision"]
    assert (
        revision
        and revision == json.loads(tact(tmp_path, "db", "upgrade", "--json").out)["revision"]
    )
    keys = json.loads(tact(tmp_path, "keys", "status", "--json").out)
    assert keys["awaiting_rewrap"] == 0 and sum(k["data_keys"] for k in keys["keys"]) == 4
    reference = json.loads(tact(tmp_path, "settings", "reference", "--json").out)
    assert {"name": "database_url", "variable": "TACT_DATABASE_URL"}.items() <= next(
        r for r in reference if r["name"] == "database_url"
    ).items()
    erased = tact(tmp_path, "contacts", "erase", "nobody@example.com", "--yes", "--json")
    assert erased.code == 0, str(erased)
    assert json.loads(erased.out)["contact_id"] is None


def test_the_demo_under_json_is_its_report_as_data_with_ids_only(tmp_path: Path) -> None:
    from engine.app.demo import DEMO_ADMIN

    run = tact(tmp_path, "demo", "--customers", "60", "--json")
    assert run.code == 0, str(run)
    data = json.loads(run.out)
    assert data["imported"]["inserted"] == 60
    assert sum(data["campaign"]["by_status"].values()) == data["campaign"]["recipients"]
    assert data["outbox_files"] == data["campaign"]["by_status"].get("sent", 0)
    assert data["sample"] is None or set(data["sample"]) >= {"contact_id", "public_id"}
    assert data["console"]["email"] == DEMO_ADMIN and data["console"]["password"]
    assert "@" not in run.out.replace(DEMO_ADMIN, "")  # ids and counts, never a customer's
