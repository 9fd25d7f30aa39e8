"""Staff, API tokens and the audit log, for admins: ``/admin/staff``, ``/admin/tokens``,
``/admin/audit``.

A password Tact chooses for a new account, and a new API token, are shown once, on
the page that answers the POST which made them (never in a URL, never stored: the
tables hold hashes). Every change goes through :mod:`engine.app.staff`, which audits
it naming staff by id. The audit log is read a page at a time with a cursor (the
last id seen) and downloads whole as JSON lines.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.responses import Response, StreamingResponse

from engine.app import audit as audit_uc
from engine.app import staff as staff_uc
from engine.errors import InvalidAddress, InvalidStaffInput, StaffExists
from engine.staff import Scope
from engine.staff.roles import Role
from engine.web.console.context import Console, Fields, RowCursor, RowId, Staff

router = APIRouter()

ROLES = tuple(r.value for r in Role)
SCOPES = tuple(s.value for s in Scope)
AUDIT_PAGE = 50


def when(value: datetime | None) -> str:
    """A time as the console's tables show it (UTC, to the minute); a dash for none."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC times; PostgreSQL aware ones."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _staff_page(
    c: Console, *, status: int = 200, error: str | None = None, added: object = None
) -> Response:
    c.check("staff.list")
    members = staff_uc.list_staff(c.rt, with_email=True)
    now = c.now()
    locked = {m.id for m in members if m.locked_until is not None and _aware(m.locked_until) > now}
    return c.page(
        "admin/staff.html",
        status=status,
        members=members,
        roles=ROLES,
        error=error,
        added=added,
        locked=locked,
        when=when,
    )


@router.get("/staff")
def staff_list(c: Staff) -> Response:
    return _staff_page(c)


@router.post("/staff")
def staff_add(c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "staff.manage")
    c.check("staff.manage")
    email = str(form.get("email") or "").strip()
    role = str(form.get("role") or "")
    if not email:
        return _staff_page(c, status=400, error="admin.staff.error.no_email")
    try:
        with c.acting():
            added = staff_uc.add(c.rt, email, role, now=c.now())
    except StaffExists:
        return _staff_page(c, status=400, error="admin.staff.error.exists")
    except InvalidAddress:
        return _staff_page(c, status=400, error="admin.staff.error.address")
    except InvalidStaffInput:
        return _staff_page(c, status=400, error="admin.staff.error.role")
    return _staff_page(c, added=added)


def _member_change(c: Console, form: Fields, staff_id: int, action: str) -> Response:
    c.check_csrf(form, "staff.manage")
    c.check("staff.manage")
    ref = str(staff_id)
    if staff_id == c.staff.staff_id and action in ("disable", "role"):
        # An admin cannot lock themselves out (nor leave the console without an admin).
        return _staff_page(c, status=400, error="admin.staff.error.self")
    with c.acting():
        if action == "disable":
            staff_uc.disable(c.rt, ref, now=c.now())
        elif action == "enable":
            staff_uc.enable(c.rt, ref, now=c.now())
        elif action == "unlock":
            staff_uc.unlock(c.rt, ref, now=c.now())
        else:
            role = str(form.get("role") or "")
            if role not in ROLES:
                return _staff_page(c, status=400, error="admin.staff.error.role")
            staff_uc.set_role(c.rt, ref, role, now=c.now())
    return c.redirect("/staff", notice=f"admin.staff.notice.{action}")


@router.post("/staff/{staff_id}/disable")
def staff_disable(staff_id: RowId, c: Staff, form: Fields) -> Response:
    return _member_change(c, form, staff_id, "disable")


@router.post("/staff/{staff_id}/enable")
def staff_enable(staff_id: RowId, c: Staff, form: Fields) -> Response:
    return _member_change(c, form, staff_id, "enable")


@router.post("/staff/{staff_id}/unlock")
def staff_unlock(staff_id: RowId, c: Staff, form: Fields) -> Response:
    return _member_change(c, form, staff_id, "unlock")


@router.post("/staff/{staff_id}/role")
def staff_role(staff_id: RowId, c: Staff, form: Fields) -> Response:
    return _member_change(c, form, staff_id, "role")


# -- API tokens -------------------------------------------------------------------------------


def _tokens_page(
    c: Console, *, status: int = 200, error: str | None = None, created: object = None
) -> Response:
    c.check("tokens.manage")
    return c.page(
        "admin/tokens.html",
        status=status,
        tokens=list(reversed(staff_uc.list_tokens(c.rt))),
        members=staff_uc.list_staff(c.rt, with_email=False),
        scopes=SCOPES,
        error=error,
        created=created,
        when=when,
    )


@router.get("/tokens")
def tokens_list(c: Staff) -> Response:
    return _tokens_page(c)


@router.post("/tokens")
def tokens_create(c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "tokens.manage")
    c.check("tokens.manage")
    owner = str(form.get("staff") or c.staff.staff_id)
    name = str(form.get("name") or "").strip()
    scopes = [str(s) for s in form.getlist("scopes")]
    if not name:
        return _tokens_page(c, status=400, error="admin.tokens.error.name")
    if not scopes or any(s not in SCOPES for s in scopes):
        return _tokens_page(c, status=400, error="admin.tokens.error.scopes")
    if not owner.isdigit():
        return _tokens_page(c, status=400, error="admin.tokens.error.owner")
    try:
        with c.acting():
            created = staff_uc.create_token(c.rt, owner, name, scopes, now=c.now())
    except InvalidStaffInput:
        return _tokens_page(c, status=400, error="admin.tokens.error.name")
    return _tokens_page(c, created=created)


@router.post("/tokens/{token_id}/revoke")
def tokens_revoke(token_id: RowId, c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "tokens.manage")
    c.check("tokens.manage")
    with c.acting():
        staff_uc.revoke_token(c.rt, token_id, now=c.now())
    return c.redirect("/tokens", notice="admin.tokens.notice.revoked")


# -- the audit log ----------------------------------------------------------------------------


@router.get("/audit")
def audit_list(c: Staff, before: RowCursor = None, action: str = "") -> Response:
    c.check("audit.list")
    action = action.strip()[:64]
    page = audit_uc.entries(c.rt, before=before, limit=AUDIT_PAGE, action=action or None)
    older = c.url("/audit", before=page.next_cursor, action=action or None)
    return c.page(
        "admin/audit.html",
        entries=page.items,
        older=older if page.next_cursor is not None else None,
        newest=c.url("/audit", action=action or None) if before is not None else None,
        action=action,
        when=when,
    )


@router.get("/audit/export.jsonl")
def audit_export(c: Staff) -> Response:
    c.check("audit.export")
    stamp = c.now().strftime("%Y%m%dT%H%MZ")
    return StreamingResponse(
        audit_uc.export_lines(c.rt),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="tact-audit-{stamp}.jsonl"'},
    )
