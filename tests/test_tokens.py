"""Signed link tokens: round trips, tampering, lifetimes per kind, key rotation, no address."""

from __future__ import annotations

import base64
import string
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import Settings
from engine.errors import ExpiredToken, InvalidToken
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.vault import Keyring

ALPHABET = string.ascii_letters + string.digits + "-_"
ADDRESS = "mei.wang@example.net"


@pytest.fixture
def token_settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path / "var")


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def signer(ring: Keyring, token_settings: Settings) -> TokenSigner:
    return TokenSigner(ring, token_settings)


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _other(char: str, index: int = 0) -> str:
    """A base64url character other than ``char``."""
    candidates = [c for c in ALPHABET if c != char]
    return candidates[index % len(candidates)]


@pytest.mark.parametrize("kind", list(TokenKind))
@pytest.mark.parametrize(
    ("topic", "campaign"),
    [(None, None), ("news", None), ("product-updates", "spring-2026"), ("新闻", "春季")],
)
def test_round_trip_for_every_kind(
    signer: TokenSigner, kind: TokenKind, topic: str | None, campaign: str | None
) -> None:
    public_id = uuid.uuid4()
    text = signer.sign(Token(kind, public_id, topic, campaign))
    assert all(c in ALPHABET for c in text)
    token = signer.verify(text, kind)
    assert (token.kind, token.public_id, token.topic, token.campaign) == (
        kind,
        public_id,
        topic,
        campaign,
    )
    assert token.issued_at is not None
    assert abs(datetime.now(UTC) - token.issued_at) < timedelta(minutes=2)


@pytest.mark.parametrize("topic", [None, "news"])  # 59 and 64 characters: with and without slack
def test_one_character_changed_in_the_middle_is_refused(
    signer: TokenSigner, topic: str | None
) -> None:
    text = signer.sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4(), topic))
    middle = len(text) // 2
    for index in range(len(ALPHABET) - 1):
        altered = text[:middle] + _other(text[middle], index) + text[middle + 1 :]
        with pytest.raises(InvalidToken):
            signer.verify(altered, TokenKind.UNSUBSCRIBE)


@pytest.mark.parametrize("topic", [None, "news"])
def test_one_character_changed_at_the_end_is_refused(
    signer: TokenSigner, topic: str | None
) -> None:
    """Every other last character, including those that differ only in unused low bits."""
    text = signer.sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4(), topic))
    for char in ALPHABET:
        if char == text[-1]:
            continue
        with pytest.raises(InvalidToken):
            signer.verify(text[:-1] + char, TokenKind.UNSUBSCRIBE)


def test_truncated_tokens_are_refused(signer: TokenSigner) -> None:
    text = signer.sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4(), "news", "c1"))
    for cut in range(1, len(text)):
        with pytest.raises(InvalidToken):
            signer.verify(text[:-cut], TokenKind.UNSUBSCRIBE)
        with pytest.raises(InvalidToken):
            signer.verify(text[cut:], TokenKind.UNSUBSCRIBE)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "a",
        "AAAA",
        "not a token",
        "A" * 59,
        "A" * 2000,
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "dW5zdWJzY3JpYmU=",  # padded, standard base64 of "unsubscribe"
        "ünïcödé-tökén",
        "../../etc/passwd",
        "%00%00%00",
    ],
)
def test_empty_garbage_and_non_base64_are_refused(signer: TokenSigner, garbage: str) -> None:
    with pytest.raises(InvalidToken) as info:
        signer.verify(garbage, set(TokenKind))
    assert type(info.value) is InvalidToken


def test_characters_inserted_into_a_genuine_token_are_refused(signer: TokenSigner) -> None:
    text = signer.sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4(), "news"))
    for extra in ("!", ".", "=", " ", "\n", "+", "/"):
        with pytest.raises(InvalidToken):
            signer.verify(text[:10] + extra + text[10:], TokenKind.UNSUBSCRIBE)
    with pytest.raises(InvalidToken):
        signer.verify(text + "==", TokenKind.UNSUBSCRIBE)


@pytest.mark.parametrize("age_days", [61, 300])
def test_unsubscribe_and_preference_links_live_long(signer: TokenSigner, age_days: int) -> None:
    issued = datetime.now(UTC) - timedelta(days=age_days)
    for kind in (TokenKind.UNSUBSCRIBE, TokenKind.PREFERENCES):
        text = signer.sign(Token(kind, uuid.uuid4(), "news"), now=issued)
        assert signer.verify(text, kind).kind == kind


def test_unsubscribe_link_expires_after_link_token_days(
    signer: TokenSigner, token_settings: Settings
) -> None:
    issued = datetime.now(UTC) - timedelta(days=token_settings.link_token_days + 1)
    text = signer.sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4(), "news"), now=issued)
    with pytest.raises(ExpiredToken):
        signer.verify(text, TokenKind.UNSUBSCRIBE)


