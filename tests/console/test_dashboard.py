"""The dashboard over HTTP, on both databases: the figures of a real send, for every role."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI

from engine.app import campaigns, contacts
from engine.app.campaigns import NewCampaign
from tests.console.support import add_member, client, runtime_of, sign_in
from tests.helpers import people, write_jsonl

pytestmark = pytest.mark.anyio

N = 5


def cell_after(html: str, header: str) -> str:
    """The number in the ``num`` cell of the table row headed ``header``."""
    match = re.search(
        rf"<th scope=\"row\">{re.escape(header)}</th><td class=\"num\">(\d+)</td>", html
    )
    assert match, f"no row {header!r}"
    return match.group(1)


async def test_dashboard_shows_what_was_sent(app: FastAPI, tmp_path: Path) -> None:
    rt = runtime_of(app)
    rows = [{**p, "topics": ["offers"]} for p in people(N)]
    assert contacts.import_contacts(rt, write_jsonl(tmp_path / "p.jsonl", rows)).inserted == N
    campaigns.create(rt, NewCampaign(name="autumn", template="autumn-2026"))
    assert campaigns.send(rt, "autumn").this_run == {"sent": N}
    campaigns.create(rt, NewCampaign(name="later", template="autumn-2026"))
    for role in ("viewer", "admin"):
        member = add_member(app, role)
        async with client(app) as http:
            await sign_in(http, member)
            page = await http.get("/admin/")
            assert page.status_code == 200
            html = page.text
            assert "<h1>Dashboard</h1>" in html
            # Campaigns by status: one sent, one draft, linked to the filtered list.
            assert re.search(r'status=sent">1</a>', html), html
            assert re.search(r'status=draft">1</a>', html)
            assert f'<p class="stat">{N}</p><p class="stat-label">messages sent' in html
            # The chart's data and its table hold the same figures.
            assert 'data-chart="chart-sent-by-day"' in html
            assert '<script type="application/json" id="chart-sent-by-day">' in html
            days = re.findall(r'<th scope="row">(\d{4}-\d\d-\d\d)</th><td class="num">(\d+)', html)
            assert len(days) == 30 and sum(int(n) for _, n in days) == N
            assert cell_after(html, "standard") == str(N)
            for row in rows:
                assert str(row["email"]) not in html
    async with client(app) as http:
        zh = await http.get("/admin/?lang=zh-Hans")
        assert zh.status_code == 303  # signed out: to the login page first
