"""No address in a page source, a URL or a log line: not of others, and not even one's own."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import Settings
from engine.links.tokens import TokenKind
from engine.vault import Keyring, Vault
from tests.web.support import (
    add_people,
    asgi_client,
    form,
    link_path,
    outbox,
    person,
    sign,
    urls,
)

pytestmark = pytest.mark.anyio
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


async def test_pages_and_logs_carry_no_address(
    app: FastAPI,
    engine: Engine,
    vault: Vault,
    settings: Settings,
    keyring: Keyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    people = add_people(
        engine,
        vault,
        settings,
        [
            person("mei.wang@example.net", locale="zh_CN", timezone="Asia/Shanghai"),
            person("sam.jones@example.com"),
            person("li.na+promo@example.org"),
        ],
    )
    mei = people[0]
    prefs = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id, "news", campaign="c1")
    unsub = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "offers")
    pages: dict[str, str] = {}
    async with asgi_client(app) as client:

        async def get(name: str, path: str) -> str:
            response = await client.get(path)
            assert response.status_code == 200, name
            pages[name] = response.text
            return response.text

        for lang in ("en", "zh_CN"):
            page = await get(f"preferences {lang}", f"/p/{prefs}?lang={lang}")
            assert "Why am I getting this?" in page or "我为什么会收到这些邮件？" in page
        await get("preferences via unsubscribe token", f"/p/{unsub}")
        await get("unsubscribe page", f"/u/{unsub}")
        await get("sign-up", "/subscribe")
        page = pages["preferences via unsubscribe token"]
        main = form(page, f"/p/{unsub}?")
        saved = await client.post(main.action, data=main.data(topic=["news"]))
        pages["preferences saved"] = saved.text
        done = await client.post(f"/u/{unsub}", data={"List-Unsubscribe": "One-Click"})
        pages["unsubscribed"] = done.text
        undo = form(done.text, "/undo")
        pages["undone"] = (await client.post(undo.action, data=undo.data())).text
        for what in ("export", "erase"):
            ask = form(pages["preferences en"], f"/{what}")
            pages[f"{what} link sent"] = (await client.post(ask.action, data=ask.data())).text
        messages = outbox(settings)
        await get("export page", link_path(messages[-2], "x"))
        await get("erase page", link_path(messages[-1], "e"))
        confirm = sign(keyring, settings, TokenKind.CONFIRM, mei.public_id, "news")
        await get("confirm page", f"/confirm/{confirm}")
        pages["error"] = (await client.get(f"/p/{prefs[:-4]}")).text
    addresses = [p.address for p in people]
    for name, html in pages.items():
        for address in addresses:
            assert address not in html, f"{name} shows an address"
        assert not ADDRESS.search(html), f"{name} has something address-shaped"
        for url in urls(html):
            assert "@" not in url, f"{name} links to {url}"
    for record in caplog.records:
        message = record.getMessage()
        for address in addresses:
            assert address not in message, f"log line from {record.name} names an address"
