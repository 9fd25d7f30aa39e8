"""The docs page in real Chromium: Swagger UI, served from the package, draws the API under
the API's own CSP (no inline script or style, nothing from elsewhere), and reads the
OpenAPI document beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from support.services import install_hint
from tests.api.conftest import Api
from tests.web.support import live_server
from tests.web.test_preference_center_browser import CHROMIUM, CHROMIUM_ARGS


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_docs_page_draws_the_api_under_its_csp(api: Api) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found; {install_hint('chromium')}")
    problems: list[str] = []
    requests: list[str] = []
    with live_server(api.app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" or "Content Security Policy" in m.text
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.goto(f"{base}/api/v1/docs")
            expect(page.locator(".information-container .title")).to_contain_text("Tact API")
            expect(page.locator("#operations-campaigns-launchCampaign")).to_be_visible()
            page.locator("#operations-campaigns-launchCampaign .opblock-summary").first.click()
            expect(page.get_by_text("Idempotency-Key").first).to_be_visible()
        finally:
            browser.close()
    assert not [p for p in problems if "Content Security Policy" in p], problems
    assert not problems, problems
    assert requests and all(u.startswith(base) or u.startswith("data:") for u in requests)
    assert f"{base}/api/v1/openapi.json" in requests
