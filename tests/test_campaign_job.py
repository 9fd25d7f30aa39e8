"""The main job end to end: segments choose the blocks, opted-out contacts get the standard."""

from __future__ import annotations

import email.parser
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine, select

from engine.config import Settings
from engine.consent.service import Origin, set_personalization
from engine.consent.tokens import TokenSigner
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.mainjob import audience, run_campaign
from engine.render.compose import Composer
from engine.segments import BuildOptions, build, load_rules, segment_for_contacts
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Vault
from engine.vault.importer import import_file
from engine.vault.vault import contacts

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
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
    source = tmp_path / "customers.jsonl"
    write_jsonl(source, generate_customers(800, seed=42, as_of=AS_OF.date()))
    import_file(engine, vault, settings, source)
    build(
        engine,
        load_rules(settings.templates_dir / "segments.toml"),
        BuildOptions(seed=42, as_of=AS_OF),
    )
    composer = Composer(settings, "autumn-2026", TokenSigner(vault.keyring, settings))
    hero_variants = set(composer.spec.variants("hero", "html")) - {"default"}
    subscribed = set(audience(engine, "offers"))
    with engine.connect() as conn:
        ids = list(conn.execute(select(contacts.c.id)).scalars())
        before = segment_for_contacts(conn, ids)
    in_variant = [c for c in ids if before[c] in hero_variants and c in subscribed]
    assert len({before[c] for c in in_variant}) >= 2, "expected several segments with variants"
    objector = in_variant[0]
    with writing(engine) as conn:
        set_personalization(conn, vault, objector, True, Origin(source="admin"))

    outbox = tmp_path / "outbox"
    report = run_campaign(engine, vault, settings, MaildirTransport(outbox), "autumn-2026")
    assert report.delivered == report.audience == len(subscribed)
    sent = sent_messages(outbox)
    with engine.connect() as conn:
        now = segment_for_contacts(conn, ids)
    assert now[objector] is None

    objector_msg = sent[composer.message_id(objector)]
    assert STANDARD_HERO in html_of(objector_msg)
    assert str(objector_msg["Subject"]) == STANDARD_SUBJECT
    variants_seen = 0
    for cid in subscribed:
        msg = sent[composer.message_id(cid)]
        if now[cid] in hero_variants:
            assert STANDARD_HERO not in html_of(msg), now[cid]
            variants_seen += 1
        elif now[cid] not in composer.spec.subjects:
            assert STANDARD_HERO in html_of(msg)
            assert str(msg["Subject"]) == STANDARD_SUBJECT
    assert variants_seen >= 10
