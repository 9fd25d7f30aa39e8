"""Signed link tokens: opaque, URL-safe, HMAC-signed, never holding an address.

Layout before base64url (no padding)::

    version (1) | kind (1) | key tag (4) | issued, unix minutes (4)
    | contact public id (16) | topic length (1) + UTF-8 | campaign length (1) + UTF-8
    | HMAC-SHA256(token key, everything before)[:16]

The key tag names which token key signed it, so keys rotate: a new key signs,
older keys keep verifying for ``token_grace_days``. Signatures are compared in
constant time. What a token may do depends on its kind, and each kind has its
own lifetime: unsubscribe and preference links live long (CASL asks for 60 days
at least), export and erasure links an hour, confirmations a week.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from engine.config import Settings
from engine.errors import ExpiredToken, InvalidToken, TactError
from engine.vault.keyring import Keyring, TokenKey

VERSION = 1
SIG_BYTES = 16
_HEAD = struct.Struct(">BB4sI16s")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class TokenKind(StrEnum):
    UNSUBSCRIBE = "u"
    PREFERENCES = "p"
    CONFIRM = "c"
    EXPORT = "x"
    ERASE = "e"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    public_id: UUID
    topic: str | None = None
    campaign: str | None = None
    issued_at: datetime | None = None


def _tag(key: TokenKey) -> bytes:
    return hashlib.sha256(key.id.encode()).digest()[:4]


def _short(value: str | None, what: str) -> bytes:
    raw = (value or "").encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"token {what} longer than 255 bytes")
    return bytes([len(raw)]) + raw


def decode_token(text: str) -> bytes:
    """The bytes of an unpadded base64url token; InvalidToken unless ``text`` is exactly
    their one spelling (the decoder ignores the unused low bits of the last character, so
    without that check a few altered tokens would still verify)."""
    if not _BASE64URL.fullmatch(text):
        raise InvalidToken("not a valid link")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("not a valid link") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise InvalidToken("not a valid link")
    return raw


class TokenSigner:
    def __init__(self, keyring: Keyring, settings: Settings) -> None:
        if not keyring.token_keys:
            raise TactError("the keyring has no token key")
        self._primary = keyring.token_keys[0]
        self._primary_tag = _tag(self._primary)
        grace = timedelta(days=settings.token_grace_days)
        self._keys = {
            _tag(k): k.key
            for i, k in enumerate(keyring.token_keys)
            if i == 0 or _retired_recently(keyring.token_keys, i, grace)
        }
        self._lifetimes = {
            TokenKind.UNSUBSCRIBE: timedelta(days=settings.link_token_days),
            TokenKind.PREFERENCES: timedelta(days=settings.link_token_days),
            TokenKind.CONFIRM: timedelta(days=settings.confirm_token_days),
            TokenKind.EXPORT: timedelta(minutes=settings.sensitive_token_minutes),
            TokenKind.ERASE: timedelta(minutes=settings.sensitive_token_minutes),
        }

    def sign(self, token: Token, *, now: datetime | None = None) -> str:
        issued = token.issued_at or now or datetime.now(UTC)
        body = (
            _HEAD.pack(
                VERSION,
                ord(token.kind.value),
                self._primary_tag,
                int(issued.timestamp() // 60),
                token.public_id.bytes,
            )
            + _short(token.topic, "topic")
            + _short(token.campaign, "campaign")
        )
        sig = hmac.new(self._primary.key, body, hashlib.sha256).digest()[:SIG_BYTES]
        return base64.urlsafe_b64encode(body + sig).rstrip(b"=").decode("ascii")

    def verify(
        self, text: str, kinds: set[TokenKind] | TokenKind, *, now: datetime | None = None
    ) -> Token:
        allowed = {kinds} if isinstance(kinds, TokenKind) else kinds
        if not text or len(text) > 1024:
            raise InvalidToken("not a valid link")
        raw = decode_token(text)
        if len(raw) < _HEAD.size + 2 + SIG_BYTES:
            raise InvalidToken("not a valid link")
        body, sig = raw[:-SIG_BYTES], raw[-SIG_BYTES:]
        version, kind_byte, tag, minutes, public = _HEAD.unpack_from(body)
        key = self._keys.get(tag)
        expected = hmac.new(key or b"\0" * 32, body, hashlib.sha256).digest()[:SIG_BYTES]
        if not hmac.compare_digest(expected, sig) or key is None or version != VERSION:
            raise InvalidToken("not a valid link")
        try:
            kind = TokenKind(chr(kind_byte))
            topic, rest = _read_short(body[_HEAD.size :])
            campaign, rest = _read_short(rest)
        except (ValueError, IndexError):
            raise InvalidToken("not a valid link") from None
        if rest or kind not in allowed:
            raise InvalidToken("this link cannot be used here")
        issued = datetime.fromtimestamp(minutes * 60, UTC)
        if (now or datetime.now(UTC)) - issued > self._lifetimes[kind]:
            raise ExpiredToken("this link has expired; request a new one")
        return Token(kind, UUID(bytes=public), topic or None, campaign or None, issued)


def _read_short(data: bytes) -> tuple[str, bytes]:
    n = data[0]
    if len(data) < 1 + n:
        raise ValueError("short")
    return data[1 : 1 + n].decode("utf-8"), data[1 + n :]


def _created(key: TokenKey) -> datetime | None:
    try:
        created = datetime.fromisoformat(key.created)
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _retired_recently(keys: list[TokenKey], index: int, grace: timedelta) -> bool:
    """A key keeps verifying until ``grace`` after the key that replaced it was created."""
    successor = _created(keys[index - 1]) if index > 0 else None
    return successor is None or datetime.now(UTC) - successor <= grace
