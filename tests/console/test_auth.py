"""Signing in and out of the console, over HTTP, on both databases.

What the issue asks of logins: Argon2id, one message whatever was wrong, a lock after
repeated failures, a per-address rate limit, CSRF on every form (the login form too),
no session fixation, logout that ends the session on the server, idle and absolute
timeouts, and cookies that are Secure, HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.app import audit as audit_uc
from engine.config import Settings
from engine.vault import Keyring, Vault
from engine.web.app import create_app
from tests.console.support import (
    add_member,
    client,
    console_of,
    page_form,
    post_form,
    session_cookie,
    set_cookie_header,
    sign_in,
    submit,
)

pytestmark = pytest.mark.anyio

FAILED = "Those details did not sign you in"


async def test_login_sets_a_fresh_strict_session_cookie_and_opens_the_dashboard(
    app: FastAPI,
) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        page = await http.get("/admin/login")
        assert page.status_code == 200
        assert '<html lang="en">' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        login_nonce = set_cookie_header(page, "tact_login")
        assert "HttpOnly" in login_nonce and "SameSite=strict" in login_nonce

        done = await sign_in(http, member)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/admin/"
        header = set_cookie_header(done, "tact_session")
        assert "HttpOnly" in header
        assert "SameSite=strict" in header
        assert "Secure" in header
        assert "Path=/admin" in header
        assert "Max-Age" not in header and "expires" not in header.lower()

        home = await http.get("/admin/")
        assert home.status_code == 200
        assert "Dashboard" in home.text
        assert f"staff {member.id}" in home.text
        assert member.email not in home.text  # staff addresses are personal data too


async def test_wrong_password_and_unknown_address_get_the_same_answer(app: FastAPI) -> None:
    member = add_member(app, "editor")
    async with client(app) as http:
        wrong = await sign_in(http, member, password="not the password at all")
        assert wrong.status_code == 401
        assert FAILED in wrong.text
        assert session_cookie(wrong) is None
        ghost = await submit(
            http, "/admin/login", "/admin/login", email="ghost@staff.example", password="x" * 20
        )
        assert ghost.status_code == 401
        assert FAILED in ghost.text
        assert member.email not in wrong.text and "ghost@staff.example" not in ghost.text
        assert (await http.get("/admin/", follow_redirects=False)).status_code == 303


async def test_not_signed_in_goes_to_login_and_comes_back(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        away = await http.get("/admin/?lang=en")
        assert away.status_code == 303
        assert away.headers["location"].startswith("/admin/login?next=")
        login_page = await http.get(away.headers["location"])
        login = page_form(login_page.text, "/admin/login")
        assert login.fields["next"] == ["/?lang=en"]
        done = await post_form(
            http, login.action, login.data(email=member.email, password=member.password)
        )
        assert done.headers["location"] == "/admin/?lang=en"


async def test_next_is_never_an_open_redirect(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        page = await http.get("/admin/login?next=//evil.example/x")
        login = page_form(page.text, "/admin/login")
        done = await post_form(
            http, login.action, login.data(email=member.email, password=member.password)
        )
        assert done.headers["location"] == "/admin/"


async def test_login_form_is_protected_against_csrf(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        page = await http.get("/admin/login")
        login = page_form(page.text, "/admin/login")
        fields = login.data(email=member.email, password=member.password)
        no_field = {k: v for k, v in fields.items() if k != "csrf"}
        assert (await post_form(http, login.action, no_field)).status_code == 403
        forged = await post_form(http, login.action, fields, origin="https://evil.example")
        assert forged.status_code == 403
        assert (await post_form(http, login.action, fields, origin=None)).status_code == 403
        # Another browser (no pre-session nonce cookie) cannot replay this page's field.
        async with client(app) as other:
            replay = await post_form(other, login.action, fields)
            assert replay.status_code == 403
        ok = await post_form(http, login.action, fields)
        assert ok.status_code == 303


def _session(token: str) -> dict[str, str]:
    """The session cookie as a browser sends it, whatever the client's jar holds."""
    return {"cookie": f"tact_session={token}"}


