"""``tact staff``, ``tact tokens`` and ``tact audit`` as a real subprocess (issue 13, part 1):
a password or token Tact chooses is printed once and never again (not in a list, the audit
log or the log file), ``--password-stdin`` reads one, ``--json`` errors are data with the
documented exit codes, and what the commands do is what the use-cases see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.app import staff
from engine.config import Settings
from engine.errors import AuthenticationFailed
from engine.runtime import Runtime
from tests.test_cli import assert_plain_failure, table_rows, tact

ADDRESS = "Ada.Lovelace@Northwind.Example"
OTHER = "grace.hopper@northwind.example"
SHOWN_ONCE = re.compile(r"(?:password|token) \(shown once\): (\S+)")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    return tmp_path


@pytest.fixture
def rt(site: Path) -> Iterator[Runtime]:
    runtime = Runtime(Settings(var_dir=site / "var"), configure_logging=False)
    yield runtime
    runtime.close()


def shown(text: str) -> str:
    [secret] = SHOWN_ONCE.findall(text)
    return str(secret)


def everything_written(site: Path) -> str:
    """The audit log as exported, and the log file."""
    export = tact(site, "audit", "export")
    assert export.code == 0, str(export)
    log = site / "var" / "log" / "tact.log"
    return export.out + (log.read_text(encoding="utf-8") if log.exists() else "")


def test_staff_add_prints_the_password_once(site: Path, rt: Runtime) -> None:
    added = tact(site, "staff", "add", ADDRESS, "--role", "admin")
    assert added.code == 0, str(added)
    assert "staff 1 added as admin" in added.out
    password = shown(added.out)
    assert len(password) >= 12
    assert staff.login(rt, ADDRESS, password).principal.staff_id == 1

    listed = tact(site, "staff", "list")
    assert listed.code == 0, str(listed)
    [cells] = [r for r in table_rows(listed.out) if r[0] == "1"]
    assert cells[1:4] == [ADDRESS, "admin", "active"]
    assert password not in listed.text
    as_json = tact(site, "staff", "list", "--json")
    [row] = json.loads(as_json.out)
    assert row["id"] == 1 and row["email"] == ADDRESS and row["role"] == "admin"
    assert row["active"] is True and row["last_login_at"] is not None
    assert password not in as_json.out

    written = everything_written(site)
    assert '"staff.added"' in written and '"login.succeeded"' in written
    assert password not in written
    assert ADDRESS.lower() not in written.lower() and "@" not in written


def test_password_stdin(site: Path, rt: Runtime) -> None:
    chosen = "a passphrase from a manager"
    added = tact(
        site, "staff", "add", OTHER, "--role", "viewer", "--password-stdin", stdin=chosen + "\n"
    )
    assert added.code == 0, str(added)
    assert "shown once" not in added.text and chosen not in added.text
    assert staff.login(rt, OTHER, chosen).principal.role.value == "viewer"

    empty = tact(site, "staff", "add", ADDRESS, "--role", "viewer", "--password-stdin", stdin="")
    assert_plain_failure(empty, 2)
    assert "no password" in empty.err
    short = tact(
        site,
        "staff",
        "add",
        ADDRESS,
        "--role",
        "viewer",
        "--password-stdin",
        "--json",
        stdin="short\n",
    )
    assert_plain_failure(short, 1)
    assert json.loads(short.out)["error"]["code"] == "invalid-staff-input"
    assert [m.email for m in staff.list_staff(rt)] == [OTHER]  # nothing else added

    reset = tact(
        site, "staff", "reset-password", OTHER, "--password-stdin", stdin="another passphrase\n"
    )
    assert reset.code == 0, str(reset)
    assert "sessions ended" in reset.out and "shown once" not in reset.out
    with pytest.raises(AuthenticationFailed):
        staff.login(rt, OTHER, chosen)
    assert staff.login(rt, OTHER, "another passphrase").principal


def test_errors_are_data_with_their_exit_codes(site: Path) -> None:
    bad_role = tact(site, "staff", "add", ADDRESS, "--role", "boss", "--json")
    assert_plain_failure(bad_role, 1)
    error = json.loads(bad_role.out)["error"]
    assert error["code"] == "invalid-staff-input"
    assert "boss" in error["message"] and "viewer" in error["message"]
    assert "error: unknown role 'boss'" in bad_role.err

    assert tact(site, "staff", "add", ADDRESS, "--role", "sender").code == 0
    duplicate = tact(site, "staff", "add", ADDRESS.upper(), "--role", "viewer", "--json")
    assert_plain_failure(duplicate, 1)
    assert json.loads(duplicate.out)["error"]["code"] == "staff-exists"
    assert ADDRESS.lower() not in duplicate.text.lower()  # the error does not echo it

    for args, code in (
        (("staff", "disable", OTHER), "staff-not-found"),
        (("staff", "disable", "42"), "staff-not-found"),
        (("tokens", "revoke", "42"), "staff-not-found"),
        (("tokens", "create", "1", "--name", "x", "--scopes", "root"), "invalid-staff-input"),
        (("staff", "add", "not-an-address", "--role", "viewer"), "invalid-address"),
    ):
        run = tact(site, *args, "--json")
        assert_plain_failure(run, 1)
        assert json.loads(run.out)["error"]["code"] == code, str(run)

    missing_option = tact(site, "staff", "add", OTHER, "--json")
    assert_plain_failure(missing_option, 2)
    assert json.loads(missing_option.out)["error"]["code"] == "usage"


def test_before_init_the_setup_is_what_is_wrong(tmp_path: Path) -> None:
    run = tact(tmp_path, "staff", "add", ADDRESS, "--role", "admin", "--json")
    assert_plain_failure(run, 2)
    assert json.loads(run.out)["error"]["code"] == "missing-keys"


def test_disable_enable_role_unlock(site: Path, rt: Runtime) -> None:
    password = shown(tact(site, "staff", "add", ADDRESS, "--role", "editor").out)
    session = staff.login(rt, ADDRESS, password).token

    disabled = tact(site, "staff", "disable", ADDRESS, "--json")
    assert disabled.code == 0, str(disabled)
    assert json.loads(disabled.out)["active"] is False
    with pytest.raises(AuthenticationFailed):
        staff.session(rt, session)
    with pytest.raises(AuthenticationFailed):
        staff.login(rt, ADDRESS, password)
    assert "disabled" in tact(site, "staff", "list").out

    assert tact(site, "staff", "enable", "1").code == 0
    role = tact(site, "staff", "role", "1", "sender")
    assert role.code == 0 and "now sender" in role.out, str(role)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            staff.login(rt, ADDRESS, "a wrong password here")
    assert "locked" in tact(site, "staff", "list").out
    unlocked = tact(site, "staff", "unlock", ADDRESS, "--json")
    assert unlocked.code == 0 and json.loads(unlocked.out)["locked_until"] is None
    assert staff.login(rt, ADDRESS, password).principal.role.value == "sender"


def test_tokens_create_list_revoke(site: Path, rt: Runtime) -> None:
    assert tact(site, "staff", "add", ADDRESS, "--role", "sender").code == 0
    created = tact(site, "tokens", "create", ADDRESS, "--name", "ci", "--scopes", "read,send")
    assert created.code == 0, str(created)
    token = shown(created.out)
    assert token.startswith("tact_") and "scopes read,send" in created.out
    principal = staff.authenticate_token(rt, token)
    assert principal.token_id == 1 and principal.staff_id == 1

    listed = tact(site, "tokens", "list")
    assert listed.code == 0 and "ci" in listed.out and "active" in listed.out, str(listed)
    assert token not in listed.text
    prefix = "_".join(token.split("_")[:2])  # tact_<8 hex>; the random part may hold "_"
    assert prefix in listed.out  # the prefix, to tell tokens apart
    [item] = json.loads(tact(site, "tokens", "list", "--json").out)
    assert item["id"] == 1 and item["scopes"] == ["read", "send"] and "token" not in item
    assert item["last_used_at"] is not None

    as_json = json.loads(tact(site, "tokens", "create", "1", "--name", "ro", "--json").out)
    assert as_json["scopes"] == ["read"] and as_json["token"].startswith("tact_")

    revoked = tact(site, "tokens", "revoke", "1")
    assert revoked.code == 0 and "token 1 revoked" in revoked.out, str(revoked)
    with pytest.raises(AuthenticationFailed):
        staff.authenticate_token(rt, token)
    assert staff.authenticate_token(rt, as_json["token"]).token_id == 2
    assert "revoked" in tact(site, "tokens", "list").out
    written = everything_written(site)
    assert token not in written and as_json["token"] not in written
    assert '"token.used"' in written and '"token.revoked"' in written


def test_audit_list_and_export(site: Path) -> None:
    assert tact(site, "staff", "add", ADDRESS, "--role", "admin").code == 0
    assert tact(site, "tokens", "create", "1", "--name", "ci").code == 0
    assert tact(site, "staff", "disable", "1").code == 0

    listed = tact(site, "audit", "list")
    assert listed.code == 0, str(listed)
    for action in ("staff.added", "token.created", "staff.disabled"):
        assert action in listed.out
    assert "operator" in listed.out
    page = json.loads(tact(site, "audit", "list", "--limit", "2", "--json").out)
    assert [e["action"] for e in page["items"]] == ["staff.disabled", "token.created"]
    assert page["next_cursor"] == page["items"][-1]["id"]
    older = json.loads(
        tact(site, "audit", "list", "--before", str(page["next_cursor"]), "--json").out
    )
    assert [e["action"] for e in older["items"]] == ["staff.added"]
    assert older["next_cursor"] is None
    only = json.loads(tact(site, "audit", "list", "--action", "token.", "--json").out)
    assert [e["action"] for e in only["items"]] == ["token.created"]

    exported = tact(site, "audit", "export", "--output", "audit.jsonl", "--json")
    assert exported.code == 0, str(exported)
    assert json.loads(exported.out) == {"entries": 3, "output": "audit.jsonl"}
    lines = (site / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["action"] for line in lines] == [
        "staff.added",
        "token.created",
        "staff.disabled",
    ]
    plain = tact(site, "audit", "export", "-o", "again.jsonl")
    assert plain.code == 0 and "3 audit entries written to again.jsonl" in plain.out
    assert tact(site, "audit", "export").out.splitlines() == lines
    too_many = tact(site, "audit", "list", "--limit", "100000")
    assert_plain_failure(too_many, 2)
