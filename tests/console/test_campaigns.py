"""The campaign pages over HTTP, on both databases: the marketer's path from the create form
to the report, and what each role may see and do.

The scheduler sends (``engine.app.scheduling.run_due``, driven by the test as ``tact run``
would); the console only schedules. The test send arrives in the Maildir outbox.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from engine.app import audit as audit_uc
from engine.app import campaigns, contacts, scheduling
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
from tests.web.support import outbox

pytestmark = pytest.mark.anyio

N = 6
BLOCK = Path("campaigns") / "autumn-2026" / "blocks" / "closing" / "standard.html.j2"


def imported(app: FastAPI, tmp_path: Path) -> list[dict[str, Any]]:
    rows = [{**p, "topics": ["offers"]} for p in people(N)]
    for row in rows[-2:]:
        row["locale"] = "zh-CN"
    rt = runtime_of(app)
    assert contacts.import_contacts(rt, write_jsonl(tmp_path / "p.jsonl", rows)).inserted == N
    return rows


def fields_of(when: datetime) -> dict[str, str | list[str]]:
    return {
        "name": "winter",
        "template": "autumn-2026",
        "topic": "",
        "timing": "at",
        "send_at": when.strftime("%Y-%m-%dT%H:%M"),
        "priority": "0",
    }


async def test_create_with_lint_inline_then_preview_estimate_test_schedule_send_report(
    app: FastAPI, tmp_path: Path
) -> None:
    rt = runtime_of(app)
    rows = imported(app, tmp_path)
    block = rt.settings.templates_dir / BLOCK
    good = block.read_text("utf-8")
    block.write_text("{% if first_name %}<p>Hi {{ first_name }}</p>\n" + good, "utf-8")
    sender = add_member(app, "sender")
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    async with client(app) as http:
        await sign_in(http, sender)
        listing = await http.get("/admin/campaigns")
        assert listing.status_code == 200 and "New campaign" in listing.text

        # 1. The lint error is shown inline, naming the file; nothing is created.
        refused = await submit(http, "/admin/campaigns/new", "/admin/campaigns", **fields_of(when))
        assert refused.status_code == 422, refused.text
        assert "closing/standard.html.j2" in refused.text
        assert 'class="sev-error"' in refused.text
        assert 'value="winter"' in refused.text  # the form keeps what was typed
        assert campaigns.list_campaigns(rt) == []

        # 2. Fixed, it is created; the page of the campaign follows.
        block.write_text(good, "utf-8")
        created = await submit(http, "/admin/campaigns/new", "/admin/campaigns", **fields_of(when))
        assert created.status_code == 303, created.text
        assert created.headers["location"].startswith("/admin/campaigns/winter?notice=")
        page = await http.get(created.headers["location"])
        assert "created as a draft" in page.text
        assert campaigns.get_summary(rt, "winter").status == "draft"

        # 3. Preview: a segment's version beside the standard one, and in Chinese.
        seen = await http.get("/admin/campaigns/winter/preview?segment=outdoor-regulars")
        assert seen.status_code == 200, seen.text
        frames = re.findall(r'<iframe class="preview-frame" src="([^"]+)"', seen.text)
        assert len(frames) == 2
        assert "frame-src 'self'" in seen.headers["content-security-policy"]
        frame = await http.get(frames[0].replace("&amp;", "&"))
        assert frame.status_code == 200
        assert "sandbox" in frame.headers["content-security-policy"]
        assert "script-src" not in frame.headers["content-security-policy"]
        assert frame.headers["x-frame-options"] == "SAMEORIGIN"
        assert "<html" in frame.text.lower()
        zh = await http.get("/admin/campaigns/winter/preview?locale=zh-Hans")
        assert "秋季系列上新了" in zh.text  # the Chinese standard subject

        # 4. The estimate: everyone subscribed to offers.
        est = await http.get("/admin/campaigns/winter/estimate")
        assert est.status_code == 200
        assert f'<p class="stat" id="est-recipients">{N}</p>' in est.text

        # 5. A test send to yourself arrives in the outbox, marked; no customer gets one.
        tested = await submit(http, "/admin/campaigns/winter", "/admin/campaigns/winter/test")
        assert tested.status_code == 200, tested.text
        assert 'id="test-result"' in tested.text and "Sent 1 test copy" in tested.text
        [copy] = outbox(rt.settings)
        assert copy["To"] == sender.email
        assert str(copy["Subject"]).startswith("[TEST]")
        assert sender.email not in tested.text

        # 6. Schedule, behind its confirmation step.
        show = await http.get("/admin/campaigns/winter")
        assert "/admin/campaigns/winter/confirm/schedule" in show.text
        confirm = await http.get("/admin/campaigns/winter/confirm/schedule")
        form = page_form(confirm.text, "/admin/campaigns/winter/schedule")
        unconfirmed = {k: v for k, v in form.data().items() if k != "confirm"}
        asked = await post_form(http, form.action, unconfirmed)
        assert asked.status_code == 303 and "/confirm/schedule" in asked.headers["location"]
        assert campaigns.get_summary(rt, "winter").status == "draft"
        done = await post_form(http, form.action, form.data())
        assert done.status_code == 303
        assert done.headers["location"].startswith("/admin/campaigns/winter/progress")
        assert campaigns.get_summary(rt, "winter").status == "scheduled"
        waiting = await http.get("/admin/campaigns/winter/progress")
        assert '<meta http-equiv="refresh"' in waiting.text
        assert (await http.get("/admin/campaigns/winter/progress.json")).json()["done"] is False

        # 7. The scheduler launches and sends it at its time (as `tact run` does).
        scheduling.run_due(rt, when + timedelta(minutes=1))
        scheduling.run_due(rt, when + timedelta(minutes=2))
        data = (await http.get("/admin/campaigns/winter/progress.json")).json()
        assert data["done"] is True and data["sent"] == N, data
        finished = await http.get("/admin/campaigns/winter/progress")
        assert '<meta http-equiv="refresh"' not in finished.text

        # 8. The report: the figures, each chart with its table.
        report = await http.get("/admin/campaigns/winter/report")
        assert report.status_code == 200
        assert f'<p class="stat" id="report-sent">{N}</p>' in report.text
        for chart in ("chart-over-time", "chart-segments", "chart-locales"):
            assert f'data-chart="{chart}"' in report.text
            assert f'<script type="application/json" id="{chart}">' in report.text
        assert 'id="table-over-time"' in report.text and 'id="table-locales"' in report.text
        for row in rows:
            assert str(row["email"]) not in report.text
    actions = [e.action for e in audit_uc.entries(rt, limit=100).items]
    assert "campaign.created" in actions and "campaign.scheduled" in actions
    actors = {
        e.actor for e in audit_uc.entries(rt, limit=100).items if e.action.startswith("campaign.")
    }
    assert f"staff:{sender.id}" in actors


async def test_a_viewer_sees_no_launch_button_and_a_forged_post_is_refused(
    app: FastAPI, tmp_path: Path
) -> None:
    rt = runtime_of(app)
    imported(app, tmp_path)
    campaigns.create(rt, NewCampaign(name="spring", template="autumn-2026"))
    viewer = add_member(app, "viewer")
    sender = add_member(app, "sender")
    async with client(app) as http:
        await sign_in(http, sender)
        allowed = await http.get("/admin/campaigns/spring")
        assert (
            "/confirm/schedule" in allowed.text and "/admin/campaigns/spring/test" in allowed.text
        )
        sender_form = page_form(allowed.text, "/admin/campaigns/spring/test")
    async with client(app) as http:
        await sign_in(http, viewer)
        page = await http.get("/admin/campaigns/spring")
        assert page.status_code == 200
        assert "/confirm/" not in page.text and "/test" not in page.text
        listing = await http.get("/admin/campaigns")
        assert "New campaign" not in listing.text
        assert (await http.get("/admin/campaigns/new")).status_code == 403
        assert (await http.get("/admin/campaigns/spring/confirm/schedule")).status_code == 403
        # A forged POST with the viewer's own (valid) CSRF field for the purpose: still 403.
        home = await http.get("/admin/")
        logout = page_form(home.text, "/admin/logout")
        for move in ("schedule", "pause", "cancel"):
            forged = await post_form(
                http,
                f"/admin/campaigns/spring/{move}",
                {"csrf": logout.fields["csrf"][0], "confirm": "yes"},
            )
            assert forged.status_code == 403, move
        stolen = await post_form(http, "/admin/campaigns/spring/test", sender_form.data())
        assert stolen.status_code == 403  # another session's field is not this one's
        # Reading is allowed: report, estimate, preview.
        assert (await http.get("/admin/campaigns/spring/estimate")).status_code == 200
        assert (await http.get("/admin/campaigns/spring/report")).status_code == 200
    assert campaigns.get_summary(rt, "spring").status == "draft"
    assert outbox(rt.settings) == []


async def test_pause_resume_cancel_need_confirmation_and_the_right_state(
    app: FastAPI, tmp_path: Path
) -> None:
    rt = runtime_of(app)
    imported(app, tmp_path)
    later = datetime.now(UTC) + timedelta(days=1)
    campaigns.create(rt, NewCampaign(name="held", template="autumn-2026", send_at=later))
    campaigns.schedule(rt, "held")
    sender = add_member(app, "sender")
    async with client(app) as http:
        await sign_in(http, sender)
        show = await http.get("/admin/campaigns/held")
        assert "/confirm/pause" in show.text and "/confirm/resume" not in show.text
        paused = await submit(
            http, "/admin/campaigns/held/confirm/pause", "/admin/campaigns/held/pause"
        )
        assert paused.status_code == 303
        assert campaigns.get_summary(rt, "held").status == "paused"
        resumed = await submit(
            http, "/admin/campaigns/held/confirm/resume", "/admin/campaigns/held/resume"
        )
        assert resumed.status_code == 303
        assert campaigns.get_summary(rt, "held").status == "scheduled"
        cancel = await http.get("/admin/campaigns/held/confirm/cancel")
        assert "cannot be undone" in cancel.text
        form = page_form(cancel.text, "/admin/campaigns/held/cancel")
        assert (await post_form(http, form.action, form.data())).status_code == 303
        assert campaigns.get_summary(rt, "held").status == "cancelled"
        again = await http.get("/admin/campaigns/held/confirm/resume")
        assert "cannot be done while the campaign is cancelled" in again.text
        assert (await http.get("/admin/campaigns/nope")).status_code == 404
        assert (await http.get("/admin/campaigns/held/confirm/explode")).status_code == 404
