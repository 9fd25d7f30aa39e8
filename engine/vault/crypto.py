"""AES-256-GCM primitives with associated data that says where a ciphertext belongs.

Wire format of every ciphertext: ``0x01 || nonce (12 random bytes) || ciphertext+tag``.
The associated data is never stored: it is rebuilt from the place the ciphertext
is read from (table, column, contact id, data-key version), so a ciphertext
copied to another row or column fails to authenticate.

Random 96-bit nonces are safe for far more than the encryptions one data key
ever sees (a handful of fields per contact), and each KEK wraps one data key
per contact, well below the 2^32 limit of NIST SP 800-38D before rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import DecryptionError

VERSION = b"\x01"
NONCE_BYTES = 12


def field_ad(table: str, column: str, contact_id: UUID, key_version: int, row: str = "") -> bytes:
    """Associated data binding a field ciphertext to its table, column, row and key version.

    ``row`` names the row further when a contact owns several rows of a table
    (e.g. the sequence number of a consent event).
    """
    return f"tact/field|{table}|{column}|{contact_id.hex}|{row}|{key_version}".encode("ascii")


def wrap_ad(contact_id: UUID, key_version: int, kek_id: str) -> bytes:
    """Associated data binding a wrapped data key to its contact, version and KEK."""
    return f"tact/dek|{contact_id.hex}|{key_version}|{kek_id}".encode("ascii")


def check_ad(kek_id: str) -> bytes:
    return f"tact/kek-check|{kek_id}".encode("ascii")


def seal(aead: AESGCM, plaintext: bytes, ad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + aead.encrypt(nonce, plaintext, ad)


def unseal(aead: AESGCM, blob: bytes, ad: bytes, *, what: str) -> bytes:
    """Decrypt, or raise DecryptionError naming the place (never the bytes)."""
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != VERSION:
        raise DecryptionError(f"{what}: not a Tact ciphertext")
    try:
        return aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], ad)
    except InvalidTag:
        raise DecryptionError(
            f"{what}: the ciphertext does not open here (altered, or moved from another "
            "row or column, or the key is wrong)"
        ) from None


def normalize_for_index(address: str) -> str:
    """The form two addresses share when they reach the same mailbox in practice.

    Input is already normalized by email-validator; local parts are compared
    case-insensitively because virtually every provider does so.
    """
    return unicodedata.normalize("NFC", address).strip().lower()


def keyed_hash(key: bytes, value: str) -> bytes:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()
