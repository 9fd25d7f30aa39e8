"""The console attacked from outside, over HTTP: no data without a session, no open redirect,
hostile names escaped, forged forms refused, the template editor confined to its folder, the
login limiter deaf to X-Forwarded-For, old and disabled sessions dead."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI

from engine.app import campaigns
from engine.app import staff as staff_uc
from engine.config import Settings
from tests.console.support import (
    ORIGIN,
    add_member,
    client,
    page_form,
    post_form,
    runtime_of,
    sign_in,
)
from tests.hostile.routes import routes

pytestmark = pytest.mark.anyio

# No "/": a campaign name may not hold one (it could never be addressed again).
EVIL = '"><img src=x onerror=alert(1)><script>alert(2)'
RAW = ("<script>alert", "<img src=x")


async def test_no_console_route_answers_data_without_a_session(app: FastAPI) -> None:
    found = [r for r in routes(app) if r.path.startswith("/admin/") and "/static" not in r.path]
    assert len(found) > 40  # the walk found the console's routes
    async with client(app) as http:
        for route in found:
            if route.path == "/admin/login":
                continue
            answer = await http.request(route.method, route.concrete())
            where = f"{route.method} {route.path}"
            if route.method == "GET" and not route.path.endswith(".json"):
                assert answer.status_code == 303, where
                assert answer.headers["location"].startswith("/admin/login?next=%2F"), where
            else:
                assert answer.status_code == 401, where
                assert "application/json" in answer.headers["content-type"] or (
                    "text/html" in answer.headers["content-type"]
                ), where
            assert "content-security-policy" in answer.headers, where


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "https:evil.example",
    ],
)
async def test_login_never_sends_anyone_off_the_console(app: FastAPI, target: str) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        page = await http.get("/admin/login", params={"next": target})
        found = page_form(page.text, "/admin/login")
        done = await post_form(
            http, found.action, found.data(email=member.email, password=member.password, code="")
        )
        assert done.status_code == 303
        location = done.headers["location"]
        assert location.startswith("/admin/")
        assert not location.startswith("//") and "\\" not in location
        assert "evil.example" not in location


async def test_a_host_header_never_reaches_a_location(app: FastAPI) -> None:
    async with client(app) as http:
        for path in ("/admin", "/admin/campaigns"):
            answer = await http.get(
                path, headers={"host": "testserver", "x-forwarded-host": "evil.example"}
            )
            assert answer.status_code in (303, 307, 308)
            assert answer.headers["location"].startswith("/admin")
        # A Host we do not serve is refused outright, not echoed into a redirect.
        answer = await http.get("/admin/campaigns", headers={"host": "evil.example"})
        assert "evil.example" not in answer.headers.get("location", "")


async def test_hostile_names_are_text_on_every_page(app: FastAPI) -> None:
    rt = runtime_of(app)
    admin = add_member(app, "admin")
    staff_uc.create_token(rt, str(admin.id), EVIL, ["read"])
    campaigns.create(rt, campaigns.NewCampaign(name=EVIL, template="autumn-2026"))
    async with client(app) as http:
        assert (await sign_in(http, admin)).status_code == 303
        for path in ("/admin/", "/admin/campaigns", "/admin/tokens", "/admin/audit"):
            page = await http.get(path)
            assert page.status_code == 200, path
            if path != "/admin/":  # the dashboard names no campaign or token
                assert "&lt;script&gt;alert(2)" in page.text, path
            for raw in RAW:
                assert raw not in page.text, (path, raw)
        export = await http.get("/admin/audit/export.jsonl")
        assert export.headers["content-type"].startswith("application/x-ndjson")
        assert export.headers["x-content-type-options"] == "nosniff"


async def test_forged_console_posts_are_refused(app: FastAPI) -> None:
    admin = add_member(app, "admin")
    async with client(app, "203.0.113.8") as mine, client(app, "203.0.113.9") as theirs:
        await sign_in(mine, admin)
        await sign_in(theirs, admin)
        page = await mine.get("/admin/tokens")
        found = page_form(page.text, "/admin/tokens")
        data = found.data(name="forged", scopes="read", staff=str(admin.id))
        other = page_form((await theirs.get("/admin/tokens")).text, "/admin/tokens")
        forged = [
            await post_form(mine, found.action, data, origin=None),
            await post_form(mine, found.action, data, origin="null"),
            await post_form(mine, found.action, data, origin="https://evil.example"),
            await mine.post(found.action, data=data, headers={"referer": "https://evil.example/"}),
            await mine.post(
                found.action, data=data, headers={"referer": "https://testserver@evil.example/"}
            ),
            await mine.post(
                found.action,
                content=urlencode(data, doseq=True),
                headers={"content-type": "text/plain", "origin": ORIGIN},
            ),
            await post_form(mine, found.action, {**data, "csrf": "x"}),
            await post_form(mine, found.action, {**data, "csrf": str(other.data()["csrf"])}),
        ]
        assert [r.status_code for r in forged] == [403] * len(forged)
        listed = await mine.get("/admin/tokens")
        assert ">forged<" not in listed.text
        # The same form, ours, works: the refusals above were about the forgery.
        made = await post_form(mine, found.action, data)
        assert made.status_code == 200 and "forged" in made.text


@pytest.mark.parametrize(
    "path",
    [
        "/admin/templates/autumn-2026/hero/evil",
        "/admin/templates/autumn-2026/%2e%2e/standard",
        "/admin/templates/autumn-2026/linkdir/t",
        "/admin/templates/autumn-2026/hero/standard?locale=../../x",
        "/admin/templates/autumn-2026/hero/standard?part=../x",
        "/admin/templates/autumn-2026/hero/st%00andard",
        "/admin/templates/autumn-2026/hero/%EF%BC%8E%EF%BC%8E",
        "/admin/templates/autumn-2026/hero/a%5Cb",
        "/admin/templates/autumn-2026/hero/..%2F..%2F..%2F..%2Fsecret",
        "/admin/templates/..%2F..%2F/hero/standard",
    ],
)
async def test_the_template_editor_stays_in_its_folder(
    app: FastAPI, settings: Settings, tmp_path: Path, path: str
) -> None:
    secret = tmp_path / "secret.html.j2"
    secret.write_text("TOPSECRET-OUTSIDE")
    blocks = settings.templates_dir / "campaigns" / "autumn-2026" / "blocks"
    os.symlink(secret, blocks / "hero" / "evil.html.j2")
    os.symlink(tmp_path, blocks / "linkdir")
    (tmp_path / "t.html.j2").write_text("TOPSECRET-OUTSIDE")
    admin = add_member(app, "admin")
    async with client(app) as http:
        await sign_in(http, admin)
        answer = await http.get(path)
        assert answer.status_code in (400, 404)
        assert "TOPSECRET" not in answer.text
        assert "Traceback" not in answer.text


async def test_odd_upload_names_are_shown_as_text_without_folders(app: FastAPI) -> None:
    admin = add_member(app, "admin")
    async with client(app) as http:
        await sign_in(http, admin)
        shown = []
        for name in ("../../etc/passwd.csv", "a\x00b.csv", "<script>alert(1)</script>.csv"):
            found = page_form((await http.get("/admin/imports")).text, "/admin/imports")
            fields = found.data()
            fields.pop("file", None)
            answer = await http.post(
                found.action,
                data=fields,
                files={"file": (name, b"email\nsomeone@example.org\n", "text/csv")},
                headers={"origin": ORIGIN},
            )
            assert answer.status_code == 303
            page = await http.get(answer.headers["location"])
            assert page.status_code == 200
            for raw in RAW:
                assert raw not in page.text
            shown.append(page.text)
        assert "passwd.csv" in shown[0] and "../" not in shown[0].split("<main", 1)[1]
        assert "\x00" not in shown[1]
        index = await http.get("/admin/imports")
        assert "<script>alert(1)" not in index.text


async def test_empty_and_junk_uploads_get_an_answer(app: FastAPI) -> None:
    admin = add_member(app, "admin")
    async with client(app) as http:
        await sign_in(http, admin)
        for content in (b"", os.urandom(4096)):
            found = page_form((await http.get("/admin/imports")).text, "/admin/imports")
            fields = found.data()
            fields.pop("file", None)
            answer = await http.post(
                found.action,
                data=fields,
                files={"file": ("x.csv", content, "text/csv")},
                headers={"origin": ORIGIN},
            )
            assert answer.status_code == 303
            page = await http.get(answer.headers["location"])
            assert page.status_code == 200 and "Traceback" not in page.text


async def test_x_forwarded_for_does_not_reset_the_login_limit(app: FastAPI) -> None:
    async with client(app, client_ip="198.51.100.9") as http:
        codes = []
        for i in range(14):
            found = page_form((await http.get("/admin/login")).text, "/admin/login")
            answer = await http.post(
                found.action,
                data=found.data(email="nobody@staff.example", password="wrong wrong wrong"),
                headers={
                    "origin": ORIGIN,
                    "x-forwarded-for": f"10.0.0.{i}",
                    "x-real-ip": f"10.0.0.{i}",
                    "forwarded": f"for=10.0.0.{i}",
                },
            )
            codes.append(answer.status_code)
        assert codes[:10] == [401] * 10
        assert codes[10:] == [429] * 4


async def test_dead_sessions_stay_dead(app: FastAPI) -> None:
    rt = runtime_of(app)
    admin = add_member(app, "admin")
    viewer = add_member(app, "viewer")
    async with client(app, "203.0.113.20") as one, client(app, "203.0.113.21") as two:
        await sign_in(one, admin)
        await sign_in(two, admin)
        old = one.cookies.get("tact_session")
        assert old
        out = page_form((await one.get("/admin/")).text, "/admin/logout")
        assert (await post_form(one, out.action, out.data())).status_code == 303
        assert (await two.get("/admin/")).status_code == 200  # the other session lives on
    async with client(app, "203.0.113.22") as replay:
        for path in ("/admin", "/"):
            replay.cookies.clear()
            replay.cookies.set("tact_session", old, domain="testserver", path=path)
            answer = await replay.get("/admin/")
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/admin/login")
        replay.cookies.clear()
        replay.cookies.set("tact_session", "A" * 10240, domain="testserver", path="/admin")
        assert (await replay.get("/admin/")).status_code == 303
    async with client(app, "203.0.113.23") as live:
        await sign_in(live, viewer)
        assert (await live.get("/admin/")).status_code == 200
        staff_uc.disable(rt, str(viewer.id))
        answer = await live.get("/admin/")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/login")


async def test_a_role_taken_away_counts_at_once(app: FastAPI) -> None:
    rt = runtime_of(app)
    member = add_member(app, "admin")
    async with client(app) as http:
        await sign_in(http, member)
        assert (await http.get("/admin/staff")).status_code == 200
        staff_uc.set_role(rt, str(member.id), "viewer")
        assert (await http.get("/admin/staff")).status_code == 403


async def test_every_console_refusal_carries_the_console_csp(app: FastAPI) -> None:
    member = add_member(app, "viewer")
    async with client(app, "203.0.113.30") as http:
        await sign_in(http, member)
        answers = [
            await http.get("/admin/no-such-page"),  # 404
            await http.request("PUT", "/admin/campaigns"),  # 405
            await http.post("/admin/campaigns"),  # 403: no csrf
            await http.get("/admin/staff"),  # 403: a viewer
            await http.get("/admin/templates/autumn-2026/%2e%2e/standard"),  # 400
        ]
    async with client(app, "203.0.113.31") as http:
        for _ in range(11):
            found = page_form((await http.get("/admin/login")).text, "/admin/login")
            last = await post_form(http, found.action, found.data(email="x@y.example"))
        answers.append(last)  # 429
    assert [a.status_code for a in answers] == [404, 405, 403, 403, 400, 429]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
