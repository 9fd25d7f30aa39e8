"""The preference center in a real browser (Chromium via Playwright), on a phone-sized screen.

The pages use no JavaScript, so what is tested here is plain HTML forms as a
browser submits them (its own Origin header, its own encoding), labels and
groups as assistive technology sees them, and the result as the engine and the
``tact`` command see it afterwards. Screenshots of the pages are written to the
test's temporary directory for a human to look at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
from sqlalchemy import Engine

from engine.config import Settings
from engine.links.tokens import TokenKind
from engine.vault import Keyring, Vault
from support.services import install_hint
from tests.web.support import Someone, add_people, history, live_server, person, sign, states

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: both backends are covered by the HTTP-level tests."""
    return f"sqlite:///{tmp_path / 'var' / 'tact.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found; {install_hint('chromium')}")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    yield page
    context.close()


def contacts_show(settings: Settings, tmp_path: Path, address: str) -> dict[str, Any]:
    """``tact contacts show ADDRESS --json`` as an operator would run it."""
    env = {
        **os.environ,
        "TACT_VAR_DIR": str(settings.var_dir),
        "TACT_DATABASE_URL": settings.resolved_database_url,
        "TACT_CONFIG": str(tmp_path / "no-such-tact.toml"),
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "contacts", "show", address, "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def change_preferences(
    page: Page,
    *,
    offers: str,
    news: str,
    how_often: str,
    weekly: str,
    receive: str,
    standard: str,
    save: str,
) -> None:
    page.get_by_role("group", name=offers).get_by_label(receive).uncheck()
    page.get_by_role("group", name=news).get_by_label(how_often).select_option(label=weekly)
    page.get_by_label(standard).check()
    page.get_by_role("button", name=save).click()


def assert_changes_recorded(
    engine: Engine, settings: Settings, tmp_path: Path, who: Someone, events_before: int
) -> None:
    new = history(engine, who.contact_id)[events_before:]
    assert [(e["topic"], e["event"], e["source"]) for e in new] == [
        ("offers", "withdrawn", "preference-center"),
        ("personalization", "withdrawn", "preference-center"),
    ]
    assert states(engine, who.contact_id)["offers"] == "withdrawn"
    shown = contacts_show(settings, tmp_path, who.address)
    assert shown["topics"]["offers"]["state"] == "withdrawn"
    assert shown["topics"]["news"]["state"] == "subscribed"
    assert shown["topics"]["news"]["cadence"] == "weekly"
    assert shown["topics"]["news"]["paused_until"] is None
    assert shown["topics"]["product-updates"]["state"] == "subscribed"
    assert shown["personalization_opt_out"] is True
    assert shown["suppression"] is None


def test_preferences_in_english(
    app: FastAPI,
    engine: Engine,
    vault: Vault,
    settings: Settings,
    keyring: Keyring,
    phone: Page,
    tmp_path: Path,
) -> None:
    (sam,) = add_people(engine, vault, settings, [person("sam.jones@example.com")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, sam.public_id, "news", campaign="c1")
    before = len(history(engine, sam.contact_id))
    with live_server(app) as base:
        phone.goto(f"{base}/p/{token}")
        expect(phone.get_by_role("heading", level=1)).to_have_text("Email preferences")
        expect(phone.locator("html")).to_have_attribute("lang", "en")
        phone.screenshot(path=tmp_path / "preferences-en.png", full_page=True)
        # Keyboard users land on the skip link first, and can see where they are.
        phone.keyboard.press("Tab")
        focused = phone.locator(":focus")
        expect(focused).to_have_text("Skip to main content")
        outline = focused.evaluate("e => getComputedStyle(e).outlineStyle")
        assert outline == "solid"

        change_preferences(
            phone,
            offers="Offers",
            news="News and stories",
            how_often="How often",
            weekly="At most weekly",
            receive="Send me these emails",
            standard="Send me the standard version; do not profile me",
            save="Save my choices",
        )
        expect(phone.get_by_role("status").first).to_have_text("Your choices are saved.")
        expect(
            phone.get_by_role("group", name="Offers").get_by_role("checkbox")
        ).not_to_be_checked()
        phone.screenshot(path=tmp_path / "preferences-en-saved.png", full_page=True)
    assert_changes_recorded(engine, settings, tmp_path, sam, before)


def test_preferences_in_chinese(
    app: FastAPI,
    engine: Engine,
    vault: Vault,
    settings: Settings,
    keyring: Keyring,
    phone: Page,
    tmp_path: Path,
) -> None:
    (mei,) = add_people(
        engine,
        vault,
        settings,
        [person("mei.wang@example.net", locale="zh_CN", timezone="Asia/Shanghai")],
    )
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    before = len(history(engine, mei.contact_id))
    with live_server(app) as base:
        phone.goto(f"{base}/p/{token}")
        expect(phone.locator("html")).to_have_attribute("lang", "zh-Hans")
        expect(phone.get_by_role("heading", level=1)).to_have_text("邮件偏好设置")
        expect(phone.get_by_role("heading", name="我为什么会收到这些邮件？")).to_be_visible()
        expect(phone.get_by_role("button", name="退订全部邮件")).to_be_visible()
        phone.screenshot(path=tmp_path / "preferences-zh.png", full_page=True)
        change_preferences(
            phone,
            offers="优惠",
            news="新闻与故事",
            how_often="频率",
            weekly="每周最多一次",
            receive="给我发送这类邮件",
            standard="给我发送标准版；不要对我进行画像分析",
            save="保存我的选择",
        )
        expect(phone.get_by_role("status").first).to_have_text("您的选择已保存。")
        phone.screenshot(path=tmp_path / "preferences-zh-saved.png", full_page=True)
    assert_changes_recorded(engine, settings, tmp_path, mei, before)


def test_one_click_page_button_and_undo(
    app: FastAPI,
    engine: Engine,
    vault: Vault,
    settings: Settings,
    keyring: Keyring,
    phone: Page,
    tmp_path: Path,
) -> None:
    (sam,) = add_people(engine, vault, settings, [person("sam.jones@example.com")])
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, sam.public_id, "product-updates")
    with live_server(app) as base:
        phone.goto(f"{base}/u/{token}")
        expect(
            phone.get_by_text("You will no longer receive “Product updates” emails.")
        ).to_be_visible()
        phone.screenshot(path=tmp_path / "unsubscribe.png", full_page=True)
        assert states(engine, sam.contact_id)["product-updates"] == "subscribed"

        phone.get_by_role("button", name="Unsubscribe").click()
        expect(phone.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
        assert states(engine, sam.contact_id)["product-updates"] == "withdrawn"
        assert history(engine, sam.contact_id)[-1]["source"] == "one-click"
        phone.screenshot(path=tmp_path / "unsubscribed.png", full_page=True)

        phone.get_by_role("button", name="Undo: subscribe me again").click()
        expect(phone.get_by_role("heading", level=1)).to_have_text("Welcome back")
        assert states(engine, sam.contact_id)["product-updates"] == "subscribed"

        phone.get_by_role("link", name="Manage all your email preferences").click()
        group = phone.get_by_role("group", name="Product updates")
        expect(group.get_by_role("checkbox")).to_be_checked()
