"""Erasure by crypto-shredding (GDPR Art. 17), and the export of everything held (Art. 20).

Erasing a contact deletes its data key from the keystore (overwritten on disk:
``secure_delete``), removes its blind index, ciphertexts and behavioural
history, and leaves a tombstone row with no personal data. Any copy of the
contact data taken before — a backup, a replica — holds ciphertext whose key no
longer exists, so it stays unreadable. The keyed hash of the address stays on
the suppression list, so a later import of that address is refused.

Given the Maildir outbox (``outbox_dir``), erasure also deletes the files of the
contact's campaign messages there (``engine.delivery.outbox_erasure``): a file
in the outbox is plaintext, which no key shredding reaches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update

from engine.consent.ledger import Source
from engine.consent.service import Origin, withdraw
from engine.consent.suppression import suppress
from engine.delivery.outbox_erasure import contact_message_ids, remove_messages
from engine.errors import ContactNotFound
from engine.models import (
    AuditEvent,
    ContactPreferences,
    ContactStatus,
    EngagementEvent,
    EventType,
    OptInRequest,
    Order,
    SegmentAssignment,
    SuppressionReason,
    TopicPreference,
)
from engine.people.sent_notices import notice_message_ids
from engine.vault.vault import FIELD_COLUMNS, Vault, contacts, data_keys

log = logging.getLogger(__name__)

orders_t = Order.__table__  # type: ignore[attr-defined]
engagement_t = EngagementEvent.__table__  # type: ignore[attr-defined]
preferences_t = ContactPreferences.__table__  # type: ignore[attr-defined]
topic_prefs_t = TopicPreference.__table__  # type: ignore[attr-defined]
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
optin_t = OptInRequest.__table__  # type: ignore[attr-defined]
segments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ErasureResult:
    contact_id: UUID | None
    already_erased: bool
    #: Files of the contact's messages deleted from the Maildir outbox.
    outbox_files_removed: int = 0


def erase_contact(
    conn: Connection, vault: Vault, address: str, *, actor: str, outbox_dir: Path | None = None
) -> ErasureResult:
    """Erase the contact with this address (or suppress it if unknown); idempotent.

    ``outbox_dir``: the Maildir outbox to delete the contact's messages from.
    """
    index = vault.index_for(address)
    row = conn.execute(select(contacts.c.id).where(contacts.c.blind_index == index)).first()
    added = suppress(conn, index, SuppressionReason.ERASED)
    if row is None:
        if added:
            _audit(conn, None, actor, {"known_contact": False})
        return ErasureResult(contact_id=None, already_erased=not added)
    removed = _shred(conn, vault, row.id, actor, outbox_dir)
    return ErasureResult(contact_id=row.id, already_erased=False, outbox_files_removed=removed)


def erase_contact_id(
    conn: Connection,
    vault: Vault,
    contact_id: UUID,
    *,
    actor: str,
    outbox_dir: Path | None = None,
) -> ErasureResult:
    """Erase a contact known by id (the web erasure link carries no address); idempotent.

    ContactNotFound if no contact ever had this id; an already erased contact
    is reported as such and nothing changes.
    """
    row = conn.execute(
        select(contacts.c.blind_index, contacts.c.status).where(contacts.c.id == contact_id)
    ).first()
    if row is None:
        raise ContactNotFound("no such contact")
    if row.status == ContactStatus.ERASED or row.blind_index is None:
        return ErasureResult(contact_id=contact_id, already_erased=True)
    suppress(conn, row.blind_index, SuppressionReason.ERASED)
    removed = _shred(conn, vault, contact_id, actor, outbox_dir)
    return ErasureResult(contact_id=contact_id, already_erased=False, outbox_files_removed=removed)


def _shred(
    conn: Connection, vault: Vault, contact_id: UUID, actor: str, outbox_dir: Path | None
) -> int:
    """Everything after the suppression: shared by erasure by address and by id.

    The caller has already put the keyed hash on the suppression list, so the
    address stays unmailable even though the blind index is cleared here. Returns
    the number of outbox files removed.
    """
    # The ledger keeps its proof of consent (pseudonymous; sealed fields die with the key),
    # and records that erasure ended every subscription.
    withdraw(conn, vault, contact_id, None, Origin(source=Source.ERASURE))
    index = conn.execute(select(contacts.c.blind_index).where(contacts.c.id == contact_id)).scalar()
    if index is not None:  # the opt-in rate limit's rows are keyed by the same hash
        conn.execute(delete(optin_t).where(optin_t.c.address_hash == index))
    conn.execute(delete(data_keys).where(data_keys.c.contact_id == contact_id))
    for table in (orders_t, engagement_t, preferences_t, topic_prefs_t, segments_t):
        conn.execute(delete(table).where(table.c.contact_id == contact_id))
    conn.execute(
        update(contacts)
        .where(contacts.c.id == contact_id)
        .values(
            blind_index=None,
            status=ContactStatus.ERASED,
            attributes={},
            locale=None,
            timezone=None,
            signup_at=None,
            erased_at=datetime.now(UTC),
            updated_at=datetime.now(UTC),
            **{column: None for column in FIELD_COLUMNS.values()},
        )
    )
    # The files go after every database change that could fail: a failure rolls the
    # erasure back with the files still in place, and a rerun does it all.
    removed = 0
    if outbox_dir is not None:
        ids = contact_message_ids(conn, contact_id) + notice_message_ids(conn, contact_id)
        removed = remove_messages(outbox_dir, ids)
    _audit(conn, contact_id, actor, {"known_contact": True, "outbox_files_removed": removed})
    log.info("contact %s erased (%d outbox files removed)", contact_id, removed)
    return removed


def _audit(conn: Connection, contact_id: UUID | None, actor: str, detail: dict[str, Any]) -> None:
    conn.execute(
        insert(audit_t).values(
            occurred_at=datetime.now(UTC),
            action=EventType.CONTACT_ERASED,
            actor=actor,
            contact_id=contact_id,
            detail=detail,
        )
    )
