"""The campaign pages' edges over HTTP, on both databases: CSRF on the create form, paging,
names that need quoting, local-hour campaigns, and every page in Simplified Chinese."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI

from engine.app import campaigns, contacts
from engine.app.campaigns import NewCampaign
from tests.console.support import (
    add_member,
    client,
    page_form,
    post_form,
    runtime_of,
    sign_in,
    submit,
)
from tests.helpers import people, write_jsonl

pytestmark = pytest.mark.anyio


def some_people(app: FastAPI, tmp_path: Path, n: int = 4) -> None:
    rows = [{**p, "topics": ["offers"]} for p in people(n)]
    assert (
        contacts.import_contacts(runtime_of(app), write_jsonl(tmp_path / "p.jsonl", rows)).inserted
        == n
    )


async def test_the_create_form_refuses_a_forged_post(app: FastAPI) -> None:
    editor = add_member(app, "editor")
    async with client(app) as http:
        await sign_in(http, editor)
        page = await http.get("/admin/campaigns/new")
        form = page_form(page.text, "/admin/campaigns")
        data = form.data(name="forged", template="autumn-2026", timing="at", priority="0")
        no_field = {k: v for k, v in data.items() if k != "csrf"}
        assert (await post_form(http, form.action, no_field)).status_code == 403
        assert (
            await post_form(http, form.action, data, origin="https://evil.example")
        ).status_code == 403
        assert (await post_form(http, form.action, data, origin=None)).status_code == 403
        wrong_purpose = page_form((await http.get("/admin/")).text, "/admin/logout").fields["csrf"][
            0
        ]
        assert (
            await post_form(http, form.action, {**data, "csrf": wrong_purpose})
        ).status_code == 403
        assert campaigns.list_campaigns(runtime_of(app)) == []
        ok = await post_form(http, form.action, data)
        assert ok.status_code == 303
        assert [c.name for c in campaigns.list_campaigns(runtime_of(app))] == ["forged"]


async def test_form_errors_are_shown_on_their_fields(app: FastAPI) -> None:
    editor = add_member(app, "editor")
    async with client(app) as http:
        await sign_in(http, editor)
        bad = await submit(
            http,
            "/admin/campaigns/new",
            "/admin/campaigns",
            name="",
            template="autumn-2026",
            timing="at",
            send_at="tomorrow",
            priority="high",
        )
        assert bad.status_code == 422
        assert 'id="f-name-error"' in bad.text and 'id="f-send_at-error"' in bad.text
        assert 'id="f-priority-error"' in bad.text
        assert 'aria-invalid="true"' in bad.text


async def test_a_local_hour_campaign_and_a_name_that_needs_quoting(
    app: FastAPI, tmp_path: Path
) -> None:
    some_people(app, tmp_path)
    editor = add_member(app, "editor")
    async with client(app) as http:
        await sign_in(http, editor)
        made = await submit(
            http,
            "/admin/campaigns/new",
            "/admin/campaigns",
            name="winter sale & more",
            template="autumn-2026",
            timing="local",
            local_hour="09:30",
            send_date="2027-01-15",
            priority="2",
        )
        assert made.status_code == 303, made.text
        assert made.headers["location"].startswith("/admin/campaigns/winter%20sale%20%26%20more?")
        page = await http.get(made.headers["location"])
        assert "09:30 in each recipient" in page.text and "2027-01-15" in page.text
        summary = campaigns.get_summary(runtime_of(app), "winter sale & more")
        assert (summary.local_hour, summary.priority) == ("09:30", 2)
        listing = await http.get("/admin/campaigns")
        assert 'href="/admin/campaigns/winter%20sale%20%26%20more"' in listing.text


async def test_the_list_pages_by_cursor_and_filters_by_status(app: FastAPI) -> None:
    rt = runtime_of(app)
    for i in range(55):
        campaigns.create(rt, NewCampaign(name=f"c{i:02d}", template="autumn-2026"))
    campaigns.cancel(rt, "c00")
    viewer = add_member(app, "viewer")
    async with client(app) as http:
        await sign_in(http, viewer)
        first = await http.get("/admin/campaigns")
        names = re.findall(r'<th scope="row"><a href="/admin/campaigns/(c\d\d)">', first.text)
        assert len(names) == 50 and names[0] == "c54"
        more = re.search(r'href="(/admin/campaigns\?after=\d+)"', first.text)
        assert more
        second = await http.get(more.group(1))
        rest = re.findall(r'<th scope="row"><a href="/admin/campaigns/(c\d\d)">', second.text)
        assert rest == [f"c{i:02d}" for i in range(4, -1, -1)]
        cancelled = await http.get("/admin/campaigns?status=cancelled")
        assert re.findall(
            r'<th scope="row"><a href="/admin/campaigns/(c\d\d)">', cancelled.text
        ) == ["c00"]
        odd = await http.get("/admin/campaigns?status=nonsense")
        assert odd.status_code == 200


async def test_every_campaign_page_in_chinese(app: FastAPI, tmp_path: Path) -> None:
    some_people(app, tmp_path)
    rt = runtime_of(app)
    campaigns.create(rt, NewCampaign(name="autumn", template="autumn-2026"))
    campaigns.send(rt, "autumn")
    campaigns.create(rt, NewCampaign(name="next", template="autumn-2026"))
    sender = add_member(app, "sender")
    async with client(app) as http:
        await sign_in(http, sender)
        assert (await http.get("/admin/?lang=zh-Hans")).status_code == 200
        pages = [
            "/admin/",
            "/admin/campaigns",
            "/admin/campaigns/new",
            "/admin/campaigns/next",
            "/admin/campaigns/next/check",
            "/admin/campaigns/next/preview",
            "/admin/campaigns/next/estimate",
            "/admin/campaigns/next/confirm/schedule",
            "/admin/campaigns/next/progress",
            "/admin/campaigns/autumn/report",
            "/admin/campaigns/autumn/progress",
        ]
        for path in pages:
            page = await http.get(path)
            assert page.status_code == 200, (path, page.text[-2000:])
            assert '<html lang="zh-Hans">' in page.text, path
            assert re.search(r"[\u4e00-\u9fff]", page.text), path
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert " style=" not in page.text and "<style" not in page.text, path
            assert (
                re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", page.text) is None
            ), path
        report = await http.get("/admin/campaigns/autumn/report")
        assert "按细分群体" in report.text


async def test_edit_a_draft_time_segments_and_priority(app: FastAPI, tmp_path: Path) -> None:
    some_people(app, tmp_path)
    rt = runtime_of(app)
    campaigns.create(rt, NewCampaign(name="draft", template="autumn-2026", priority=1))
    editor = add_member(app, "editor")
    viewer = add_member(app, "viewer")
    async with client(app) as http:
        await sign_in(http, viewer)
        assert "/admin/campaigns/draft/edit" not in (await http.get("/admin/campaigns/draft")).text
        assert (await http.get("/admin/campaigns/draft/edit")).status_code == 403
    async with client(app) as http:
        await sign_in(http, editor)
        show = await http.get("/admin/campaigns/draft")
        assert "/admin/campaigns/draft/edit" in show.text
        past = await submit(
            http,
            "/admin/campaigns/draft/edit",
            "/admin/campaigns/draft/edit",
            timing="at",
            send_at="2020-01-01T09:00",
            priority="3",
        )
        assert past.status_code == 422  # the check refuses a time in the past
        assert 'class="sev-error"' in past.text
        saved = await submit(
            http,
            "/admin/campaigns/draft/edit",
            "/admin/campaigns/draft/edit",
            timing="local",
            local_hour="08:15",
            send_date="2027-02-01",
            priority="3",
            segments=["outdoor-regulars"],
        )
        # No segment build yet: a segment would reach nobody, and the check says so.
        assert saved.status_code == 422 and "no segment build yet" in saved.text
        saved = await submit(
            http,
            "/admin/campaigns/draft/edit",
            "/admin/campaigns/draft/edit",
            timing="local",
            local_hour="08:15",
            send_date="2027-02-01",
            priority="3",
        )
        assert saved.status_code == 303, saved.text
        summary = campaigns.get_summary(rt, "draft")
        assert (summary.local_hour, summary.priority) == ("08:15", 3)
        assert summary.send_date is not None and summary.send_date.isoformat() == "2027-02-01"
        form = await http.get("/admin/campaigns/draft/edit")
        assert 'value="08:15"' in form.text and 'value="2027-02-01"' in form.text


async def test_clone_then_delete_the_copy(app: FastAPI, tmp_path: Path) -> None:
    rt = runtime_of(app)
    some_people(app, tmp_path)
    campaigns.create(rt, NewCampaign(name="autumn", template="autumn-2026", priority=4))
    campaigns.send(rt, "autumn")
    editor = add_member(app, "editor")
    viewer = add_member(app, "viewer")
    async with client(app) as http:
        await sign_in(http, viewer)
        page = await http.get("/admin/campaigns/autumn")
        assert "/clone" not in page.text
    async with client(app) as http:
        await sign_in(http, editor)
        made = await submit(
            http,
            "/admin/campaigns/autumn",
            "/admin/campaigns/autumn/clone",
            new_name="autumn-again",
        )
        assert made.status_code == 303
        assert made.headers["location"].startswith("/admin/campaigns/autumn-again?notice=")
        copy = campaigns.get_summary(rt, "autumn-again")
        assert (copy.status, copy.priority, copy.template) == ("draft", 4, "autumn-2026")
        taken = await submit(
            http,
            "/admin/campaigns/autumn",
            "/admin/campaigns/autumn/clone",
            new_name="autumn-again",
        )
        assert taken.status_code == 400  # CampaignExists, said on the error page
        sent = await http.get("/admin/campaigns/autumn")
        assert "/confirm/delete" not in sent.text  # only a draft can be deleted
        gone = await submit(
            http,
            "/admin/campaigns/autumn-again/confirm/delete",
            "/admin/campaigns/autumn-again/delete",
        )
        assert gone.status_code == 303 and gone.headers["location"].startswith("/admin/campaigns?")
        assert [c.name for c in campaigns.list_campaigns(rt)] == ["autumn"]