@pytest.mark.parametrize("kind", [TokenKind.EXPORT, TokenKind.ERASE])
def test_sensitive_links_expire_after_sensitive_token_minutes(
    signer: TokenSigner, token_settings: Settings, kind: TokenKind
) -> None:
    minutes = token_settings.sensitive_token_minutes
    fresh = signer.sign(Token(kind, uuid.uuid4()), now=datetime.now(UTC) - timedelta(minutes=5))
    assert signer.verify(fresh, kind).kind == kind
    old = signer.sign(
        Token(kind, uuid.uuid4()), now=datetime.now(UTC) - timedelta(minutes=minutes + 2)
    )
    with pytest.raises(ExpiredToken):
        signer.verify(old, kind)


def test_confirmation_expires_after_confirm_token_days(
    signer: TokenSigner, token_settings: Settings
) -> None:
    days = token_settings.confirm_token_days
    text = signer.sign(
        Token(TokenKind.CONFIRM, uuid.uuid4(), "news"),
        now=datetime.now(UTC) - timedelta(days=days, hours=1),
    )
    with pytest.raises(ExpiredToken):
        signer.verify(text, TokenKind.CONFIRM)


@pytest.mark.parametrize("kind", list(TokenKind))
def test_a_token_of_another_kind_is_refused_by_every_other_route(
    signer: TokenSigner, kind: TokenKind
) -> None:
    text = signer.sign(Token(kind, uuid.uuid4(), "news"))
    for route in TokenKind:
        if route == kind:
            continue
        with pytest.raises(InvalidToken) as info:
            signer.verify(text, route)
        assert type(info.value) is InvalidToken  # refused, not "expired"
    others = set(TokenKind) - {kind}
    with pytest.raises(InvalidToken):
        signer.verify(text, others)


def test_after_adding_a_token_key_old_tokens_verify_and_new_ones_use_the_new_key(
    ring: Keyring, token_settings: Settings
) -> None:
    old_signer = TokenSigner(ring, token_settings)
    old_key = ring.token_keys[0]
    old_text = old_signer.sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4(), "news"))

    new_key = ring.add_token_key()
    signer = TokenSigner(ring, token_settings)
    assert signer.verify(old_text, TokenKind.UNSUBSCRIBE).topic == "news"
    new_text = signer.sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4(), "offers"))
    assert signer.verify(new_text, TokenKind.UNSUBSCRIBE).topic == "offers"

    # The new token is signed by the new key: a keyring holding only the old key refuses it,
    # one holding only the new key accepts it.
    only_old = Keyring.from_json(ring.to_json())
    only_old.token_keys = [k for k in only_old.token_keys if k.id == old_key.id]
    with pytest.raises(InvalidToken):
        TokenSigner(only_old, token_settings).verify(new_text, TokenKind.UNSUBSCRIBE)
    only_new = Keyring.from_json(ring.to_json())
    only_new.token_keys = [k for k in only_new.token_keys if k.id == new_key.id]
    assert TokenSigner(only_new, token_settings).verify(new_text, TokenKind.UNSUBSCRIBE)


def test_a_token_signed_by_a_key_removed_from_the_keyring_fails(
    ring: Keyring, token_settings: Settings
) -> None:
    text = TokenSigner(ring, token_settings).sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4()))
    ring.add_token_key()
    ring.token_keys = ring.token_keys[:1]  # the old key is gone
    with pytest.raises(InvalidToken):
        TokenSigner(ring, token_settings).verify(text, TokenKind.UNSUBSCRIBE)


def test_a_retired_key_stops_verifying_after_the_grace_period(
    ring: Keyring, token_settings: Settings
) -> None:
    text = TokenSigner(ring, token_settings).sign(Token(TokenKind.UNSUBSCRIBE, uuid.uuid4()))
    successor = ring.add_token_key()
    successor.created = (
        datetime.now(UTC) - timedelta(days=token_settings.token_grace_days + 1)
    ).isoformat()
    with pytest.raises(InvalidToken):
        TokenSigner(ring, token_settings).verify(text, TokenKind.UNSUBSCRIBE)


def test_a_token_from_another_installation_fails(token_settings: Settings) -> None:
    text = TokenSigner(Keyring.generate(), token_settings).sign(
        Token(TokenKind.UNSUBSCRIBE, uuid.uuid4())
    )
    with pytest.raises(InvalidToken):
        TokenSigner(Keyring.generate(), token_settings).verify(text, TokenKind.UNSUBSCRIBE)


def test_tokens_hold_no_address(signer: TokenSigner) -> None:
    public_id = uuid.uuid4()
    for kind in TokenKind:
        text = signer.sign(Token(kind, public_id, "news", "spring"))
        assert ADDRESS not in text
        assert "@" not in text
        raw = _decode(text)
        for part in (ADDRESS, "mei.wang", "example.net"):
            assert part.encode() not in raw
        # What a token carries, and nothing else: version, kind, key tag, minute, public id,
        # then the topic and campaign names, then the signature (random-looking bytes).
        assert raw[10:26] == public_id.bytes
        assert raw[26:-16] == b"\x04news\x06spring"
        assert len(raw) == 26 + 1 + len("news") + 1 + len("spring") + 16