async def test_a_cookie_planted_before_login_is_not_the_session_after(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        planted = "attacker-chosen-session-value-1234567890"
        http.cookies.set("tact_session", planted, path="/admin")  # sent: no domain
        done = await sign_in(http, member)
        token = session_cookie(done)
        assert token is not None and token != planted
    async with client(app) as attacker:
        # The cookie as a header: httpx's jar files a cookie set for "testserver" under
        # "testserver.local" and would not send it, which would make this test vacuous.
        refused = await attacker.get("/admin/", headers=_session(planted))
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/admin/login")


async def test_logout_ends_the_session_on_the_server(app: FastAPI) -> None:
    member = add_member(app, "sender")
    async with client(app) as http:
        token = session_cookie(await sign_in(http, member))
        assert token
        async with client(app) as second:  # the control: this very cookie works until logout
            assert (await second.get("/admin/", headers=_session(token))).status_code == 200
        out = await submit(http, "/admin/", "/admin/logout")
        assert out.status_code == 303
        assert out.headers["location"].startswith("/admin/login")
        expired = set_cookie_header(out, "tact_session")
        assert 'tact_session=""' in expired
        assert "Secure" in expired and "Path=/admin" in expired  # matches the cookie it ends
    async with client(app) as replay:
        assert (await replay.get("/admin/", headers=_session(token))).status_code == 303
    actions = [e.action for e in audit_uc.entries(app.state.tact.runtime, limit=50).items]
    assert "logout" in actions and "login.succeeded" in actions


async def test_logout_needs_our_form(app: FastAPI) -> None:
    member = add_member(app, "sender")
    async with client(app) as http:
        await sign_in(http, member)
        assert (await post_form(http, "/admin/logout", {})).status_code == 403
        home = await http.get("/admin/")
        logout = page_form(home.text, "/admin/logout")
        cross = await post_form(http, logout.action, logout.data(), origin="https://evil.example")
        assert cross.status_code == 403
        assert (await http.get("/admin/")).status_code == 200  # still signed in


async def test_idle_and_absolute_timeouts(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    state = console_of(app)
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    moment = [start]
    state.clock = lambda: moment[0]
    settings = app.state.tact.runtime.settings
    async with client(app) as http:
        await sign_in(http, member)
        # Active every 20 minutes: the idle timeout never strikes, the absolute one does.
        while moment[0] < start + timedelta(hours=settings.console_session_hours) - timedelta(
            minutes=20
        ):
            moment[0] += timedelta(minutes=20)
            assert (await http.get("/admin/")).status_code == 200, moment[0]
        moment[0] = start + timedelta(hours=settings.console_session_hours, minutes=1)
        assert (await http.get("/admin/")).status_code == 303
    async with client(app) as http:
        moment[0] = start
        await sign_in(http, member)
        moment[0] = start + timedelta(minutes=settings.console_session_idle_minutes - 1)
        assert (await http.get("/admin/")).status_code == 200
        moment[0] += timedelta(minutes=settings.console_session_idle_minutes + 1)
        assert (await http.get("/admin/")).status_code == 303


async def test_five_wrong_passwords_lock_the_account(app: FastAPI) -> None:
    member = add_member(app, "admin")
    async with client(app) as http:
        for _ in range(4):
            assert (await sign_in(http, member, password="wrong-password-x")).status_code == 401
        fifth = await sign_in(http, member, password="wrong-password-x")
        assert fifth.status_code == 403 and "locked" in fifth.text
        locked = await sign_in(http, member)
        assert locked.status_code == 403
        assert "locked" in locked.text
        assert session_cookie(locked) is None


async def test_logins_are_rate_limited_per_client_address(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    console_of(app).limiter.per_minute = 3
    async with client(app, client_ip="198.51.100.1") as http:
        for _ in range(3):
            assert (await sign_in(http, member, password="wrong-password-y")).status_code == 401
        limited = await sign_in(http, member)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "60"
    async with client(app, client_ip="198.51.100.2") as elsewhere:
        assert (await sign_in(elsewhere, member)).status_code == 303


async def test_chinese_by_switch_and_by_browser(app: FastAPI) -> None:
    async with client(app) as http:
        zh = await http.get("/admin/login?lang=zh-Hans")
        assert '<html lang="zh-Hans">' in zh.text
        assert "登录" in zh.text
        assert "tact_lang=zh-Hans" in set_cookie_header(zh, "tact_lang")
        again = await http.get("/admin/login")  # remembered
        assert '<html lang="zh-Hans">' in again.text
    async with client(app) as http:
        browser = await http.get("/admin/login", headers={"accept-language": "zh-CN,zh;q=0.9"})
        assert '<html lang="zh-Hans">' in browser.text
        english = await http.get("/admin/login", headers={"accept-language": "en-GB"})
        assert '<html lang="en">' in english.text


async def test_an_account_with_a_second_factor_needs_its_code(app: FastAPI) -> None:
    import time

    from engine.app import staff as staff_uc
    from engine.staff import totp

    member = add_member(app, "editor")
    _, secret = staff_uc.enrol_totp(app.state.tact.runtime, str(member.id))
    async with client(app) as http:
        without = await sign_in(http, member)
        assert without.status_code == 401 and FAILED in without.text
        wrong = await sign_in(
            http,
            member,
            code="000000" if totp.code_at(secret, time.time()) != "000000" else "111111",
        )
        assert wrong.status_code == 401 and FAILED in wrong.text
        right = await sign_in(http, member, code=totp.code_at(secret, time.time()))
        assert right.status_code == 303
        assert (await http.get("/admin/")).status_code == 200


async def test_the_login_page_of_a_signed_in_member_goes_on_to_the_console(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        await sign_in(http, member)
        again = await http.get("/admin/login?next=/campaigns")
        assert again.status_code == 303 and again.headers["location"] == "/admin/campaigns"


async def test_a_plain_http_setup_may_turn_secure_off(
    settings: Settings, engine: Engine, keyring: Keyring, vault: Vault
) -> None:
    plain = create_app(settings.model_copy(update={"console_secure_cookie": False}), only="admin")
    try:
        member = add_member(plain, "viewer")
        async with client(plain) as http:
            done = await sign_in(http, member)
            assert done.status_code == 303
            header = set_cookie_header(done, "tact_session")
            assert "Secure" not in header and "HttpOnly" in header and "SameSite=strict" in header
    finally:
        plain.state.tact.runtime.close()
