"""In Chromium: the template editor's preview frame is a sandbox. Markup the lint lets through
(a meta refresh) cannot move the frame, let alone the console page around it."""

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
    said: list[str] = []
    page.on("console", lambda message: said.append(message.text))
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
        frame = page.locator("iframe.preview-frame")
        frame.wait_for()
        sandbox = frame.get_attribute("sandbox")
        assert sandbox is not None and "allow-scripts" not in sandbox
        page.wait_for_function(
            "() => [...document.querySelectorAll('iframe')].some(f => f.src.includes('preview'))"
        )
        page.wait_for_timeout(1500)  # the refresh would have fired (0 s) by now
        assert page.url == editor
        urls = [f.url for f in page.frames]
        assert not any(u.startswith(away) for u in urls), urls
        assert any("/admin/template-previews/" in u for u in urls), urls
        assert any("Refused to execute the redirect" in text for text in said), said
    finally:
        context.close()
