"""What the sending path needs of one batch of recipients, read in three queries.

The declared fields from the vault (for a stated purpose), each contact's
segment, and the plain columns a message needs (public id for the links,
locale, blind index for a bounce's suppression). The campaign pipeline (its
sender) and the render benchmark read a batch this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from engine.segments import segment_for_contacts
from engine.vault import PersonalData, Vault
from engine.vault.vault import contacts


@dataclass(frozen=True)
class RecipientBatch:
    people: dict[UUID, PersonalData]
    segments: dict[UUID, str | None]
    #: contact id → row with public_id, locale, blind_index
    meta: dict[UUID, Any]


def load_recipients(
    conn: Connection, vault: Vault, ids: Sequence[UUID], fields: Sequence[str], *, purpose: str
) -> RecipientBatch:
    meta = {
        r.id: r
        for r in conn.execute(
            select(
                contacts.c.id, contacts.c.public_id, contacts.c.locale, contacts.c.blind_index
            ).where(contacts.c.id.in_(ids))
        )
    }
    return RecipientBatch(
        people=vault.read(conn, ids, fields, purpose=purpose),
        segments=segment_for_contacts(conn, ids),
        meta=meta,
    )
