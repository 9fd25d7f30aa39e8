"""``tact staff``, ``tact tokens`` and ``tact audit``: who may use the console and the API.

The CLI is the machine's operator: it may do everything, and what it does is
audited as ``operator``. Passwords and tokens that Tact chooses are printed
once and never stored.
"""

from __future__ import annotations

import dataclasses
import sys

import typer
from rich.table import Column, Table

from engine.app import audit, staff
from engine.cli.console import JSON, emit, out
from engine.cli.runtime import Runtime
from engine.cli.tables import when

app = typer.Typer(
    help="Staff accounts for the console and the API: add, list, disable, roles.",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="API tokens: create (shown once), list, revoke.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The audit log: who did what, and when; export as JSON lines.", no_args_is_help=True
)

ROLES = "viewer (reports), editor (campaigns, templates), sender (may send), admin (everything)"


def _read_password() -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise typer.BadParameter("no password on standard input", param_hint="--password-stdin")
    return value


def _member_row(m: staff.StaffMember) -> dict[str, object]:
    return {
        "id": m.id,
        "email": m.email,
        "role": m.role.value,
        "active": m.active,
        "totp": m.totp,
        "created_at": m.created_at.isoformat(),
        "last_login_at": m.last_login_at.isoformat() if m.last_login_at else None,
        "locked_until": m.locked_until.isoformat() if m.locked_until else None,
    }


@app.command("add")
def add_cmd(
    email: str = typer.Argument(..., help="The staff member's address (their login)."),
    role: str = typer.Option(..., "--role", "-r", help=f"One of: {ROLES}."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (else: generated)."
    ),
    as_json: bool = JSON,
) -> None:
    """Add a member of staff. Without --password-stdin a password is generated and printed once."""
    password = _read_password() if password_stdin else None
    added = staff.add(Runtime(), email, role, password=password)
    if as_json:
        emit(added)
        return
    out.print(f"staff {added.id} added as {added.role}")
    if added.password:
        out.print(f"password (shown once): [bold]{added.password}[/]")


@app.command("list")
def list_cmd(as_json: bool = JSON) -> None:
    """Every staff account, with its role and last login."""
    members = staff.list_staff(Runtime())
    if as_json:
        emit([_member_row(m) for m in members])
        return
    # An address is never cut short: the other columns wrap first.
    longest = max((len(m.email or "?") for m in members), default=7)
    table = Table(
        "id",
        Column("address", min_width=min(longest, 64), overflow="fold"),
        "role",
        "state",
        "2FA",
        "last login",
    )
    for m in members:
        state = "disabled" if not m.active else ("locked" if m.locked_until else "active")
        table.add_row(
            str(m.id),
            m.email or "?",
            m.role.value,
            state,
            "yes" if m.totp else "-",
            when(m.last_login_at),
        )
    out.print(table if members else "no staff yet: `tact staff add EMAIL --role admin`")


@app.command("disable")
def disable_cmd(
    who: str = typer.Argument(..., help="Address or id."), as_json: bool = JSON
) -> None:
    """Disable an account: its sessions end and its API tokens stop working at once."""
    member = staff.disable(Runtime(), who)
    if as_json:
        emit(_member_row(member))
        return
    out.print(f"staff {member.id} disabled; its sessions and tokens no longer work")


@app.command("enable")
def enable_cmd(who: str = typer.Argument(..., help="Address or id."), as_json: bool = JSON) -> None:
    """Enable a disabled account again."""
    member = staff.enable(Runtime(), who)
    if as_json:
        emit(_member_row(member))
        return
    out.print(f"staff {member.id} enabled")


@app.command("role")
def role_cmd(
    who: str = typer.Argument(..., help="Address or id."),
    role: str = typer.Argument(..., help=f"One of: {ROLES}."),
    as_json: bool = JSON,
) -> None:
    """Change a member of staff's role."""
    member = staff.set_role(Runtime(), who, role)
    if as_json:
        emit(_member_row(member))
        return
    out.print(f"staff {member.id} is now {member.role.value}")


@app.command("unlock")
def unlock_cmd(who: str = typer.Argument(..., help="Address or id."), as_json: bool = JSON) -> None:
    """Lift a lock after too many failed logins."""
    member = staff.unlock(Runtime(), who)
    if as_json:
        emit(_member_row(member))
        return
    out.print(f"staff {member.id} unlocked")


