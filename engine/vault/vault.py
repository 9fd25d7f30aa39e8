"""The vault: the only code that holds keys or turns ciphertext into personal data.

Envelope encryption: each contact has its own random 256-bit data key, sealed
with AES-256-GCM; the data key is wrapped by the primary key-encryption key
(KEK) and stored in the keystore. Other code asks the vault for the fields it
needs, for a stated purpose, and never sees a key or a ciphertext.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, select, update

from engine.config import Settings
from engine.errors import ContactErased, ContactNotFound, DecryptionError, KeyMismatchError
from engine.models import (
    Contact,
    ContactStatus,
    DataKey,
    KekCheck,
    Suppression,
    SuppressionReason,
)
from engine.vault import crypto
from engine.vault.addresses import normalize_address
from engine.vault.keyring import Keyring, load_keyring

log = logging.getLogger(__name__)

#: Personal field name → ciphertext column of ``contacts``.
FIELD_COLUMNS: dict[str, str] = {
    "email": "email_ct",
    "first_name": "first_name_ct",
    "last_name": "last_name_ct",
    "phone": "phone_ct",
    "attributes": "attributes_ct",
}
_CHECK_PLAINTEXT = b"tact keyring check v1"

contacts = Contact.__table__  # type: ignore[attr-defined]
data_keys = DataKey.__table__  # type: ignore[attr-defined]
kek_checks = KekCheck.__table__  # type: ignore[attr-defined]
suppressions = Suppression.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PersonalData:
    """Decrypted fields of one contact; only those asked for are filled."""

    contact_id: UUID
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never let a stray log line print the fields
        return f"PersonalData(contact_id={self.contact_id}, <redacted>)"


class ContactCipher:
    """One contact's data key, in use for sealing or opening that contact's fields."""

    __slots__ = ("_aead", "contact_id", "key_version")

    def __init__(self, contact_id: UUID, key_version: int, data_key: bytes) -> None:
        self.contact_id = contact_id
        self.key_version = key_version
        self._aead = AESGCM(data_key)

    def seal(
        self, column: str, value: str | None, *, table: str = "contacts", row: str = ""
    ) -> bytes | None:
        if value is None:
            return None
        ad = crypto.field_ad(table, column, self.contact_id, self.key_version, row)
        return crypto.seal(self._aead, value.encode("utf-8"), ad)

    def open(
        self, column: str, blob: bytes | None, *, table: str = "contacts", row: str = ""
    ) -> str | None:
        if blob is None:
            return None
        ad = crypto.field_ad(table, column, self.contact_id, self.key_version, row)
        what = f"{table}.{column} of contact {self.contact_id}"
        return crypto.unseal(self._aead, blob, ad, what=what).decode("utf-8")

    def seal_json(self, column: str, value: dict[str, Any]) -> bytes | None:
        if not value:
            return None
        return self.seal(column, json.dumps(value, ensure_ascii=False, sort_keys=True))

    def open_json(self, column: str, blob: bytes | None) -> dict[str, Any]:
        text = self.open(column, blob)
        return json.loads(text) if text else {}


class Vault:
    """Keys in memory, and the operations that need them."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._keks = {k.id: AESGCM(k.key) for k in keyring.active_keks()}

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(load_keyring(settings))

    # -- addresses ----------------------------------------------------------------------------

    def blind_index(self, normalized_address: str) -> bytes:
        """HMAC-SHA256 of the normalized address under the blind-index key."""
        return crypto.keyed_hash(
            self.keyring.blind_index_key, crypto.normalize_for_index(normalized_address)
        )

    def index_for(self, address: str) -> bytes:
        """Validate, normalize and index an address given by a person (CLI, web)."""
        return self.blind_index(normalize_address(address))

    # -- keyring against keystore -------------------------------------------------------------

    def verify(self, conn: Connection) -> None:
        """Refuse a keyring that does not belong to this database, in plain words."""
        where = str(self.keyring.source) if self.keyring.source else "the keyring"
        known: set[str] = set()
        for row in conn.execute(select(kek_checks).where(kek_checks.c.retired_at.is_(None))):
            known.add(row.kek_id)
            aead = self._keks.get(row.kek_id)
            if aead is None:
                raise KeyMismatchError(
                    f"This database's data keys are wrapped by key {row.kek_id}, which is not "
                    f"an active key in {where}. Use the keyring this database was created with."
                )
            try:
                crypto.unseal(aead, row.check_ct, crypto.check_ad(row.kek_id), what="key check")
            except DecryptionError:
                raise KeyMismatchError(
                    f"Key {row.kek_id} in {where} is not the key this database was created "
                    "with (its check value does not open). Use the right keyring."
                ) from None
        if self.keyring.primary_kek_id not in known:
            self.register_primary(conn)

    def register_primary(self, conn: Connection) -> None:
        kek_id = self.keyring.primary_kek_id
        check = crypto.seal(self._keks[kek_id], _CHECK_PLAINTEXT, crypto.check_ad(kek_id))
        conn.execute(kek_checks.insert().values(kek_id=kek_id, check_ct=check, created_at=_now()))

    # -- data keys ----------------------------------------------------------------------------

    def new_contact_key(
        self, contact_id: UUID, key_version: int = 1
    ) -> tuple[dict[str, Any], ContactCipher]:
        """A fresh data key: the keystore row to insert, and the cipher to seal fields with."""
        dk = secrets.token_bytes(32)
        kek_id = self.keyring.primary_kek_id
        wrapped = crypto.seal(
            self._keks[kek_id], dk, crypto.wrap_ad(contact_id, key_version, kek_id)
        )
        row = {
            "contact_id": contact_id,
            "key_version": key_version,
            "kek_id": kek_id,
            "wrapped": wrapped,
            "created_at": _now(),
        }
        return row, ContactCipher(contact_id, key_version, dk)

    def unwrap(self, contact_id: UUID, key_version: int, kek_id: str, wrapped: bytes) -> bytes:
        aead = self._keks.get(kek_id)
        if aead is None:
            raise KeyMismatchError(
                f"The data key of contact {contact_id} is wrapped by key {kek_id}, which is not "
                "an active key in the keyring (was a rotation finished with another keyring?)."
            )
        return crypto.unseal(
            aead,
            wrapped,
            crypto.wrap_ad(contact_id, key_version, kek_id),
            what=f"data key of contact {contact_id}",
        )

    def wrap(self, contact_id: UUID, key_version: int, data_key: bytes) -> tuple[str, bytes]:
        kek_id = self.keyring.primary_kek_id
        ad = crypto.wrap_ad(contact_id, key_version, kek_id)
        return kek_id, crypto.seal(self._keks[kek_id], data_key, ad)

    def ciphers(
        self, conn: Connection, keys: Iterable[tuple[UUID, int]]
    ) -> dict[UUID, ContactCipher]:
        """Ciphers for the given (contact id, key version) pairs; erased contacts are absent."""
        wanted = dict(keys)
        out: dict[UUID, ContactCipher] = {}
        ids = list(wanted)
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            rows = conn.execute(
                select(
                    data_keys.c.contact_id,
                    data_keys.c.key_version,
                    data_keys.c.kek_id,
                    data_keys.c.wrapped,
                ).where(data_keys.c.contact_id.in_(chunk))
            )
            for cid, version, kek_id, wrapped in rows:
                if wanted.get(cid) != version:
                    continue
                out[cid] = ContactCipher(cid, version, self.unwrap(cid, version, kek_id, wrapped))
        return out

    # -- reading ------------------------------------------------------------------------------

    def read(
        self,
        conn: Connection,
        contact_ids: Sequence[UUID],
        fields: Sequence[str],
        *,
        purpose: str,
    ) -> dict[UUID, PersonalData]:
        """Decrypt ``fields`` of these contacts for ``purpose``. Erased contacts are left out."""
        unknown = set(fields) - set(FIELD_COLUMNS)
        if unknown:
            raise ValueError(f"not personal fields: {sorted(unknown)}")
        columns = [contacts.c[FIELD_COLUMNS[f]] for f in fields]
        out: dict[UUID, PersonalData] = {}
        for start in range(0, len(contact_ids), 500):
            chunk = list(contact_ids[start : start + 500])
            rows = conn.execute(
                select(contacts.c.id, contacts.c.key_version, *columns).where(
                    contacts.c.id.in_(chunk), contacts.c.status == ContactStatus.ACTIVE
                )
            ).all()
            ciphers = self.ciphers(conn, ((r[0], r[1]) for r in rows))
            for row in rows:
                cipher = ciphers.get(row[0])
                if cipher is None:
                    continue  # data key destroyed: erased between the two reads
                values: dict[str, Any] = {}
                for name, blob in zip(fields, row[2:], strict=True):
                    column = FIELD_COLUMNS[name]
                    if name == "attributes":
                        values[name] = cipher.open_json(column, blob)
                    else:
                        values[name] = cipher.open(column, blob)
                out[row[0]] = PersonalData(contact_id=row[0], **values)
        log.debug("vault read: %d contacts, fields=%s, purpose=%s", len(out), list(fields), purpose)
        return out

    def find(self, conn: Connection, address: str) -> Any:
        """The contact row for an address a person typed; ContactNotFound or ContactErased."""
        row = conn.execute(
            select(contacts).where(contacts.c.blind_index == self.index_for(address))
        ).first()
        if row is None:
            erased = conn.execute(
                select(suppressions.c.reason).where(
                    suppressions.c.address_hash == self.index_for(address)
                )
            ).scalar()
            if erased == SuppressionReason.ERASED:
                raise ContactErased("that address was erased; nothing about it is held")
            raise ContactNotFound("no contact with that address")
        return row

    def mark_rewrapped(
        self, conn: Connection, contact_id: UUID, version: int, kek_id: str, wrapped: bytes
    ) -> None:
        conn.execute(
            update(data_keys)
            .where(data_keys.c.contact_id == contact_id, data_keys.c.key_version == version)
            .values(kek_id=kek_id, wrapped=wrapped, rewrapped_at=_now())
        )


def _now() -> datetime:
    return datetime.now(UTC)
