"""axe-core (the npm package, installed by support/npm.py) on every page of the console, in
English and in Simplified Chinese: no violation of impact serious or critical.

The console's CSP forbids injected scripts, so the pages are opened in a browser context
that bypasses the CSP for this run only (``bypass_csp=True``); everything else is the
real app served by uvicorn, with real data: generated customers and a segment build, a
campaign sent by the embedded scheduler (for its report), a draft (for the form, the
preview, the estimate and the confirmation), an import, a contact revealed, a template
check that failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from engine.app import campaigns, contacts, imports, scheduling, segments
from engine.app.campaigns import NewCampaign
from engine.synthetic.generator import generate_customers
from support.npm import axe_core
from tests.console.support import Member, runtime_of
from tests.console2.conftest import Team
from tests.helpers import write_jsonl
from tests.web.support import Someone

CUSTOMERS = 240
LANGUAGES = ("en", "zh-Hans")
BAD = frozenset({"serious", "critical"})


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: the pages are the same on both databases."""
    return f"sqlite:///{tmp_path / 'var' / 'tact.db'}"


@pytest.fixture(scope="module")
def axe_script() -> Path:
    return axe_core()


@pytest.fixture
def data(app: FastAPI, tmp_path: Path, people: list[Someone]) -> dict[str, Any]:
    """Something on every page: customers and a build, a sent and a draft campaign, an import."""
    rt = runtime_of(app)
    source = write_jsonl(tmp_path / "customers.jsonl", generate_customers(CUSTOMERS, seed=7))
    assert contacts.import_contacts(rt, source).inserted == CUSTOMERS
    segments.build(
        rt, segments.BuildOptions(seed=3, k_max=6, as_of=datetime(2026, 11, 1, tzinfo=UTC))
    )
    when = (datetime.now(UTC) + timedelta(minutes=10)).replace(second=0, microsecond=0)
    campaigns.create(rt, NewCampaign(name="winter", template="autumn-2026", send_at=when))
    campaigns.schedule(rt, "winter")
    scheduling.run_due(rt, when + timedelta(minutes=1))
    scheduling.run_due(rt, when + timedelta(minutes=2))
    assert campaigns.get_summary(rt, "winter").status == "sent"
    campaigns.create(rt, NewCampaign(name="spring", template="autumn-2026", send_at=when))
    rows = generate_customers(30, seed=99, bad_rows=2)
    upload = write_jsonl(tmp_path / "more.jsonl", rows)
    with upload.open("rb") as fh:
        started = imports.start_import(rt, fh, filename="more.jsonl")
    assert imports.wait_import(rt, started.id, timeout=60).status == "finished"
    return {"contact": str(people[0].contact_id), "import": started.id}


def pages(data: dict[str, Any]) -> list[str]:
    contact = data["contact"]
    editor = "/admin/templates/autumn-2026/hero/standard"
    return [
        "/admin/",
        "/admin/campaigns",
        "/admin/campaigns/new",
        "/admin/campaigns/spring",
        "/admin/campaigns/spring/check",
        "/admin/campaigns/spring/preview?segment=outdoor-regulars",
        "/admin/campaigns/spring/estimate",
        "/admin/campaigns/spring/confirm/schedule",
        "/admin/campaigns/winter/progress",
        "/admin/campaigns/winter/report",
        "/admin/contacts",
        f"/admin/contacts/{contact}",
        f"/admin/contacts/{contact}/export",
        f"/admin/contacts/{contact}/erase",
        "/admin/segments",
        "/admin/imports",
        f"/admin/imports/{data['import']}",
        "/admin/templates",
        editor,
        editor + "?part=text&locale=zh-Hans",
        "/admin/staff",
        "/admin/tokens",
        "/admin/audit?action=campaign.",
        "/admin/no-such-page",
    ]


def violations(page: Page, axe: Path) -> list[dict[str, Any]]:
    page.wait_for_load_state("networkidle")
    page.add_script_tag(path=str(axe))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v.get("impact") in BAD]


def describe(where: str, found: list[dict[str, Any]]) -> str:
    lines = []
    for v in found:
        targets = [n.get("target") for n in v.get("nodes", [])][:5]
        lines.append(f"{where}: [{v['impact']}] {v['id']}: {v['help']} at {json.dumps(targets)}")
    return "\n".join(lines)


@pytest.fixture
def axe_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Page, base: str, member: Member) -> None:
    page.locator("#f-email").fill(member.email)
    page.locator("#f-password").fill(member.password)
    page.locator("form button[type=submit]").click()
    expect(page.locator("h1")).not_to_have_text("Sign in")


def test_no_serious_or_critical_violation_on_any_console_page(
    axe_page: Page,
    served: str,
    team: Team,
    data: dict[str, Any],
    axe_script: Path,
) -> None:
    page = axe_page
    problems: list[str] = []
    checked: list[str] = []
    for lang in LANGUAGES:
        # The login page, signed out, in this language.
        page.context.clear_cookies()
        page.goto(f"{served}/admin/login?lang={lang}")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        problems.append(describe(f"{lang} /admin/login", violations(page, axe_script)))
        checked.append(f"{lang} /admin/login")
        sign_in(page, served, team.admin)
        for path in pages(data):
            response = page.goto(f"{served}{path}")
            assert response is not None
            expected = 404 if "no-such-page" in path else 200
            assert response.status == expected, (lang, path, response.status)
            expect(page.locator("html")).to_have_attribute("lang", lang)
            problems.append(describe(f"{lang} {path}", violations(page, axe_script)))
            checked.append(f"{lang} {path}")

        # Pages that answer a POST: a revealed contact, a template check that failed.
        page.goto(f"{served}/admin/contacts/{data['contact']}")
        page.locator("form[action$='/reveal'] button").click()
        expect(page.locator("#h-revealed")).to_be_visible()
        problems.append(describe(f"{lang} reveal", violations(page, axe_script)))
        page.goto(f"{served}/admin/templates/autumn-2026/closing/standard")
        page.locator("#f-source").fill("{% if first_name %}<p>Hi</p>\n")
        page.locator("button[value=check]").click()
        expect(page.locator("#findings .sev-error").first).to_be_visible()
        problems.append(describe(f"{lang} template check", violations(page, axe_script)))
        checked += [f"{lang} reveal", f"{lang} template check"]
    # The check itself works here: a page with an image without alt text is caught.
    page.set_content('<!doctype html><html lang="en"><title>t</title><img src="data:,"></html>')
    assert "image-alt" in {v["id"] for v in violations(page, axe_script)}
    found = "\n".join(p for p in problems if p)
    print("\n".join(checked))
    assert not found, found
    assert len(checked) == len(LANGUAGES) * (len(pages(data)) + 3)
