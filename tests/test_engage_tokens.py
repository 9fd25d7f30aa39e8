"""Click tokens (issue 14, clicks): compact, signed, rotation-proof, nothing of the contact.

And the migration's two tables, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import string
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect

from engine.engagement.tokens import TOKEN_CHARS, ClickSigner, ClickToken
from engine.errors import InvalidToken
from engine.vault import Keyring

ALPHABET = string.ascii_letters + string.digits + "-_"
WHEN = datetime(2026, 12, 7, 23, 0, 5, tzinfo=UTC)


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate()


def _token(signer: ClickSigner, **changes: object) -> ClickToken:
    fields: dict[str, object] = {
        "campaign_id": 42,
        "variant_key": 0x7FFF_FFFF,
        "link_index": 3,
        "message_key": signer.message_key("<abc@northwind.example>"),
        "composed_at": WHEN,
    }
    fields.update(changes)
    return ClickToken(**fields)  # type: ignore[arg-type]


def test_round_trip_is_compact_and_url_safe(ring: Keyring) -> None:
    signer = ClickSigner(ring)
    token = _token(signer)
    text = signer.sign(token)
    assert len(text) == TOKEN_CHARS == 52
    assert set(text) <= set(ALPHABET)
    assert signer.verify(text) == token


def test_message_key_is_keyed_per_message_and_not_the_message_id(ring: Keyring) -> None:
    signer = ClickSigner(ring)
    a = signer.message_key("<a@northwind.example>")
    assert a == signer.message_key("<a@northwind.example>")  # a re-send carries the same key
    assert a != signer.message_key("<b@northwind.example>")
    assert len(a) == 8
    # Another keyring (another installation) derives another key from the same Message-ID.
    assert ClickSigner(Keyring.generate()).message_key("<a@northwind.example>") != a


def test_every_altered_character_is_refused(ring: Keyring) -> None:
    signer = ClickSigner(ring)
    text = signer.sign(_token(signer))
    for i, char in enumerate(text):
        other = next(c for c in ALPHABET if c != char)
        with pytest.raises(InvalidToken):
            signer.verify(text[:i] + other + text[i + 1 :])


@pytest.mark.parametrize(
    "text",
    ["", "x", "A" * 51, "A" * 53, "A" * 52, "%2e%2e" * 9, "A" * 50 + "==", "é" * 52],
)
def test_malformed_tokens_are_refused(ring: Keyring, text: str) -> None:
    with pytest.raises(InvalidToken):
        ClickSigner(ring).verify(text)


def test_a_token_of_another_keyring_is_refused(ring: Keyring) -> None:
    other = ClickSigner(Keyring.generate())
    with pytest.raises(InvalidToken):
        ClickSigner(ring).verify(other.sign(_token(other)))


def test_a_token_signed_with_the_link_token_key_itself_is_refused(ring: Keyring) -> None:
    """The click key is derived under its own label, not the token key used as is."""
    import hashlib
    import hmac

    signer = ClickSigner(ring)
    raw = base64.urlsafe_b64decode(signer.sign(_token(signer)) + "==")
    body = raw[:-16]
    forged = body + hmac.new(ring.token_keys[0].key, body, hashlib.sha256).digest()[:16]
    text = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        signer.verify(text)


def test_rotated_keys_keep_old_tokens_working(ring: Keyring) -> None:
    old = ClickSigner(ring)
    text = old.sign(_token(old))
    ring.add_token_key()
    ring.add_token_key()
    new = ClickSigner(ring)
    assert new.verify(text) == _token(old)
    fresh = new.sign(_token(new))
    assert fresh != text
    assert new.verify(fresh).link_index == 3


def test_the_migration_creates_the_link_table_and_the_events(engine: Engine) -> None:
    tables = inspect(engine)
    links = {c["name"] for c in tables.get_columns("tracking_links")}
    events = {c["name"] for c in tables.get_columns("tracking_events")}
    assert {"campaign_id", "variant_key", "link_index", "url", "segment", "locale"} <= links
    assert {"kind", "campaign_id", "variant", "segment", "locale", "link_index"} <= events
    assert {"message_key", "occurred_at", "machine"} <= events
    # Aggregate mode: the events table has no column that could hold a contact.
    assert not {c for c in events if "contact" in c or "email" in c}
    assert tables.get_pk_constraint("tracking_links")["constrained_columns"] == [
        "campaign_id",
        "variant_key",
        "link_index",
    ]


def test_tracking_is_off_by_default_and_individual_is_refused_plainly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.config import Settings, get_settings
    from engine.errors import ConfigurationError

    assert Settings().tracking_mode == "off"
    assert Settings().click_too_soon_seconds == 10
    monkeypatch.setenv("TACT_TRACKING_MODE", "aggregate")
    get_settings.cache_clear()
    assert get_settings().tracking_mode == "aggregate"
    monkeypatch.setenv("TACT_TRACKING_MODE", "individual")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="'individual' is not available yet"):
        get_settings()
    monkeypatch.setenv("TACT_TRACKING_MODE", "everything")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="tracking_mode"):
        get_settings()
