"""A campaign through the pipeline, end to end: segments choose the blocks, opted-out
contacts get the standard.

The campaign is created, scheduled, launched and sent with the functions ``tact
campaigns send`` and ``tact demo`` use; the segment is read at send time, in the
batch, so an opt-out of personalization after the launch still wins. Quiet hours
are off and the clock is pinned (``now=``), so the whole audience goes in one run.
"""

from __future__ import annotations

import email.parser
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine, select

from engine.campaigns import lifecycle, send_campaign
from engine.campaigns.audience import audience
from engine.campaigns.lifecycle import outbox_t
from engine.campaigns.report import report as campaign_report
from engine.config import Settings
from engine.consent.service import Origin, set_personalization
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.links.tokens import TokenSigner
from engine.people.importer import import_file
from engine.render.compose import Composer
from engine.segments import BuildOptions, build, load_rules, segment_for_contacts
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Vault
from engine.vault.vault import contacts

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CAMPAIGN = "autumn-2026"
STANDARD_HERO = "Warm layers, sturdy boots"
STANDARD_SUBJECT = "The autumn collection is here"


def sent_messages(outbox: Path) -> dict[str, EmailMessage]:
    parser = email.parser.BytesParser(policy=email.policy.default)
    found: dict[str, EmailMessage] = {}
    for path in (outbox / "new").iterdir():
        with path.open("rb") as fh:
            msg = parser.parse(fh)
        assert isinstance(msg, EmailMessage)
        found[str(msg["Message-ID"])] = msg
    return found


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_segments_get_their_variants_and_the_opted_out_get_the_standard(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"quiet_hours_start": 0, "quiet_hours_end": 0})
    source = tmp_path / "customers.jsonl"
    write_jsonl(source, generate_customers(800, seed=42, as_of=AS_OF.date()))
    import_file(engine, vault, settings, source)
    build(
        engine,
        load_rules(settings.templates_dir / "segments.toml"),
        BuildOptions(seed=42, as_of=AS_OF),
    )
    composer = Composer(settings, CAMPAIGN, TokenSigner(vault.keyring, settings))
    hero_variants = set(composer.spec.variants("hero", "html")) - {"default"}
    subscribed = set(audience(engine, "offers", at=NOW))
    with engine.connect() as conn:
        ids = list(conn.execute(select(contacts.c.id)).scalars())
        before = segment_for_contacts(conn, ids)
        locale = {cid: loc for cid, loc in conn.execute(select(contacts.c.id, contacts.c.locale))}
    # The English standard is checked on contacts whose email is in English; the others
    # get the whole email in their language (tests/test_locales.py).
    english = {c for c in ids if composer.language_for(locale[c]) == "en"}
    in_variant = [c for c in ids if before[c] in hero_variants and c in subscribed and c in english]
    assert len({before[c] for c in in_variant}) >= 2, "expected several segments with variants"
    objector = in_variant[0]
    with writing(engine) as conn:
        campaign_id = lifecycle.create(conn, settings, name=CAMPAIGN, template=CAMPAIGN, now=NOW)
        lifecycle.schedule(conn, campaign_id, NOW)
        assert lifecycle.launch(conn, campaign_id, NOW, settings=settings) == len(subscribed)
    # After the launch, before the send: the gate and the batch read the segment now.
    with writing(engine) as conn:
        set_personalization(conn, vault, objector, True, Origin(source="admin"))

    outbox = tmp_path / "outbox"
    transport = MaildirTransport(outbox)
    transport.open()
    try:
        batches = send_campaign(engine, vault, settings, campaign_id, transport, now=NOW)
    finally:
        transport.close()
    assert sum(b.sent for b in batches) == len(subscribed)
    with engine.connect() as conn:
        done = campaign_report(conn, campaign_id)
    assert done["status"] == "sent"
    assert done["by_status"] == {"sent": len(subscribed)}
    sent = sent_messages(outbox)
    assert len(sent) == len(subscribed)
    with engine.connect() as conn:
        now = segment_for_contacts(conn, ids)
        objector_row = conn.execute(
            select(outbox_t.c.segment, outbox_t.c.status).where(
                outbox_t.c.campaign_id == campaign_id, outbox_t.c.contact_id == objector
            )
        ).one()
    assert now[objector] is None
    # Fanned out in its segment, recorded as sent in the standard version it was sent.
    assert tuple(objector_row) == ("standard", "sent")

    objector_msg = sent[composer.message_id(objector)]
    assert STANDARD_HERO in html_of(objector_msg)
    assert str(objector_msg["Subject"]) == STANDARD_SUBJECT
    variants_seen = 0
    for cid in subscribed:
        msg = sent[composer.message_id(cid)]
        if cid not in english:
            assert '<html lang="zh-Hans">' in html_of(msg)
            continue
        if now[cid] in hero_variants:
            assert STANDARD_HERO not in html_of(msg), now[cid]
            variants_seen += 1
        elif now[cid] not in composer.spec.subjects:
            assert STANDARD_HERO in html_of(msg)
            assert str(msg["Subject"]) == STANDARD_SUBJECT
    assert variants_seen >= 10
