"""TOTP (RFC 6238, SHA-1, 6 digits, 30 s): the optional second factor of a staff login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote

STEP = 30
DIGITS = 6


def new_secret() -> str:
    """A random 160-bit secret in base32, as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def code_at(secret: str, moment: float) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    counter = struct.pack(">Q", int(moment // STEP))
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def verify(secret: str, code: str, *, moment: float | None = None, window: int = 1) -> bool:
    """True if ``code`` is the code of this step or of ``window`` steps either side."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return False
    now = time.time() if moment is None else moment
    return any(
        hmac.compare_digest(code_at(secret, now + k * STEP), code)
        for k in range(-window, window + 1)
    )


def provisioning_uri(secret: str, label: str, issuer: str = "Tact") -> str:
    return (
        f"otpauth://totp/{quote(issuer)}:{quote(label)}?secret={secret}"
        f"&issuer={quote(issuer)}&period={STEP}&digits={DIGITS}"
    )
