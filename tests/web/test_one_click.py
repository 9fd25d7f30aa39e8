"""One-click unsubscribe (RFC 8058): committed before the 200, no cookie, GET changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select

from engine.config import Settings
from engine.consent.service import consent_summary
from engine.consent.topics import cached_topics
from engine.links.tokens import TokenKind
from engine.models import AuditEvent
from engine.people.erasure import erase_contact
from engine.vault import Keyring, Vault
from tests.web.support import (
    add_people,
    altered,
    asgi_client,
    history,
    live_server,
    person,
    sign,
    states,
)

pytestmark = pytest.mark.anyio
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]


def assert_plain_200(response: httpx.Response) -> None:
    assert "cookie" not in response.request.headers
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers


async def test_urlencoded_post_withdraws_the_topic_before_answering(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    mei, other = add_people(
        engine, vault, settings, [person("mei@example.net"), person("other@example.net")]
    )
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "offers", campaign="c9")
    async with asgi_client(app) as client:
        response = await client.post(f"/u/{token}", data=ONE_CLICK)
        # Checked as soon as the answer is in: the withdrawal must already be committed.
        after = states(engine, mei.contact_id)
    assert_plain_200(response)
    assert not client.cookies
    assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert after == {"news": "subscribed", "offers": "withdrawn", "product-updates": "subscribed"}
    last = history(engine, mei.contact_id)[-1]
    assert (last["topic"], last["event"], last["source"]) == ("offers", "withdrawn", "one-click")
    assert states(engine, other.contact_id)["offers"] == "subscribed"
    assert "Offers" in response.text


async def test_multipart_post_for_everything_suppresses(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id)
    async with asgi_client(app) as client:
        response = await client.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
        with engine.connect() as conn:
            summary = consent_summary(
                conn, cached_topics(settings.resolved_topics_file), mei.contact_id
            )
    assert_plain_200(response)
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert {t: s["state"] for t, s in summary["topics"].items()} == dict.fromkeys(
        ["news", "offers", "product-updates"], "withdrawn"
    )
    assert summary["suppression"] == "unsubscribed"


async def test_post_without_the_one_click_field_is_the_page_button(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "news")
    async with asgi_client(app) as client:
        response = await client.post(f"/u/{token}")
    assert_plain_200(response)
    assert states(engine, mei.contact_id)["news"] == "withdrawn"
    # The confirmation offers the preference center and an undo.
    assert 'href="/p/' in response.text and "/undo" in response.text


async def test_repeated_post_is_idempotent(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "news")
    async with asgi_client(app) as client:
        first = await client.post(f"/u/{token}", data=ONE_CLICK)
        events = len(history(engine, mei.contact_id))
        second = await client.post(f"/u/{token}", data=ONE_CLICK)
    assert_plain_200(first)
    assert_plain_200(second)
    assert len(history(engine, mei.contact_id)) == events


async def test_get_and_head_change_nothing(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "offers")
    before = history(engine, mei.contact_id)
    async with asgi_client(app) as client:
        page = await client.get(f"/u/{token}")
        head = await client.head(f"/u/{token}")
    assert page.status_code == 200 and head.status_code == 200
    assert "set-cookie" not in page.headers
    assert "You will no longer receive “Offers” emails." in page.text
    assert f'action="/u/{token}?lang=en"' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert history(engine, mei.contact_id) == before
    assert states(engine, mei.contact_id)["offers"] == "subscribed"


@pytest.mark.parametrize("where", ["middle", "last", "truncated", "wrong-kind"])
async def test_altered_or_misused_tokens_get_4xx_and_change_nothing(
    where: str,
    app: FastAPI,
    engine: Engine,
    vault: Vault,
    settings: Settings,
    keyring: Keyring,
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    good = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id)
    bad = {
        "middle": altered(good, len(good) // 2),
        "last": altered(good, len(good) - 1),
        "truncated": good[:-3],
        "wrong-kind": sign(keyring, settings, TokenKind.CONFIRM, mei.public_id, "news"),
    }[where]
    before = history(engine, mei.contact_id)
    async with asgi_client(app) as client:
        posted = await client.post(f"/u/{bad}", data=ONE_CLICK)
        fetched = await client.get(f"/u/{bad}")
    assert posted.status_code in (400, 404)
    assert fetched.status_code in (400, 404)
    assert "set-cookie" not in posted.headers
    assert history(engine, mei.contact_id) == before
    assert set(states(engine, mei.contact_id).values()) == {"subscribed"}


@pytest.mark.parametrize("days", [61, 300])
async def test_old_unsubscribe_links_keep_working(
    days: int, app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    issued = datetime.now(UTC) - timedelta(days=days)
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "news", now=issued)
    async with asgi_client(app) as client:
        response = await client.post(f"/u/{token}", data=ONE_CLICK)
    assert_plain_200(response)
    assert states(engine, mei.contact_id)["news"] == "withdrawn"


async def test_expired_export_link_is_refused(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    fresh = sign(keyring, settings, TokenKind.EXPORT, mei.public_id)
    stale = sign(
        keyring,
        settings,
        TokenKind.EXPORT,
        mei.public_id,
        now=datetime.now(UTC) - timedelta(minutes=settings.sensitive_token_minutes + 2),
    )
    async with asgi_client(app) as client:
        page = await client.get(f"/x/{fresh}")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        refused_page = await client.get(f"/x/{stale}")
        refused = await client.post(f"/x/{stale}", data={"csrf": csrf})
    assert page.status_code == 200
    assert refused_page.status_code == 410
    assert refused.status_code == 410
    assert "application/json" not in refused.headers["content-type"]
    with engine.connect() as conn:
        exported = conn.execute(select(audit_t).where(audit_t.c.action == "contact.exported")).all()
    assert exported == []


async def test_link_of_an_erased_contact_changes_nothing(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "news")
    with engine.begin() as conn:
        erase_contact(conn, vault, mei.address, actor="test")
    before = history(engine, mei.contact_id)
    async with asgi_client(app) as client:
        response = await client.post(f"/u/{token}", data=ONE_CLICK)
    assert response.status_code == 404
    assert history(engine, mei.contact_id) == before


def test_real_http_server_both_encodings(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    """Over a real socket, as a mail provider would call it: no cookie jar, no redirects."""
    mei, sam = add_people(
        engine, vault, settings, [person("mei@example.net"), person("sam@example.net")]
    )
    by_form = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "offers")
    by_multipart = sign(keyring, settings, TokenKind.UNSUBSCRIBE, sam.public_id)
    with live_server(app) as base, httpx.Client(base_url=base, follow_redirects=False) as http:
        scanned = http.get(f"/u/{by_form}")
        assert scanned.status_code == 200
        assert states(engine, mei.contact_id)["offers"] == "subscribed"

        first = http.post(f"/u/{by_form}", data=ONE_CLICK)
        after_first = states(engine, mei.contact_id)
        second = http.post(f"/u/{by_multipart}", files={"List-Unsubscribe": (None, "One-Click")})
        with engine.connect() as conn:
            summary = consent_summary(
                conn, cached_topics(settings.resolved_topics_file), sam.contact_id
            )
        forged = http.post(f"/u/{altered(by_form, 20)}", data=ONE_CLICK)
        assert not http.cookies
    assert_plain_200(first)
    assert_plain_200(second)
    assert first.http_version == "HTTP/1.1"
    assert after_first["offers"] == "withdrawn" and after_first["news"] == "subscribed"
    assert summary["suppression"] == "unsubscribed"
    assert {s["state"] for s in summary["topics"].values()} == {"withdrawn"}
    assert forged.status_code == 404
