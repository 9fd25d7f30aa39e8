"""The console's other areas in a real browser (Chromium via Playwright), served by uvicorn
from the real factory: a reveal that lands in the audit log, an import followed from the
upload to its summary (with JavaScript, and without it), a template variant edited with
its lint error shown and then saved. Any console error or CSP violation fails the test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, expect

from engine.app import audit as audit_uc
from engine.app import imports as imports_uc
from engine.synthetic.generator import generate_customers
from tests.console.support import Member, runtime_of
from tests.console2.conftest import Team
from tests.web.support import Someone

ADA = "ada.lovelace@customers.example"
#: Big enough that the import takes a few seconds: its progress page is seen running.
IMPORTED = 3000
BLOCK = Path("campaigns") / "autumn-2026" / "blocks" / "closing" / "standard.html.j2"
#: Console messages that are not faults of a page: an HTTP status the test checks itself
#: (a 422 of a refused form) and the email's remote images in a preview (no network here).
EXPECTED = (
    "Failed to load resource: the server responded with a status of",
    "ERR_NAME_NOT_RESOLVED",
)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: both databases are covered by the HTTP-level tests."""
    return f"sqlite:///{tmp_path / 'var' / 'tact.db'}"


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


def sign_in(page: Page, base: str, member: Member, start: str = "/admin/") -> None:
    page.goto(f"{base}{start}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Email address").fill(member.email)
    page.get_by_label("Password").fill(member.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Sign in")


def test_a_reveal_in_the_browser_lands_in_the_audit_log(
    browser: Browser, app: FastAPI, served: str, team: Team, people: list[Someone]
) -> None:
    ada = people[0]
    context = browser.new_context()
    watch = Watch(context)
    page = context.new_page()
    sign_in(page, served, team.sender)
    page.get_by_role("link", name="Contacts").click()
    page.get_by_label("Exact email address").fill(ADA)
    page.get_by_role("button", name="Look up").click()
    expect(page).to_have_url(f"{served}/admin/contacts/{ada.contact_id}")
    assert ADA not in page.url
    main = page.locator("main")
    expect(main).to_contain_text(str(ada.contact_id))
    expect(main).not_to_contain_text(ADA)
    expect(main).not_to_contain_text("Adaname")
    page.get_by_role("button", name="Reveal address and name").click()
    expect(page.get_by_role("heading", name="Address and name")).to_be_visible()
    expect(main).to_contain_text(ADA)
    expect(main).to_contain_text("Lovelacename")
    context.close()
    assert watch.problems == [], "\n".join(watch.problems)

    [entry] = audit_uc.entries(runtime_of(app), action="contact.revealed").items
    assert entry.contact_id == str(ada.contact_id) and entry.actor == f"staff:{team.sender.id}"
    assert ADA not in json.dumps(entry.to_dict()) and "Adaname" not in json.dumps(entry.to_dict())
    # The admin finds it in the audit log page, by the contact's id.
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, served, team.admin)
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action starts with").fill("contact.revealed")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("tbody tr").filter(has_text="contact.revealed")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(str(ada.contact_id))
    expect(row).to_contain_text(f"staff:{team.sender.id}")
    expect(page.locator("main")).not_to_contain_text(ADA)
    context.close()


def upload_file(tmp_path: Path, name: str, seed: int) -> Path:
    rows = generate_customers(IMPORTED, seed=seed, bad_rows=2)
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_an_import_upload_shows_its_progress_then_its_summary(
    browser: Browser,
    app: FastAPI,
    served: str,
    team: Team,
    tmp_path: Path,
    javascript: bool,
) -> None:
    source = upload_file(tmp_path, "customers.jsonl", seed=11)
    context = browser.new_context(java_script_enabled=javascript)
    watch = Watch(context)
    page = context.new_page()
    sign_in(page, served, team.admin)
    page.get_by_role("link", name="Imports").click()
    page.get_by_label("File of contacts (CSV or JSON lines)").set_input_files(source)
    page.get_by_role("button", name="Upload and import").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(served)}/admin/imports/\d+$"))
    import_id = int(page.url.rsplit("/", 1)[1])
    # While it runs: the progress bar (moved by console.js, or the page refreshing itself).
    expect(page.get_by_role("status")).to_contain_text("Importing")
    expect(page.get_by_label("Progress of the upload being read")).to_be_visible()
    # Then the summary, without anyone reloading the page.
    expect(page.get_by_role("status")).to_contain_text("The import is finished.", timeout=90_000)
    done = imports_uc.import_progress(runtime_of(app), import_id)
    assert (done.inserted, done.rejected) == (IMPORTED, 2)
    expect(page.locator("[data-field=inserted]")).to_have_text(str(IMPORTED))
    expect(page.locator("[data-field=rejected]")).to_have_text("2")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the rejects file").click()
    rejects = Path(download_info.value.path()).read_text("utf-8")
    assert len([line for line in rejects.splitlines() if line.strip()]) >= 2
    # line numbers and reasons, not the rows: no address in it
    assert re.search(r"[\w.+-]+@[\w-]+\.\w", rejects) is None, rejects
    context.close()
    assert watch.problems == [], "\n".join(watch.problems)


def test_editing_a_variant_shows_the_lint_error_then_saves(
    browser: Browser, app: FastAPI, served: str, team: Team
) -> None:
    rt = runtime_of(app)
    block = rt.settings.templates_dir / BLOCK
    before = block.read_text("utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch(context)
    page = context.new_page()
    sign_in(page, served, team.editor)
    page.get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="HTML of closing / standard (en)").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("autumn-2026/closing/standard")
    source = page.get_by_label("Template source (Jinja)")
    expect(source).to_have_value(before)
    preview = page.frame_locator("#preview-frame").locator("body")
    expect(preview).to_contain_text("Northwind")

    # A lint error: typed, the live check (editor.js) shows it without a click.
    source.fill("{% if first_name %}<p>Hi {{ first_name }}</p>\n" + before)
    finding = page.locator("#findings .sev-error").first
    expect(finding).to_contain_text("closing/standard.html.j2")
    expect(page.locator("#check-summary")).to_contain_text("The lint found errors")
    # Saving it anyway is refused, and the file is untouched.
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Not saved")
    assert block.read_text("utf-8") == before

    # Fixed and saved: the file holds the edit, the preview shows it.
    fixed = before.replace("</p>", " <strong>See you soon.</strong></p>", 1)
    page.get_by_label("Template source (Jinja)").fill(fixed)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    expect(page.frame_locator("#preview-frame").locator("body")).to_contain_text("See you soon.")
    assert block.read_text("utf-8") == fixed
    [entry] = audit_uc.entries(rt, action="template.saved").items
    assert entry.actor == f"staff:{team.editor.id}"
    context.close()
    assert watch.problems == [], "\n".join(watch.problems)
