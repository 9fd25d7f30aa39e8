"""The sending pipeline measures only the clicks a contact allows (issue 14), on SQLite and
PostgreSQL: a campaign sent through the runtime's composers (as ``tact run``, ``tact
campaigns send`` and the workers send) with ``tracking_mode = "aggregate"`` rewrites the
links of contacts whose tracking mode is not off, and leaves everyone else's as written."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from engine.campaigns import create, launch, schedule, send_campaign
from engine.config import Settings
from engine.consent.tracking import set_tracking
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.models import TrackingLink
from engine.runtime import Runtime
from engine.vault import Vault
from tests.helpers import import_rows
from tests.test_engage_clicks import CLICK, NOW, parts, sent, tracking

links_t = TrackingLink.__table__  # type: ignore[attr-defined]
EXAMPLE = "https://northwind.example/autumn"


def _row(address: str, regime: str) -> dict[str, object]:
    return {
        "email": address,
        "first_name": "Firstname",
        "last_name": "Lastname",
        "locale": "en_GB",
        "timezone": "Europe/London",
        "topics": ["offers"],
        "consent_regime": regime,
    }


def test_only_contacts_who_allow_it_get_tracked_links(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    settings = tracking(settings)
    rows = [
        _row("agreed@example.eu", "gdpr-consent"),  # GDPR, ticked the box: measured
        _row("asked-not@example.eu", "gdpr-consent"),  # GDPR, never agreed: not measured
        _row("default@example.com", "can-spam"),  # CAN-SPAM, did not refuse: measured
        _row("refused@example.com", "can-spam"),  # CAN-SPAM, unticked the box: not measured
    ]
    import_rows(engine, vault, settings, rows)
    with writing(engine) as conn:
        for address, allowed in (("agreed@example.eu", True), ("refused@example.com", False)):
            found = vault.find(conn, address)
            assert found is not None
            assert set_tracking(conn, vault, found.id, allowed, source="preference-center")
        cid = create(conn, settings, name="autumn-consent", template="autumn-2026", now=NOW)
        schedule(conn, cid, NOW)
        launch(conn, cid, NOW, settings=settings)
    rt = Runtime(settings)
    outbox = tmp_path / "outbox"
    transport = MaildirTransport(outbox)
    transport.open()
    try:
        send_campaign(engine, vault, settings, cid, transport, now=NOW, composers=rt.composers)
    finally:
        transport.close()
        rt.close()
    messages = {str(m["To"]): m for m in sent(outbox)}
    assert sorted(messages) == sorted(str(r["email"]) for r in rows)
    for address, measured in (
        ("agreed@example.eu", True),
        ("asked-not@example.eu", False),
        ("default@example.com", True),
        ("refused@example.com", False),
    ):
        html, text = parts(messages[address])
        if measured:
            assert CLICK.search(html) and CLICK.search(text), address
        else:
            assert not CLICK.search(html) and not CLICK.search(text), address
            assert EXAMPLE in html  # the block's links, as the template wrote them
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(links_t).where(links_t.c.campaign_id == cid)
        ).scalar_one()
    assert stored > 0  # the runtime handed the pipeline its link tables


def test_with_tracking_off_nobody_is_tracked_whatever_they_allowed(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    settings = tracking(settings, "off")
    import_rows(engine, vault, settings, [_row("default@example.com", "can-spam")])
    with writing(engine) as conn:
        found = vault.find(conn, "default@example.com")
        assert found is not None
        set_tracking(conn, vault, found.id, True, source="preference-center")
        cid = create(conn, settings, name="autumn-off", template="autumn-2026", now=NOW)
        schedule(conn, cid, NOW)
        launch(conn, cid, NOW, settings=settings)
    rt = Runtime(settings)
    transport = MaildirTransport(tmp_path / "outbox")
    transport.open()
    try:
        send_campaign(engine, vault, settings, cid, transport, now=NOW, composers=rt.composers)
    finally:
        transport.close()
        rt.close()
    (message,) = sent(tmp_path / "outbox")
    html, text = parts(message)
    assert not CLICK.search(html) and not CLICK.search(text)
