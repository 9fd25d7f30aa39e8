"""Click tracking end to end (issue 14, first slice), on SQLite and PostgreSQL.

A campaign is sent through the pipeline with ``tracking_mode = "aggregate"`` and the
link hook the composer is given; the links of the sent messages are followed through
the real web app (Starlette's TestClient). Each redirects to its link table's
destination and leaves one event row that names no contact. Refused: altered and
forged tokens, an index past the table; never rewritten: the unsubscribe and
preference links, List-Unsubscribe, mailto and our own pages.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from engine.app.keys import rotate_tokens
from engine.campaigns import Composers, create, launch, schedule, send_campaign
from engine.config import Settings
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.engagement.links import LinkTables, variant_key
from engine.engagement.tokens import ClickSigner, ClickToken
from engine.models import TrackingEvent, TrackingLink
from engine.runtime import Runtime
from engine.vault import Keyring, Vault
from engine.vault.vault import contacts
from engine.web.app import create_app
from tests.helpers import import_rows, people

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
BASE = "https://prefs.northwind.example"
CLICK = re.compile(re.escape(BASE) + r"/c/([A-Za-z0-9_-]+)")
links_t = TrackingLink.__table__  # type: ignore[attr-defined]
events_t = TrackingEvent.__table__  # type: ignore[attr-defined]


class Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.found += [v for k, v in attrs if k == "href" and v]


def hrefs(html: str) -> list[str]:
    parser = Hrefs()
    parser.feed(html)
    return parser.found


def parts(msg: EmailMessage) -> tuple[str, str]:
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert isinstance(html, EmailMessage) and isinstance(text, EmailMessage)
    return str(html.get_content()), str(text.get_content())


def sent(outbox: Path) -> list[EmailMessage]:
    parser = email.parser.BytesParser(policy=email.policy.default)
    found = []
    for path in sorted((outbox / "new").iterdir()):
        with path.open("rb") as fh:
            msg = parser.parse(fh)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def tracking(settings: Settings, mode: str = "aggregate") -> Settings:
    return settings.model_copy(
        update={"tracking_mode": mode, "quiet_hours_start": 0, "quiet_hours_end": 0}
    )


def send(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    outbox: Path,
    *,
    n: int = 3,
    clock: Any = None,
) -> int:
    """``n`` subscribers, the autumn campaign launched and sent with the link hook."""
    # CAN-SPAM subscribers: measured unless they refuse (under the GDPR, only once they agree).
    rows = [{**p, "topics": ["offers"], "consent_regime": "can-spam"} for p in people(n)]
    import_rows(engine, vault, settings, rows)
    with writing(engine) as conn:
        cid = create(conn, settings, name="autumn-tracked", template="autumn-2026", now=NOW)
        schedule(conn, cid, NOW)
        launch(conn, cid, NOW, settings=settings)
    # Composed a minute ago, by default: clicks now are not "too soon".
    tables = LinkTables(engine, settings, vault.keyring, clock=clock or (lambda: time.time() - 60))
    transport = MaildirTransport(outbox)
    transport.open()
    try:
        send_campaign(
            engine,
            vault,
            settings,
            cid,
            transport,
            now=NOW,
            composers=Composers(settings, vault, links=tables.hook),
        )
    finally:
        transport.close()
    return cid


@pytest.fixture
def client_for() -> Iterator[Any]:
    apps: list[Any] = []

    def make(settings: Settings, only: str = "public") -> TestClient:
        app = create_app(settings, only=only)  # type: ignore[arg-type]
        apps.append(app)
        return TestClient(app, base_url=BASE, follow_redirects=False)

    yield make
    for app in apps:
        app.state.tact.runtime.close()


def link_rows(engine: Engine, cid: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(links_t).where(links_t.c.campaign_id == cid)))


def event_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(events_t).order_by(events_t.c.id)))


def test_sent_links_redirect_to_the_link_table_and_record_one_event_without_contact(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path, client_for: Any
) -> None:
    settings = tracking(settings)
    cid = send(engine, vault, settings, tmp_path / "outbox")
    messages = sent(tmp_path / "outbox")
    assert len(messages) == 3
    table = {(r.variant_key, r.link_index): r for r in link_rows(engine, cid)}
    # The standard English variant of the autumn campaign links its collection once.
    assert [(r.segment, r.locale, r.variant, r.url) for r in table.values()] == [
        ("standard", "en", "standard", "https://northwind.example/autumn")
    ]
    client = client_for(settings)
    signer = ClickSigner(vault.keyring)
    clicked = 0
    keys = set()
    for msg in messages:
        html, text = parts(msg)
        tokens = CLICK.findall(html) + CLICK.findall(text)
        assert len(tokens) == 2  # the hero's link, in the html and in the text part
        for token in tokens:
            parsed = signer.verify(token)
            assert parsed.campaign_id == cid
            assert parsed.message_key == signer.message_key(str(msg["Message-ID"]))
            response = client.get(f"/c/{token}")
            assert response.status_code == 302
            destination = table[(parsed.variant_key, parsed.link_index)].url
            assert response.headers["location"] == destination
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "set-cookie" not in response.headers
            clicked += 1
            keys.add(parsed.message_key)
    assert len(keys) == 3  # one per message, the same in both parts
    events = event_rows(engine)
    assert len(events) == clicked == 6  # one row per click
    for event in events:
        assert (event.kind, event.campaign_id, event.variant, event.segment, event.locale) == (
            "click",
            cid,
            "standard",
            "standard",
            "en",
        )
        assert event.link_index == 0 and event.machine is None
        assert event.message_key in keys
    # No contact id, public id or address anywhere in the events.
    with engine.connect() as conn:
        people_rows = list(conn.execute(select(contacts.c.id, contacts.c.public_id)))
    dump = repr([tuple(e) for e in events])
    for contact_id, public_id in people_rows:
        for value in (contact_id, public_id):
            assert str(value) not in dump and value.hex not in dump
            assert value.bytes not in b"".join(e.message_key for e in events)
    for person in people(3):
        assert person["email"] not in dump and person["email"].encode() not in dump.encode()


def test_unsubscribe_preferences_and_list_unsubscribe_are_never_rewritten(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    settings = tracking(settings)
    send(engine, vault, settings, tmp_path / "outbox", n=2)
    for msg in sent(tmp_path / "outbox"):
        html, text = parts(msg)
        links = hrefs(html)
        assert [h for h in links if h.startswith(f"{BASE}/u/")], "unsubscribe link kept"
        assert [h for h in links if h.startswith(f"{BASE}/p/")], "preference link kept"
        assert f"{BASE}/u/" in text and f"{BASE}/p/" in text
        # The brand frame's own link (the header's website) goes straight there.
        assert "https://northwind.example" in links
        assert all("/c/" not in h for h in links if not h.startswith(f"{BASE}/c/"))
        header = str(msg["List-Unsubscribe"])
        assert f"<{BASE}/u/" in header and "mailto:" in header and "/c/" not in header
        assert str(msg["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"


def test_tracking_off_leaves_links_as_written_and_stores_no_table(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    settings = tracking(settings, "off")
    cid = send(engine, vault, settings, tmp_path / "outbox", n=2)
    for msg in sent(tmp_path / "outbox"):
        html, text = parts(msg)
        assert "https://northwind.example/autumn" in hrefs(html)
        assert "https://northwind.example/autumn" in text
        assert "/c/" not in html and "/c/" not in text
    assert link_rows(engine, cid) == []
    assert event_rows(engine) == []


def test_altered_forged_and_unknown_tokens_get_a_plain_page_and_no_event(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path, client_for: Any
) -> None:
    settings = tracking(settings)
    cid = send(engine, vault, settings, tmp_path / "outbox", n=1)
    html, _ = parts(sent(tmp_path / "outbox")[0])
    token = CLICK.findall(html)[0]
    signer = ClickSigner(vault.keyring)
    good = signer.verify(token)
    (row,) = link_rows(engine, cid)
    out_of_range = signer.sign(
        ClickToken(cid, row.variant_key, row.link_index + 1, good.message_key, good.composed_at)
    )
    other_variant = signer.sign(
        ClickToken(cid, variant_key("win-back", "en"), 0, good.message_key, good.composed_at)
    )
    unknown_campaign = signer.sign(
        ClickToken(cid + 1000, row.variant_key, 0, good.message_key, good.composed_at)
    )
    forged = ClickSigner(Keyring.generate()).sign(good)  # another installation's key
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    client = client_for(settings)
    for bad in (
        out_of_range,
        other_variant,
        unknown_campaign,
        forged,
        flipped,
        token[:-1],
        token + "A",
        "not-a-token",
    ):
        response = client.get(f"/c/{bad}?to=https://evil.example/")
        assert response.status_code == 404, bad
        assert "location" not in response.headers
        assert bad not in response.text and "evil.example" not in response.text
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
    # A path with a slash is no token: the app's own 404, no redirect either.
    response = client.get("/c/..%2f..%2fetc")
    assert response.status_code == 404 and "location" not in response.headers
    assert event_rows(engine) == []
    # The query string never chooses the destination either.
    response = client.get(f"/c/{token}?to=https://evil.example/&url=https://evil.example/")
    assert response.headers["location"] == "https://northwind.example/autumn"


def test_head_and_too_soon_clicks_are_flagged(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path, client_for: Any
) -> None:
    settings = tracking(settings)
    send(engine, vault, settings, tmp_path / "outbox", n=1, clock=time.time)  # composed now
    html, _ = parts(sent(tmp_path / "outbox")[0])
    token = CLICK.findall(html)[0]
    client = client_for(settings)
    head = client.head(f"/c/{token}")
    assert head.status_code == 302
    assert head.headers["location"] == "https://northwind.example/autumn"
    soon = client.get(f"/c/{token}")  # within click_too_soon_seconds of composing
    assert soon.status_code == 302
    later = client_for(settings.model_copy(update={"click_too_soon_seconds": 0}))
    assert later.get(f"/c/{token}").status_code == 302
    assert [e.machine for e in event_rows(engine)] == ["head", "too-soon", None]


def test_rotated_token_keys_keep_old_click_links_working(
    engine: Engine,
    vault: Vault,
    keyring: Keyring,
    settings: Settings,
    tmp_path: Path,
    client_for: Any,
) -> None:
    settings = tracking(settings)
    send(engine, vault, settings, tmp_path / "outbox", n=1)
    html, _ = parts(sent(tmp_path / "outbox")[0])
    token = CLICK.findall(html)[0]
    old_key = keyring.token_keys[0].key
    rt = Runtime(settings, configure_logging=False)
    try:
        rotate_tokens(rt)  # what `tact keys rotate-tokens` does
    finally:
        rt.close()
    client = client_for(settings)  # a new process: the rotated keyring from its file
    ring = client.app.state.tact.runtime.vault.keyring  # type: ignore[attr-defined]
    assert ring.token_keys[0].key != old_key and ring.token_keys[1].key == old_key
    response = client.get(f"/c/{token}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://northwind.example/autumn"
    assert len(event_rows(engine)) == 1


def test_a_click_after_tracking_was_turned_off_still_redirects_and_records_nothing(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path, client_for: Any
) -> None:
    on = tracking(settings)
    send(engine, vault, on, tmp_path / "outbox", n=1)
    html, _ = parts(sent(tmp_path / "outbox")[0])
    token = CLICK.findall(html)[0]
    response = client_for(tracking(settings, "off")).get(f"/c/{token}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://northwind.example/autumn"
    assert event_rows(engine) == []


def test_the_click_route_is_served_under_only_public_and_not_under_admin(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path, client_for: Any
) -> None:
    settings = tracking(settings)
    send(engine, vault, settings, tmp_path / "outbox", n=1)
    html, _ = parts(sent(tmp_path / "outbox")[0])
    token = CLICK.findall(html)[0]
    assert client_for(settings, "public").get(f"/c/{token}").status_code == 302
    assert client_for(settings, "admin").get(f"/c/{token}").status_code == 404
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events_t)).scalar_one() == 1
