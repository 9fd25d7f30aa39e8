"""The demo ends with how to open the console (issue 13, part 5): a staff account
``admin@northwind.example`` (role admin) made by the demo, whose password it returns once
and prints once; a re-run resets the password (the first was shown only once) and says so.
The password printed is the one that signs in, through :func:`engine.app.staff.login`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from engine.app import staff
from engine.app.demo import CAMPAIGN, DEMO_ADMIN, console_url, run_demo
from engine.cli.demo_cmd import console_lines
from engine.config import Settings
from engine.errors import AuthenticationFailed
from engine.models import StaffRole
from engine.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 40
SEED = 21
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def demo_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"quiet_hours_start": 0, "quiet_hours_end": 0})


@pytest.fixture
def rt(demo_settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(demo_settings, configure_logging=False)
    yield runtime
    runtime.close()


def printed(lines: list[str]) -> str:
    console = Console(record=True, width=200)
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    return console.export_text()


def test_the_demo_makes_an_admin_and_its_password_signs_in(
    demo_settings: Settings, rt: Runtime
) -> None:
    report = run_demo(rt, customers=CUSTOMERS, seed=SEED, now=NOW)
    assert report.name == CAMPAIGN and report.imported.inserted == CUSTOMERS
    login = report.console
    assert login is not None and login.created
    assert (login.email, login.role) == (DEMO_ADMIN, "admin")
    assert login.url == "http://127.0.0.1:8000/admin"
    assert len(login.password) >= 12

    signed_in = staff.login(rt, DEMO_ADMIN, login.password)
    assert signed_in.principal.role is StaffRole.ADMIN
    assert signed_in.principal.staff_id == login.staff_id
    [member] = staff.list_staff(rt)
    assert (member.email, member.role, member.active) == (DEMO_ADMIN, StaffRole.ADMIN, True)

    text = printed(console_lines(report))
    assert text.count(login.password) == 1
    assert f"password (shown once): {login.password}" in text
    assert f"tact serve, then http://127.0.0.1:8000/admin  (sign in as {DEMO_ADMIN})" in text
    assert f"a staff account was made for the console: {DEMO_ADMIN} (admin)" in text


def test_a_rerun_resets_the_password_and_says_so(demo_settings: Settings, rt: Runtime) -> None:
    first = run_demo(rt, customers=CUSTOMERS, seed=SEED, now=NOW)
    assert first.console is not None
    session = staff.login(rt, DEMO_ADMIN, first.console.password).token
    # Someone demoted and disabled it meanwhile: the demo's admin is an admin again.
    staff.set_role(rt, DEMO_ADMIN, "viewer")
    staff.disable(rt, DEMO_ADMIN)

    second = run_demo(rt, customers=CUSTOMERS, seed=SEED, now=NOW + timedelta(hours=1))
    login = second.console
    assert login is not None and not login.created
    assert login.staff_id == first.console.staff_id
    assert login.password != first.console.password
    with pytest.raises(AuthenticationFailed):
        staff.login(rt, DEMO_ADMIN, first.console.password)
    with pytest.raises(AuthenticationFailed):
        staff.session(rt, session)
    assert staff.login(rt, DEMO_ADMIN, login.password).principal.role is StaffRole.ADMIN
    assert [m.id for m in staff.list_staff(rt)] == [login.staff_id]  # reused, not added

    text = printed(console_lines(second))
    assert f"the staff account {DEMO_ADMIN} existed: its password was reset" in text
    assert text.count(login.password) == 1 and first.console.password not in text


def test_the_console_address_follows_the_serve_settings(tmp_path: Path) -> None:
    base = Settings(var_dir=tmp_path / "var")
    assert console_url(base) == "http://127.0.0.1:8000/admin"
    moved = base.model_copy(update={"web_host": "0.0.0.0", "web_port": 8123})
    assert console_url(moved) == "http://127.0.0.1:8123/admin"
    v6 = base.model_copy(update={"web_host": "::1"})
    assert console_url(v6) == "http://[::1]:8000/admin"


def test_tact_demo_prints_the_password_once_and_nowhere_else(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_")}
    env.update(
        {
            "TACT_CONFIG": str(tmp_path / "no-such-tact.toml"),
            "TACT_VAR_DIR": str(tmp_path / "var"),
            "TACT_QUIET_HOURS_START": "0",
            "TACT_QUIET_HOURS_END": "0",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
            "PYTHONIOENCODING": "utf-8",
            "COLUMNS": "200",
        }
    )

    def demo(*extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli.main", "demo", "--customers", "30", *extra],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    done = demo()
    passwords = re.findall(r"password \(shown once\): (\S+)", done.stdout)
    assert len(passwords) == 1, done.stdout
    password = passwords[0]
    assert done.stdout.count(password) == 1 and password not in done.stderr
    tail = done.stdout.rstrip().splitlines()[-4:]
    assert tail[0] == "open the console"
    assert (
        tail[-1].strip()
        == f"tact serve, then http://127.0.0.1:8000/admin  (sign in as {DEMO_ADMIN})"
    )

    # Nowhere at rest: not in the database, the keystore, the log or the outbox.
    for path in (tmp_path / "var").rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    rt = Runtime(Settings(var_dir=tmp_path / "var"), configure_logging=False)
    try:
        assert staff.login(rt, DEMO_ADMIN, password).principal.role is StaffRole.ADMIN
        again = json.loads(demo("--json").stdout)["console"]
        assert again["created"] is False and again["email"] == DEMO_ADMIN
        assert again["password"] != password and again["url"].endswith("/admin")
        assert (
            staff.login(rt, DEMO_ADMIN, again["password"]).principal.staff_id == again["staff_id"]
        )
    finally:
        rt.close()
