"""The console in a real browser (Chromium via Playwright): the marketer's path, and a viewer.

Served by uvicorn from the real factory (``create_app(settings, only="admin")``) with
the session cookie ``Secure`` as in production: Chromium keeps Secure cookies on
``http://127.0.0.1`` (a potentially trustworthy origin), which the test relies on and
checks. The data is the demo's generator (realistic customers) and a real segment
build; the sending is the embedded scheduler, driven by the test as ``tact run``
would (the console itself never sends a campaign). Any console error or CSP
violation on a page fails the test.

With ``TACT_SCREENSHOTS=1`` the main test writes the README's screenshots into
``docs/screenshots/`` (dashboard, the create form with its lint findings, the
preview, the report); otherwise into the test's temporary directory.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, expect

from engine.app import audit as audit_uc
from engine.app import campaigns, contacts, scheduling, segments
from engine.app.campaigns import NewCampaign
from engine.config import PROJECT_ROOT
from engine.synthetic import generate_customers
from tests.console.support import Member, add_member, console_of, runtime_of
from tests.helpers import write_jsonl
from tests.web.support import outbox

#: Read when the module is collected: the suite's autouse fixture clears TACT_* variables.
SCREENSHOTS = os.environ.get("TACT_SCREENSHOTS") == "1"
CUSTOMERS = 240
BLOCK = Path("campaigns") / "autumn-2026" / "blocks" / "closing" / "standard.html.j2"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: both databases are covered by the HTTP-level tests."""
    return f"sqlite:///{tmp_path / 'var' / 'tact.db'}"


@pytest.fixture
def customers(app: FastAPI, tmp_path: Path) -> None:
    """The demo's synthetic customers, imported, and a real segment build over them."""
    rt = runtime_of(app)
    records = list(generate_customers(CUSTOMERS, seed=7))
    path = write_jsonl(tmp_path / "customers.jsonl", records)
    assert contacts.import_contacts(rt, path).inserted == CUSTOMERS
    report = segments.build(
        rt, segments.BuildOptions(seed=3, k_max=6, as_of=datetime(2026, 11, 1, tzinfo=UTC))
    )
    assert report.learned


#: Console messages that are not faults of the page: an HTTP status the test checks itself
#: (the 422 of a refused form), and the email's remote images in the preview (no network
#: in the test; the frame's own CSP allows https images).
EXPECTED = (
    "Failed to load resource: the server responded with a status of",
    "ERR_NAME_NOT_RESOLVED",
)


class Watch:
    """Console errors and CSP violations of every page of a context (none allowed)."""

    def __init__(self, context: BrowserContext) -> None:
        self.problems: list[str] = []
        context.on("page", self.attach)

    def attach(self, page: Page) -> None:
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"{page.url}: {msg.text}")
                if msg.type == "error" and not any(e in msg.text for e in EXPECTED)
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.problems.append(f"{page.url}: {exc}"))


def shots_dir(tmp_path: Path) -> Path:
    if SCREENSHOTS:
        target = PROJECT_ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


