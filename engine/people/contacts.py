"""Creating a single contact outside an import (a sign-up form, ``tact contacts subscribe``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from engine.errors import ContactErased
from engine.models import ContactStatus, SuppressionReason
from engine.vault.addresses import normalize_address
from engine.vault.vault import ContactCipher, Vault, contacts, data_keys, suppressions


@dataclass(frozen=True)
class EnsuredContact:
    id: UUID
    public_id: UUID
    created: bool


def ensure_contact(
    conn: Connection,
    vault: Vault,
    address: str,
    *,
    locale: str | None = None,
    timezone: str | None = None,
) -> EnsuredContact:
    """The contact with this address, created (address only) if new.

    Raises InvalidAddress for a bad address and ContactErased for an erased one:
    an erased person is never re-created by anyone but themselves through a new
    explicit sign-up, which Tact does not offer for an erased address.
    """
    normalized = normalize_address(address)
    index = vault.blind_index(normalized)
    row = conn.execute(
        select(contacts.c.id, contacts.c.public_id).where(contacts.c.blind_index == index)
    ).first()
    if row is not None:
        return EnsuredContact(row.id, row.public_id, created=False)
    erased = conn.execute(
        select(suppressions.c.reason).where(suppressions.c.address_hash == index)
    ).scalar()
    if erased == SuppressionReason.ERASED:
        raise ContactErased("that address was erased and cannot be added again")
    contact_id = uuid.uuid4()
    public_id = uuid.uuid4()
    key_row, cipher = vault.new_contact_key(contact_id)
    now = datetime.now(UTC)
    try:
        # A savepoint: when two first sign-ups of one new address race (PostgreSQL),
        # the loser's insert fails on the unique blind index and it takes the winner's row.
        with conn.begin_nested():
            _insert(
                conn,
                key_row,
                contact_id,
                public_id,
                index,
                cipher,
                normalized,
                locale,
                timezone,
                now,
            )
    except IntegrityError:
        row = conn.execute(
            select(contacts.c.id, contacts.c.public_id).where(contacts.c.blind_index == index)
        ).first()
        if row is None:
            raise
        return EnsuredContact(row.id, row.public_id, created=False)
    return EnsuredContact(contact_id, public_id, created=True)


def _insert(
    conn: Connection,
    key_row: dict[str, Any],
    contact_id: UUID,
    public_id: UUID,
    index: bytes,
    cipher: ContactCipher,
    normalized: str,
    locale: str | None,
    timezone: str | None,
    now: datetime,
) -> None:
    conn.execute(insert(data_keys).values(**key_row))
    conn.execute(
        insert(contacts).values(
            id=contact_id,
            public_id=public_id,
            blind_index=index,
            status=ContactStatus.ACTIVE,
            key_version=cipher.key_version,
            email_ct=cipher.seal("email_ct", normalized),
            attributes={},
            locale=locale,
            timezone=timezone,
            created_at=now,
            updated_at=now,
        )
    )
