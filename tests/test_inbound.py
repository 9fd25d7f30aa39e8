"""The mailto: unsubscribe: a message to the unsubscribe mailbox withdraws what its token names."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

import pytest
from sqlalchemy import Engine, func, select

from engine.config import Settings
from engine.consent import ledger
from engine.consent.ledger import Source
from engine.consent.suppression import reason_for
from engine.db import writing
from engine.events.mailto import InboundStatus, UnsubscribeOutcome, handle_unsubscribe_email
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.links.urls import links_for
from engine.models import ConsentState
from engine.people.erasure import erase_contact
from engine.vault import Vault
from engine.vault.vault import contacts
from tests.helpers import import_rows, people


@pytest.fixture
def subscriber(engine: Engine, vault: Vault, settings: Settings) -> tuple[UUID, UUID, str]:
    """(contact id, public id, address) of someone subscribed to news and offers."""
    rows = people(2)
    for row in rows:
        row["topics"] = ["news", "offers"]
    import_rows(engine, vault, settings, rows)
    address = str(rows[0]["email"])
    with engine.connect() as conn:
        row = vault.find(conn, address)
    return row.id, row.public_id, address


def _mailto_subject(settings: Settings, vault: Vault, public_id: UUID, topic: str | None) -> str:
    """The Subject a mail client writes when it follows the List-Unsubscribe mailto: URI."""
    links = links_for(
        settings, TokenSigner(vault.keyring, settings), public_id, topic=topic, campaign="spring"
    )
    parts = urlsplit(links.unsubscribe_mailto)
    assert parts.scheme == "mailto" and parts.path == settings.unsubscribe_mailbox
    (subject,) = parse_qs(parts.query)["subject"]
    return subject


def _eml(*, subject: str = "", body: str = "", to: str | None = None, sender: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to or "unsubscribe@northwind.example"
    msg["Subject"] = subject
    msg["Message-ID"] = "<test-1@client.example>"
    msg.set_content(body or "\n")
    return msg.as_bytes()


def _handle(engine: Engine, vault: Vault, settings: Settings, raw: bytes) -> UnsubscribeOutcome:
    with writing(engine) as conn:
        return handle_unsubscribe_email(conn, vault, settings, raw)


def _event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ledger.events_t)).scalar_one())


def _states(engine: Engine, contact_id: UUID) -> dict[str, str]:
    with engine.connect() as conn:
        return {t: str(s["state"]) for t, s in ledger.current_states(conn, contact_id).items()}


def test_a_token_in_the_subject_withdraws_with_source_mailto(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    contact_id, public_id, address = subscriber
    subject = _mailto_subject(settings, vault, public_id, "news")
    assert subject.startswith("unsubscribe ")
    outcome = _handle(engine, vault, settings, _eml(subject=subject, sender=address))
    assert outcome.status == InboundStatus.WITHDRAWN and outcome.changed
    assert (outcome.contact_id, outcome.topic, outcome.withdrawn) == (contact_id, "news", ("news",))
    assert outcome.found_in == "subject"
    assert _states(engine, contact_id) == {"news": "withdrawn", "offers": "subscribed"}
    with engine.connect() as conn:
        last = ledger.history(conn, contact_id)[-1]
        detail = conn.execute(
            select(ledger.events_t.c.detail).where(
                ledger.events_t.c.contact_id == contact_id, ledger.events_t.c.seq == last["seq"]
            )
        ).scalar_one()
    assert (last["topic"], last["event"], last["source"]) == ("news", "withdrawn", Source.MAILTO)
    assert detail == {"campaign": "spring"}

    # The same message again: nothing more to withdraw, nothing recorded.
    before = _event_count(engine)
    again = _handle(engine, vault, settings, _eml(subject=subject, sender=address))
    assert again.status == InboundStatus.NOTHING_TO_WITHDRAW and not again.changed
    assert _event_count(engine) == before


def test_the_sender_does_not_matter_and_reply_prefixes_are_fine(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    contact_id, public_id, _ = subscriber
    subject = "Re: " + _mailto_subject(settings, vault, public_id, "offers").upper()[:12]
    subject += _mailto_subject(settings, vault, public_id, "offers")[12:]
    raw = _eml(subject=subject, sender="forwarding-alias@elsewhere.example")
    outcome = _handle(engine, vault, settings, raw)
    assert outcome.status == InboundStatus.WITHDRAWN
    assert _states(engine, contact_id)["offers"] == ConsentState.WITHDRAWN


def test_a_token_without_topic_unsubscribes_from_everything_and_suppresses(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    contact_id, public_id, address = subscriber
    subject = _mailto_subject(settings, vault, public_id, None)
    outcome = _handle(engine, vault, settings, _eml(subject=subject, sender=address))
    assert outcome.status == InboundStatus.WITHDRAWN
    assert outcome.topic is None and set(outcome.withdrawn) == {"news", "offers"}
    assert _states(engine, contact_id) == {"news": "withdrawn", "offers": "withdrawn"}
    with engine.connect() as conn:
        assert reason_for(conn, vault.index_for(address)) == "unsubscribed"


def test_a_token_in_a_plus_local_part_works(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    contact_id, public_id, address = subscriber
    token = TokenSigner(vault.keyring, settings).sign(
        Token(TokenKind.UNSUBSCRIBE, public_id, "news")
    )
    raw = _eml(
        subject="unsubscribe",
        to=f"Northwind <unsubscribe+{token}@northwind.example>",
        sender=address,
    )
    outcome = _handle(engine, vault, settings, raw)
    assert outcome.status == InboundStatus.WITHDRAWN and outcome.found_in == "recipient"
    assert _states(engine, contact_id)["news"] == ConsentState.WITHDRAWN


def test_a_token_in_the_body_works(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    contact_id, public_id, address = subscriber
    links = links_for(
        settings, TokenSigner(vault.keyring, settings), public_id, topic="offers", campaign=None
    )
    body = f"Please take me off this list.\n\n> Unsubscribe: {links.unsubscribe_url}\n"
    outcome = _handle(engine, vault, settings, _eml(subject="stop", body=body, sender=address))
    assert outcome.status == InboundStatus.WITHDRAWN and outcome.found_in == "body"
    assert _states(engine, contact_id)["offers"] == ConsentState.WITHDRAWN


def test_no_token_changes_nothing_and_says_why(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    contact_id, _, address = subscriber
    before = _event_count(engine)
    for raw in (
        _eml(subject="unsubscribe", body="please remove me", sender=address),
        _eml(subject="", sender=address),
        b"",
        b"\x00\xff garbage that is not a message \r\n\r\n",
    ):
        outcome = _handle(engine, vault, settings, raw)
        assert outcome.status == InboundStatus.NO_TOKEN and not outcome.changed
        assert outcome.reason and outcome.contact_id is None
    assert _event_count(engine) == before
    assert _states(engine, contact_id) == {"news": "subscribed", "offers": "subscribed"}


def test_a_forged_or_altered_token_changes_nothing(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    contact_id, public_id, address = subscriber
    genuine = unquote(_mailto_subject(settings, vault, public_id, "news")).split()[1]
    middle = len(genuine) // 2
    altered = genuine[:middle] + ("A" if genuine[middle] != "A" else "B") + genuine[middle + 1 :]
    other_install = Vault(type(vault.keyring).generate())
    forged = TokenSigner(other_install.keyring, settings).sign(
        Token(TokenKind.UNSUBSCRIBE, public_id, "news")
    )
    wrong_kind = TokenSigner(vault.keyring, settings).sign(
        Token(TokenKind.PREFERENCES, public_id, "news")
    )
    before = _event_count(engine)
    for token in (altered, forged, wrong_kind):
        raw = _eml(subject=f"unsubscribe {token}", sender=address)
        outcome = _handle(engine, vault, settings, raw)
        assert outcome.status == InboundStatus.INVALID_TOKEN and not outcome.changed
    assert _event_count(engine) == before
    assert _states(engine, contact_id) == {"news": "subscribed", "offers": "subscribed"}
    with engine.connect() as conn:
        assert reason_for(conn, vault.index_for(address)) is None


def test_a_genuine_token_for_an_erased_contact_changes_nothing(
    engine: Engine, vault: Vault, settings: Settings, subscriber: tuple[UUID, UUID, str]
) -> None:
    _, public_id, address = subscriber
    subject = _mailto_subject(settings, vault, public_id, "news")
    with engine.begin() as conn:
        erase_contact(conn, vault, address, actor="test")
    before = _event_count(engine)
    outcome = _handle(engine, vault, settings, _eml(subject=subject, sender=address))
    assert outcome.status == InboundStatus.UNKNOWN_SUBSCRIBER
    assert _event_count(engine) == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 2