@app.command("reset-password")
def reset_password_cmd(
    who: str = typer.Argument(..., help="Address or id."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (else: generated)."
    ),
    as_json: bool = JSON,
) -> None:
    """Set a new password; every session of the account ends."""
    password = _read_password() if password_stdin else None
    result = staff.reset_password(Runtime(), who, password=password)
    if as_json:
        emit(result)
        return
    out.print(f"staff {result.id}: password changed, sessions ended")
    if result.password:
        out.print(f"password (shown once): [bold]{result.password}[/]")


@app.command("totp")
def totp_cmd(who: str = typer.Argument(..., help="Address or id."), as_json: bool = JSON) -> None:
    """Turn on the second factor (TOTP): prints the secret for an authenticator app, once."""
    staff_id, secret = staff.enrol_totp(Runtime(), who)
    if as_json:
        emit({"id": staff_id, "secret": secret})
        return
    out.print(f"staff {staff_id}: second factor on; secret (shown once): [bold]{secret}[/]")


# -- tokens ----------------------------------------------------------------------------------


@tokens_app.command("create")
def token_create(
    who: str = typer.Argument(..., help="The owner: address or id of a member of staff."),
    name: str = typer.Option(..., "--name", "-n", help="What the token is for."),
    scopes: str = typer.Option(
        "read", "--scopes", "-s", help="Comma-separated: read, write, send (default: read)."
    ),
    as_json: bool = JSON,
) -> None:
    """Create an API token; it is printed once (Tact keeps only its hash)."""
    created = staff.create_token(Runtime(), who, name, scopes)
    if as_json:
        emit(created)
        return
    out.print(f"token {created.id} for staff {created.staff_id}, scopes {','.join(created.scopes)}")
    out.print(f"token (shown once): [bold]{created.token}[/]")


@tokens_app.command("list")
def token_list(as_json: bool = JSON) -> None:
    """Every API token (never the token itself), with its last use."""
    items = staff.list_tokens(Runtime())
    if as_json:
        emit([dataclasses.asdict(t) for t in items])
        return
    table = Table("id", "staff", "name", "prefix", "scopes", "last used", "state")
    for t in items:
        table.add_row(
            str(t.id),
            str(t.staff_id),
            t.name,
            t.prefix,
            ",".join(t.scopes),
            when(t.last_used_at),
            "revoked" if t.revoked_at else "active",
        )
    out.print(table if items else "no API tokens yet")


@tokens_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., help="The token's id."), as_json: bool = JSON
) -> None:
    """Revoke a token: it stops working at once."""
    info = staff.revoke_token(Runtime(), token_id)
    if as_json:
        emit(info)
        return
    out.print(f"token {info.id} revoked")


# -- audit -----------------------------------------------------------------------------------


@audit_app.command("list")
def audit_list(
    limit: int = typer.Option(50, min=1, max=audit.MAX_PAGE, help="How many, newest first."),
    before: int | None = typer.Option(None, help="Entries older than this id (paging)."),
    action: str | None = typer.Option(None, help="Only actions starting with this (campaign.)."),
    as_json: bool = JSON,
) -> None:
    """The newest entries of the audit log."""
    page = audit.entries(Runtime(), before=before, limit=limit, action=action)
    if as_json:
        emit({"items": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor})
        return
    table = Table("id", "when", "actor", "action", "contact", "detail")
    for e in page.items:
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
        table.add_row(
            str(e.id), when(e.occurred_at), e.actor, e.action, e.contact_id or "-", detail
        )
    out.print(table if page.items else "the audit log is empty")
    if page.next_cursor:
        out.print(f"older: `tact audit list --before {page.next_cursor}`")


@audit_app.command("export")
def audit_export(
    output: typer.FileTextWrite = typer.Option(
        "-", "--output", "-o", help="Where to write JSON lines (default: standard output)."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="With --output FILE: print what was written as JSON (the lines are JSON already).",
    ),
) -> None:
    """The whole audit log, oldest first, as JSON lines."""
    count = 0
    for line in audit.export_lines(Runtime()):
        output.write(line)
        count += 1
    output.flush()
    name = getattr(output, "name", "-")
    if name in ("-", "<stdout>"):
        return
    if as_json:
        emit({"entries": count, "output": name})
        return
    out.print(f"{count} audit entries written to {name}")