def sign_in(page: Page, base: str, member: Member) -> None:
    page.goto(f"{base}/admin/")
    expect(page).to_have_url(f"{base}/admin/login?next=%2F")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Email address").fill(member.email)
    page.get_by_label("Password").fill(member.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/admin/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")


def test_marketer_path_in_the_browser(
    browser: Browser, app: FastAPI, served: str, customers: None, tmp_path: Path
) -> None:
    rt = runtime_of(app)
    shots = shots_dir(tmp_path)
    block = rt.settings.templates_dir / BLOCK
    good = block.read_text("utf-8")
    block.write_text("{% if first_name %}<p>Hi {{ first_name }}</p>\n" + good, "utf-8")
    marketer = add_member(app, "sender")
    # Ten minutes ahead: the scheduler (driven below) sends then; the console's clock is
    # moved there for the dashboard, well within the session's idle timeout.
    when = (datetime.now(UTC) + timedelta(minutes=10)).replace(second=0, microsecond=0)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch(context)
    page = context.new_page()

    # Log in: a Secure, HttpOnly, Strict session cookie that Chromium keeps on 127.0.0.1.
    sign_in(page, served, marketer)
    [cookie] = [c for c in context.cookies() if c["name"] == "tact_session"]
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/admin" and cookie["expires"] == -1  # a browser-session cookie
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")

    # Create a campaign with a lint error: the finding is shown inline.
    page.get_by_role("link", name="Campaigns").first.click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name", exact=True).fill("winter")
    page.get_by_label("Template").select_option("autumn-2026")
    page.get_by_label("Topic").select_option("offers")
    page.get_by_label("Send at (UTC)").fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Create the campaign").click()
    expect(page.get_by_role("alert")).to_contain_text("The campaign was not created.")
    finding = page.locator(".findings .sev-error").first
    expect(finding).to_contain_text("closing/standard.html.j2")
    page.screenshot(path=shots / "console-campaign-lint.png", full_page=True)

    # Fix it (the template folder, as the marketer's editor would) and submit again.
    block.write_text(good, "utf-8")
    expect(page.get_by_label("Name", exact=True)).to_have_value("winter")
    page.get_by_role("button", name="Create the campaign").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Campaign winter")
    expect(page.get_by_role("status").first).to_contain_text("created as a draft")

    # Preview two segments, then the Chinese version.
    page.get_by_role("link", name="Preview").click()
    versions = page.get_by_label("Segment's version")
    for segment in ("outdoor-regulars", "high-spend-outdoor"):
        versions.select_option(segment)
        page.get_by_role("button", name="Show").click()
        expect(page.get_by_role("heading", name=f"Version for {segment}")).to_be_visible()
        frames = page.locator("iframe.preview-frame")
        expect(frames).to_have_count(2)
        body = page.frame_locator("iframe.preview-frame").first.locator("body")
        expect(body).to_contain_text("Northwind")
    page.screenshot(path=shots / "console-preview.png", full_page=True)
    versions.select_option("")
    page.get_by_label("Language", exact=True).select_option("zh-Hans")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".preview-subject").first).to_have_text("秋季系列上新了")
    chinese = page.frame_locator("iframe.preview-frame").first.locator("html")
    expect(chinese).to_have_attribute("lang", "zh-Hans")

    # Estimate.
    page.get_by_role("link", name="Estimate").click()
    expected = runtime_estimate(app, "winter")
    expect(page.locator("#est-recipients")).to_have_text(str(expected))
    assert expected > 0

    # Test send: the copy arrives in the Maildir outbox, to the marketer alone.
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("button", name="Send me a test").click()
    expect(page.locator("#test-result")).to_contain_text("Sent 1 test copy")
    [copy] = outbox(rt.settings)
    assert copy["To"] == marketer.email and str(copy["Subject"]).startswith("[TEST]")

    # Schedule behind its confirmation, then watch it send: the scheduler runs in the test.
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("link", name="Schedule").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Schedule winter?")
    page.get_by_role("button", name="Yes, schedule it").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sending winter")
    expect(page.locator("#progress-status")).to_have_text("scheduled")
    scheduling.run_due(rt, when + timedelta(minutes=1))
    scheduling.run_due(rt, when + timedelta(minutes=2))
    # The page polls progress.json and goes to the report once the campaign is done.
    expect(page).to_have_url(f"{served}/admin/campaigns/winter/report", timeout=20_000)

    # The report with its chart (drawn by uPlot) and the table with the same numbers.
    summary = campaigns.get_summary(rt, "winter")
    assert summary.status == "sent" and summary.sent > 0
    expect(page.locator("#report-sent")).to_have_text(str(summary.sent))
    expect(page.locator("[data-chart='chart-over-time'] canvas")).to_have_count(1)
    expect(page.locator("[data-chart='chart-segments'] canvas")).to_have_count(1)
    expect(page.locator("#table-over-time tbody tr").first).to_be_visible()
    table_sent = sum(
        int(cells[1])
        for cells in page.locator("#table-over-time tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.children).map(c => c.textContent.trim()))"
        )
    )
    assert table_sent == summary.sent
    page.screenshot(path=shots / "console-report.png", full_page=True)

    # The dashboard counts what was sent, seen from the moment after the send.
    console_of(app).clock = lambda: when + timedelta(minutes=5)
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator(".card .stat").nth(6)).to_have_text(str(summary.sent))
    expect(page.locator("[data-chart='chart-sent-by-day'] canvas")).to_have_count(1)
    page.screenshot(path=shots / "console-dashboard.png", full_page=True)

    # Log out: the old cookie is refused afterwards.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status").first).to_have_text("You are signed out.")
    replay = browser.new_context()
    replay.add_cookies([cookie])  # type: ignore[list-item]
    again = replay.new_page()
    again.goto(f"{served}/admin/")
    expect(again.get_by_role("heading", level=1)).to_have_text("Sign in")
    replay.close()
    context.close()
    assert watch.problems == [], "\n".join(watch.problems)


def runtime_estimate(app: FastAPI, name: str) -> int:
    from engine.app import estimates

    return estimates.estimate(runtime_of(app), name).recipients


def test_a_viewer_cannot_launch(
    browser: Browser, app: FastAPI, served: str, tmp_path: Path
) -> None:
    rt = runtime_of(app)
    campaigns.create(rt, NewCampaign(name="spring", template="autumn-2026"))
    viewer = add_member(app, "viewer")
    context = browser.new_context()
    watch = Watch(context)
    page = context.new_page()
    sign_in(page, served, viewer)
    page.goto(f"{served}/admin/campaigns/spring")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Campaign spring")
    expect(page.get_by_role("link", name="Schedule")).to_have_count(0)
    expect(page.get_by_role("button", name="Send me a test")).to_have_count(0)
    expect(page.get_by_role("link", name="Report")).to_be_visible()
    # A forged POST from the viewer's own browser (its own session and a valid field for
    # another form): refused, and the campaign is untouched.
    field = page.locator("form[action='/admin/logout'] input[name=csrf]").get_attribute("value")
    assert field
    answer = page.evaluate(
        """async ([url, csrf]) => {
            const body = new URLSearchParams({csrf, confirm: "yes"});
            const r = await fetch(url, {method: "POST", body});
            return r.status;
        }""",
        [f"{served}/admin/campaigns/spring/schedule", field],
    )
    assert answer == 403
    assert campaigns.get_summary(rt, "spring").status == "draft"
    denied = [e for e in audit_uc.entries(rt, limit=50).items if e.action == "campaign.scheduled"]
    assert denied == []
    context.close()
    assert watch.problems == [], "\n".join(watch.problems)
