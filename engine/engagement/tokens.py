"""Click tokens: compact, signed, and holding nothing about the contact.

Layout before base64url (no padding), 39 bytes, 52 characters::

    version (1) | campaign id (4) | variant key (4) | link index (2)
    | message key (8) | composed at, unix seconds (4)
    | HMAC-SHA256(click key, everything before)[:16]

The click key is derived from a token key of the keyring under its own label
(``tact-engagement-click/1``), as the CSRF key and the link tokens' keys are, so it
never appears anywhere and rotates with the token keys. The primary key signs;
every token key of the keyring verifies (there is no key tag: each is tried, in
constant time per key), so a mail sent before a rotation keeps its links working.

The per-message key (:meth:`ClickSigner.message_key`) is a keyed hash of the
Message-ID (fixed per outbox row, so a re-send carries the same key), under another
label: it is not the contact id and cannot be computed from it without the keyring.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.errors import InvalidToken, TactError
from engine.links.tokens import decode_token
from engine.vault.keyring import Keyring

VERSION = 1
SIG_BYTES = 16
MESSAGE_KEY_BYTES = 8
_BODY = struct.Struct(">BIIH8sI")
#: The exact length of a click token's text: anything else is refused before decoding.
TOKEN_CHARS = len(base64.urlsafe_b64encode(b"\0" * (_BODY.size + SIG_BYTES)).rstrip(b"="))
_CLICK_LABEL = b"tact-engagement-click/1"
_MESSAGE_LABEL = b"tact-engagement-message/1"

#: Largest values the fields hold.
MAX_CAMPAIGN = 2**32 - 1
MAX_VARIANT = 2**31 - 1
MAX_LINK = 2**16 - 1


@dataclass(frozen=True)
class ClickToken:
    campaign_id: int
    variant_key: int
    link_index: int
    message_key: bytes
    #: When the message was composed (whole seconds): the scanner check measures from it.
    composed_at: datetime


def _derive(token_key: bytes, label: bytes) -> bytes:
    return hmac.new(token_key, label, hashlib.sha256).digest()


class ClickSigner:
    """Signs click tokens with the primary token key; verifies with every token key."""

    def __init__(self, keyring: Keyring) -> None:
        if not keyring.token_keys:
            raise TactError("the keyring has no token key")
        primary = keyring.token_keys[0].key
        self._sign_key = _derive(primary, _CLICK_LABEL)
        self._message_key = _derive(primary, _MESSAGE_LABEL)
        self._verify_keys = [_derive(k.key, _CLICK_LABEL) for k in keyring.token_keys]

    def message_key(self, message_id: str) -> bytes:
        """The per-message key of one message (its Message-ID, keyed-hashed)."""
        digest = hmac.new(self._message_key, message_id.encode("utf-8"), hashlib.sha256)
        return digest.digest()[:MESSAGE_KEY_BYTES]

    def sign(self, token: ClickToken) -> str:
        if len(token.message_key) != MESSAGE_KEY_BYTES:
            raise ValueError("a message key is 8 bytes")
        body = _BODY.pack(
            VERSION,
            token.campaign_id,
            token.variant_key,
            token.link_index,
            token.message_key,
            int(token.composed_at.timestamp()),
        )
        return self.sign_body(body)

    def sign_body(self, body: bytes) -> str:
        """The token text of an already packed body (the rewriter packs its own)."""
        sig = hmac.new(self._sign_key, body, hashlib.sha256).digest()[:SIG_BYTES]
        return base64.urlsafe_b64encode(body + sig).rstrip(b"=").decode("ascii")

    def verify(self, text: str) -> ClickToken:
        """The token's fields; ``InvalidToken`` for anything malformed, forged or altered."""
        if len(text) != TOKEN_CHARS:
            raise InvalidToken("not a valid link")
        raw = decode_token(text)
        body, sig = raw[:-SIG_BYTES], raw[-SIG_BYTES:]
        good = False
        for key in self._verify_keys:
            expected = hmac.new(key, body, hashlib.sha256).digest()[:SIG_BYTES]
            good |= hmac.compare_digest(expected, sig)
        if not good:
            raise InvalidToken("not a valid link")
        version, campaign, variant, link, message_key, composed = _BODY.unpack(body)
        if version != VERSION:
            raise InvalidToken("not a valid link")
        return ClickToken(
            campaign_id=campaign,
            variant_key=variant,
            link_index=link,
            message_key=message_key,
            composed_at=datetime.fromtimestamp(composed, UTC),
        )


#: The packed body's layout (the rewriter packs bodies itself, one per link).
BODY = _BODY
