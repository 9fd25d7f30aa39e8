"""Staff, API tokens and the audit log in the console, over HTTP, on both databases: admin
only (other roles get 403, forged POSTs too), a password and a token shown once, disable
ends the sessions at once, role changes, revocation, the audit log's cursor paging and
its JSON-lines export."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from engine.app import audit as audit_uc
from engine.app import staff as staff_uc
from engine.audit import record
from engine.db import writing
from engine.errors import AuthenticationFailed
from tests.console.support import Member, client, page_form, post_form, runtime_of, sign_in
from tests.console2.conftest import Team
from tests.console2.support import forged, form_at, signed_in

pytestmark = pytest.mark.anyio

PAGES = ("/admin/staff", "/admin/tokens", "/admin/audit", "/admin/audit/export.jsonl")


async def test_only_admins_see_staff_tokens_and_audit(app: FastAPI, team: Team) -> None:
    for role in ("viewer", "editor", "sender"):
        async with signed_in(app, team.of(role)) as http:
            home = await http.get("/admin/")
            for path in ("/admin/staff", "/admin/tokens", "/admin/audit"):
                assert f'href="{path}"' not in home.text, (role, path)
            for path in PAGES:
                assert (await http.get(path)).status_code == 403, (role, path)
            for path, purpose, data in (
                ("/admin/staff", "staff.manage", {"email": "x@staff.example", "role": "admin"}),
                (f"/admin/staff/{team.admin.id}/disable", "staff.manage", {}),
                (f"/admin/staff/{team.of(role).id}/role", "staff.manage", {"role": "admin"}),
                ("/admin/tokens", "tokens.manage", {"name": "mine", "scopes": "read"}),
            ):
                answer = await post_form(http, path, {"csrf": forged(app, http, purpose), **data})
                assert answer.status_code == 403, (role, path)
    rt = runtime_of(app)
    assert {m.role.value for m in staff_uc.list_staff(rt, with_email=False)} == {
        "viewer",
        "editor",
        "sender",
        "admin",
    }
    assert staff_uc.list_tokens(rt) == []
    async with signed_in(app, team.admin) as http:
        home = await http.get("/admin/")
        for path in ("/admin/staff", "/admin/tokens", "/admin/audit"):
            assert f'href="{path}"' in home.text
        for path in PAGES:
            assert (await http.get(path)).status_code == 200, path


async def test_an_added_member_gets_a_password_shown_once_and_can_sign_in(
    app: FastAPI, team: Team
) -> None:
    async with signed_in(app, team.admin) as http:
        page = await http.get("/admin/staff")
        add = form_at(page.text, "/admin/staff")
        # refused inline: a bad address, an address taken
        bad = await post_form(http, add.action, add.data(email="not an address", role="editor"))
        assert bad.status_code == 400 and "not an email address" in bad.text
        taken = await post_form(http, add.action, add.data(email=team.viewer.email, role="editor"))
        assert taken.status_code == 400 and "exists already" in taken.text
        done = await post_form(http, add.action, add.data(email="new@staff.example", role="editor"))
        assert done.status_code == 200, done.text
        match = re.search(r"<code class=\"secret\" data-secret>([^<]+)</code>", done.text)
        assert match, done.text
        password = match.group(1)
        assert "shown only now" in done.text
        again = await http.get("/admin/staff")
        assert password not in again.text
        assert "new@staff.example" in again.text
    [added] = audit_uc.entries(runtime_of(app), action="staff.added").items[:1]
    assert added.actor == f"staff:{team.admin.id}"
    assert "new@staff.example" not in json.dumps(added.to_dict())
    newcomer = Member(int(added.detail["staff_id"]), "new@staff.example", password, "editor")
    async with client(app) as http:
        assert (await sign_in(http, newcomer)).status_code == 303


async def test_disable_ends_the_members_session_at_once_and_roles_change(
    app: FastAPI, team: Team
) -> None:
    async with signed_in(app, team.editor) as editor_http:
        assert (await editor_http.get("/admin/")).status_code == 200
        async with signed_in(app, team.admin) as http:
            page = await http.get("/admin/staff")
            disable = page_form(page.text, f"/admin/staff/{team.editor.id}/disable")
            done = await post_form(http, disable.action, disable.data())
            assert done.status_code == 303
            assert "disabled" in (await http.get(done.headers["location"])).text
            # the editor's next request is sent to the login page
            gone = await editor_http.get("/admin/")
            assert gone.status_code == 303 and "/admin/login" in gone.headers["location"]
            assert (await sign_in(editor_http, team.editor)).status_code == 401

            page = await http.get("/admin/staff")
            role = page_form(page.text, f"/admin/staff/{team.viewer.id}/role")
            assert (await post_form(http, role.action, role.data(role="sender"))).status_code == 303
            assert (await post_form(http, role.action, role.data(role="owner"))).status_code == 400

            # an admin cannot lock themselves out
            page = await http.get("/admin/staff")
            assert f"/admin/staff/{team.admin.id}/disable" not in page.text
            self_disable = await post_form(
                http,
                f"/admin/staff/{team.admin.id}/disable",
                {"csrf": forged(app, http, "staff.manage")},
            )
            assert self_disable.status_code == 400
    rt = runtime_of(app)
    roles = {m.id: (m.role.value, m.active) for m in staff_uc.list_staff(rt, with_email=False)}
    assert roles[team.viewer.id] == ("sender", True)
    assert roles[team.editor.id][1] is False
    assert roles[team.admin.id] == ("admin", True)
    actions = [e.action for e in audit_uc.entries(rt, action="staff.").items]
    assert "staff.disabled" in actions and "staff.role-changed" in actions


async def test_a_token_is_shown_once_works_and_stops_when_revoked(app: FastAPI, team: Team) -> None:
    rt = runtime_of(app)
    async with signed_in(app, team.admin) as http:
        page = await http.get("/admin/tokens")
        create = form_at(page.text, "/admin/tokens")
        none = await post_form(
            http, create.action, create.data(name="nightly", staff=str(team.sender.id), scopes=[])
        )
        assert none.status_code == 400 and "at least one scope" in none.text
        made = await post_form(
            http,
            create.action,
            create.data(name="nightly", staff=str(team.sender.id), scopes=["read", "send"]),
        )
        assert made.status_code == 200, made.text
        match = re.search(r"<code class=\"secret\" data-secret>(tact_[^<]+)</code>", made.text)
        assert match, made.text
        token = match.group(1)
        principal = staff_uc.authenticate_token(rt, token)
        assert principal.staff_id == team.sender.id
        listing = await http.get("/admin/tokens")
        assert token not in listing.text
        [info] = staff_uc.list_tokens(rt)
        assert info.prefix in listing.text and "nightly" in listing.text
        assert info.last_used_at is not None  # shown in the list ("Last used")
        revoke = page_form(listing.text, f"/admin/tokens/{info.id}/revoke")
        done = await post_form(http, revoke.action, revoke.data())
        assert done.status_code == 303
        assert "revoked" in (await http.get(done.headers["location"])).text
    with pytest.raises(AuthenticationFailed):
        staff_uc.authenticate_token(rt, token)
    actions = [e.action for e in audit_uc.entries(rt, action="token.").items]
    assert actions[:2] == ["token.revoked", "token.used"] and "token.created" in actions


async def test_the_audit_log_pages_with_a_cursor_filters_and_exports(
    app: FastAPI, team: Team
) -> None:
    rt = runtime_of(app)
    now = datetime.now(UTC)
    with writing(rt.engine) as conn:
        for n in range(60):
            record(conn, "campaign.created", now, actor="operator", campaign_id=n)
    total = len(list(audit_uc.export_lines(rt)))
    async with signed_in(app, team.admin) as http:
        first = await http.get("/admin/audit")
        assert first.status_code == 200
        rows = re.findall(r'<td class="num">(\d+)</td>', first.text)
        assert len(rows) == 50
        older = re.search(r'<a href="(/admin/audit\?before=\d+)" rel="next">', first.text)
        assert older, first.text
        second = await http.get(older.group(1))
        rest = re.findall(r'<td class="num">(\d+)</td>', second.text)
        assert len(rows) + len(rest) == total + 1  # the admin's own sign-in since
        assert not set(rows) & set(rest)
        assert max(int(r) for r in rest) < min(int(r) for r in rows)

        only = await http.get("/admin/audit", params={"action": "login."})
        actions = re.findall(r"<th scope=\"row\"><code>([^<]+)</code></th>", only.text)
        assert actions and set(actions) == {"login.succeeded"}

        export = await http.get("/admin/audit/export.jsonl")
        assert export.status_code == 200
        assert "attachment" in export.headers["content-disposition"]
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert len(lines) == total + 1
        assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
        for member in (team.viewer, team.editor, team.sender, team.admin):
            assert member.email not in export.text and member.email not in first.text
