"""Every page: strict headers, no cookie, our stylesheet allowed by hash, labelled controls."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import Settings
from engine.links.tokens import TokenKind
from engine.vault import Keyring, Vault
from tests.web.support import add_people, asgi_client, person, sign

pytestmark = pytest.mark.anyio


class _Controls(HTMLParser):
    """Collects form controls, labels and landmarks of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "label" and "for" in a:
            self.label_for.add(a["for"])
        if tag in ("select", "textarea") or (tag == "input" and a.get("type") != "hidden"):
            self.controls.append(a)


async def test_headers_labels_and_landmarks(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    paths = [
        f"/p/{sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)}",
        f"/u/{sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, 'news')}",
        f"/x/{sign(keyring, settings, TokenKind.EXPORT, mei.public_id)}",
        f"/e/{sign(keyring, settings, TokenKind.ERASE, mei.public_id)}",
        f"/confirm/{sign(keyring, settings, TokenKind.CONFIRM, mei.public_id, 'news')}",
        "/subscribe",
        "/no-such-page",
    ]
    async with asgi_client(app) as client:
        responses = [await client.get(path) for path in paths]
    for path, response in zip(paths, responses, strict=True):
        assert response.status_code == (404 if path == "/no-such-page" else 200), path
        headers = response.headers
        assert "set-cookie" not in headers
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script" not in csp
        style = re.search(r"<style>(.*?)</style>", response.text, re.S)
        assert style is not None
        digest = hashlib.sha256(style.group(1).encode()).digest()
        assert f"'sha256-{base64.b64encode(digest).decode()}'" in csp, path
        assert "<script" not in response.text
        page = _Controls()
        page.feed(response.text)
        for landmark in ("header", "main", "footer", "h1"):
            assert landmark in page.tags, (path, landmark)
        assert page.tags.count("h1") == 1, path
        for control in page.controls:
            assert control.get("id") in page.label_for, (path, control)
