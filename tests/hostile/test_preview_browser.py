"""In Chromium: a meta refresh typed into the template editor is refused by the lint and moves
nothing, and the frame a preview is shown in stays a sandbox without scripts."""

from __future__ import annotations

from fastapi import FastAPI
from playwright.sync_api import Browser

from tests.console.browser import browser, served  # noqa: F401  (fixtures)
from tests.console.support import add_member


def test_a_meta_refresh_in_a_preview_goes_nowhere(
    app: FastAPI,
    browser: Browser,  # noqa: F811
    served: str,  # noqa: F811
) -> None:
    member = add_member(app, "editor")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{served}/admin/login")
        page.fill("input[name=email]", member.email)
        page.fill("input[name=password]", member.password)
        page.click("button[type=submit]")
        page.wait_for_url("**/admin/")
        editor = f"{served}/admin/templates/autumn-2026/hero/standard"
        page.goto(editor)
        away = f"{served}/healthz"
        page.fill("#f-source", f'<meta http-equiv="refresh" content="0;url={away}"><p>hi</p>')
        page.click("button[value=check]")
        page.wait_for_load_state("load")
        # The lint refuses it now (it went through into real mail before): an error, named.
        findings = page.locator("#findings").inner_text()
        assert 'meta http-equiv="refresh"' in findings, findings
        assert page.locator("#check-summary.notice-error").count() == 1
        page.wait_for_timeout(1500)  # a refresh that got through (0 s) would have fired
        assert page.url == editor
        assert not any(f.url.startswith(away) for f in page.frames)
        # And the frame a clean preview is shown in is still a sandbox without scripts.
        page.fill("#f-source", "<p>hi</p>")
        page.click("button[value=check]")
        page.wait_for_load_state("load")
        frame = page.locator("iframe.preview-frame")
        frame.wait_for()
        sandbox = frame.get_attribute("sandbox")
        assert sandbox is not None and "allow-scripts" not in sandbox
        assert any("/admin/template-previews/" in f.url for f in page.frames)
    finally:
        context.close()
