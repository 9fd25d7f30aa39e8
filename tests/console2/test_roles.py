"""Every page of the console's other areas for every role, on both databases: what each
role may open (200) and what it is refused (403), as engine.app.permissions says; and
every form of these areas refused without our token or from another origin (403), even
for an admin, with nothing changed."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from engine.app import audit as audit_uc
from engine.app import permissions
from engine.app import staff as staff_uc
from engine.staff import Principal
from engine.staff.roles import Role
from tests.console.support import post_form, runtime_of
from tests.console2.conftest import ROLES, Team
from tests.console2.support import forged, signed_in
from tests.web.support import Someone

pytestmark = pytest.mark.anyio

EDITOR = "/admin/templates/autumn-2026/closing/standard"


def gets(contact: str) -> dict[str, str]:
    """Each GET page of these areas and the operation it needs."""
    return {
        "/admin/contacts": "contacts.lookup",
        f"/admin/contacts/{contact}": "contacts.consent",
        f"/admin/contacts/{contact}/export": "contacts.export",
        f"/admin/contacts/{contact}/erase": "contacts.erase",
        "/admin/segments": "segments.list",
        "/admin/imports": "imports.show",
        "/admin/templates": "templates.list",
        EDITOR: "templates.read",
        "/admin/staff": "staff.list",
        "/admin/tokens": "tokens.manage",
        "/admin/audit": "audit.list",
        "/admin/audit/export.jsonl": "audit.export",
    }


def posts(contact: str, team: Team) -> dict[str, tuple[str, dict[str, str]]]:
    """Each form of these areas: (csrf purpose, the rest of a valid submission)."""
    return {
        "/admin/contacts/lookup": ("contacts.lookup", {"address": "x@customers.example"}),
        f"/admin/contacts/{contact}/reveal": ("contacts.reveal", {}),
        f"/admin/contacts/{contact}/export": ("contacts.export", {"confirm": contact}),
        f"/admin/contacts/{contact}/erase": ("contacts.erase", {"confirm": contact}),
        EDITOR: ("templates.edit", {"do": "save", "source": "<p>changed</p>"}),
        EDITOR + "/check.json": ("templates.edit", {"source": "<p>x</p>"}),
        "/admin/staff": ("staff.manage", {"email": "n@staff.example", "role": "admin"}),
        f"/admin/staff/{team.viewer.id}/role": ("staff.manage", {"role": "admin"}),
        f"/admin/staff/{team.viewer.id}/disable": ("staff.manage", {}),
        "/admin/tokens": ("tokens.manage", {"name": "t", "scopes": "read"}),
        "/admin/imports": ("imports.create", {}),
    }


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_opens_what_it_may_and_is_refused_the_rest(
    app: FastAPI, team: Team, people: list[Someone], role: str
) -> None:
    principal = Principal(staff_id=team.of(role).id, role=Role(role))
    async with signed_in(app, team.of(role)) as http:
        for path, operation in gets(str(people[0].contact_id)).items():
            answer = await http.get(path)
            expected = 200 if permissions.may(principal, operation) else 403
            assert answer.status_code == expected, (role, path, answer.status_code)
            if expected == 403:
                assert "Not allowed" in answer.text


async def test_every_form_needs_our_token_and_our_origin(
    app: FastAPI, team: Team, people: list[Someone]
) -> None:
    rt = runtime_of(app)
    contact = str(people[0].contact_id)
    before = len(list(audit_uc.export_lines(rt)))
    async with signed_in(app, team.admin) as http:
        for path, (purpose, data) in posts(contact, team).items():
            missing = await post_form(http, path, data)
            assert missing.status_code == 403, ("no token", path)
            foreign = await post_form(
                http,
                path,
                {"csrf": forged(app, http, purpose), **data},
                origin="https://evil.example",
            )
            assert foreign.status_code == 403, ("foreign origin", path)
            neither = await http.post(path, data={"csrf": forged(app, http, purpose), **data})
            assert neither.status_code == 403, ("no origin", path)
    after = list(audit_uc.export_lines(rt))
    # Only the admin's sign-in was written: no reveal, export, erasure, save, staff change.
    assert len(after) == before + 1 and '"login.succeeded"' in after[-1]
    assert staff_uc.list_tokens(rt) == []
    assert len(staff_uc.list_staff(rt, with_email=False)) == len(ROLES)
