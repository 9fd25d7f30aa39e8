"""Contacts, as an operator handles them: import a file, show, export, erase, subscribe.

Each function takes the process's :class:`~engine.runtime.Runtime`, runs its own
transaction and returns a frozen dataclass. The faces format it: the CLI prints a
table or ``--json`` (:meth:`ContactStatus.as_dict` and friends), the REST API of
issue 13 serializes the same objects. The work itself is in :mod:`engine.people`
and :mod:`engine.notices.optin`; nothing here is written twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from engine.app.consent import LedgerEvent
from engine.audit import current_actor, record
from engine.consent import ledger
from engine.consent.ledger import Source
from engine.consent.service import Origin
from engine.db import writing
from engine.errors import ContactErased
from engine.models import ConsentState
from engine.models import ContactStatus as ModelContactStatus
from engine.notices.optin import OptInResult, request_subscription
from engine.people.erasure import ErasureResult, erase_contact, erase_contact_id
from engine.people.export import contact_status, export_contact
from engine.people.export import export_by_id as export_row
from engine.people.importer import ImportReport, import_file
from engine.people.status import row_by_id, status_of
from engine.runtime import Runtime

#: A value of a JSON document: what ``json.loads`` returns.
Json = str | int | float | bool | None | list["Json"] | dict[str, "Json"]

__all__ = [
    "ContactExport",
    "ContactStatus",
    "Decision",
    "Erased",
    "ErasureResult",
    "ImportResult",
    "Json",
    "LedgerEvent",
    "OptInResult",
    "Revealed",
    "TopicConsent",
    "consent_history_by_id",
    "erase",
    "erase_by_id",
    "export",
    "export_by_id",
    "import_contacts",
    "lookup",
    "reveal",
    "show",
    "status_by_id",
    "subscribe",
]


@dataclass(frozen=True)
class ImportResult:
    """One import run, counted over the whole run (a resumed run includes the earlier part)."""

    import_id: int
    source_name: str
    rows_read: int
    inserted: int
    updated: int
    rejected: int
    suppressed: int
    batches: int
    resumed_after_line: int
    rejects_path: Path | None
    reject_reasons: dict[str, int]
    seconds: float
    rows_per_second: float

    @classmethod
    def of(cls, report: ImportReport) -> ImportResult:
        """The engine's (mutable) report, frozen: the same fields, the reasons copied."""
        values = {f.name: getattr(report, f.name) for f in fields(cls)}
        return cls(**{**values, "reject_reasons": dict(report.reject_reasons)})


def import_contacts(
    rt: Runtime,
    path: Path,
    *,
    rejects_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int | None = None,
) -> ImportResult:
    """Import a CSV or JSONL file, upserting by address; an interrupted run resumes.

    ``progress`` receives the bytes consumed so far. Bad rows are listed (line and
    reason, never their content) in ``rejects_path`` (default under var/imports/).
    """
    report = import_file(
        rt.engine,
        rt.vault,
        rt.settings,
        path,
        rejects_path=rejects_path,
        progress=progress,
        batch_size=batch_size,
    )
    return ImportResult.of(report)


@dataclass(frozen=True)
class TopicConsent:
    """The consent state of one topic for one contact, as shown to the operator."""

    state: str
    since: str | None
    source: str | None
    regime: str | None
    expires_at: str | None
    cadence: str | None
    paused_until: str | None


@dataclass(frozen=True)
class Decision:
    """One recorded decision of the gate about this contact (newest first in a status)."""

    campaign: str | None
    action: str | None
    reason: str | None
    rule: str | None
    decided_at: str | None
    defer_until: str | None
    detail: dict[str, Json]


@dataclass(frozen=True)
class ContactStatus:
    """What ``tact contacts show`` prints: identity, profile counts, consent, suppression.

    Field order is the order shown; times are ISO 8601 text.
    """

    id: str
    public_id: str
    status: str
    name: str | None
    locale: str | None
    timezone: str | None
    signed_up: str | None
    created: str | None
    updated: str | None
    orders: int
    last_order: str | None
    engagement_events: int
    topics: dict[str, TopicConsent]
    personalization_opt_out: bool
    suppression: str | None
    last_decisions: list[Decision] = field(default_factory=list)

    def as_dict(self) -> dict[str, Json]:
        """The JSON document of ``--json`` (and the API)."""
        doc: dict[str, Json] = asdict(self)
        return doc


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _status(doc: dict[str, Any]) -> ContactStatus:
    return ContactStatus(
        id=doc["id"],
        public_id=doc["public_id"],
        status=doc["status"],
        name=doc["name"],
        locale=doc["locale"],
        timezone=doc["timezone"],
        signed_up=doc["signed_up"],
        created=doc["created"],
        updated=doc["updated"],
        orders=int(doc["orders"]),
        last_order=doc["last_order"],
        engagement_events=int(doc["engagement_events"]),
        topics={name: TopicConsent(**state) for name, state in doc["topics"].items()},
        personalization_opt_out=bool(doc["personalization_opt_out"]),
        suppression=doc["suppression"],
        last_decisions=[
            Decision(
                campaign=d["campaign"],
                action=d["action"],
                reason=d["reason"],
                rule=d["rule"],
                decided_at=_iso(d["decided_at"]),
                defer_until=_iso(d["defer_until"]),
                detail=d["detail"],
            )
            for d in doc["last_decisions"]
        ],
    )


def show(rt: Runtime, address: str) -> ContactStatus:
    """The contact with this address (a NotFound error if none is held)."""
    vault = rt.vault  # refuse missing or wrong keys before touching the database
    with rt.engine.begin() as conn:
        doc = contact_status(conn, vault, rt.settings, address)
    return _status(doc)


def lookup(rt: Runtime, address: str) -> ContactStatus:
    """The contact with this address, found through the blind index, without its name
    (``name`` is None): what the console and the API show to every role. ContactNotFound,
    or ContactErased for an erased address. Nothing is decrypted."""
    vault = rt.vault
    with rt.engine.connect() as conn:
        row = vault.find(conn, address)
        return _status(status_of(conn, rt.settings, row))


def status_by_id(rt: Runtime, contact_id: str) -> ContactStatus:
    """The contact with this id or public id, without its name (an erased contact is shown
    as its tombstone: status ``erased``, nothing personal). ContactNotFound otherwise."""
    with rt.engine.connect() as conn:
        return _status(status_of(conn, rt.settings, row_by_id(conn, contact_id)))


@dataclass(frozen=True)
class Revealed:
    """A contact's address and name, shown to a member of staff who asked (audited)."""

    contact_id: str
    email: str | None
    first_name: str | None
    last_name: str | None

    def as_dict(self) -> dict[str, Json]:
        doc: dict[str, Json] = asdict(self)
        return doc


def _active(conn: Connection, contact_id: str) -> Any:
    row = row_by_id(conn, contact_id)
    if row.status != ModelContactStatus.ACTIVE:
        raise ContactErased("that contact was erased; nothing about it is held")
    return row


def reveal(rt: Runtime, contact_id: str) -> Revealed:
    """The address and name of the contact with this id or public id, decrypted; the reveal
    is written to the audit log (``contact.revealed``, the contact's id and the actor, never
    what was shown). ContactNotFound, or ContactErased for an erased contact."""
    vault = rt.vault
    with writing(rt.engine) as conn:
        row = _active(conn, contact_id)
        personal = vault.read(
            conn, [row.id], ["email", "first_name", "last_name"], purpose="reveal"
        ).get(row.id)
        if personal is None:  # the data key went between the two reads: erased meanwhile
            raise ContactErased("that contact was erased; nothing about it is held")
        record(
            conn,
            "contact.revealed",
            datetime.now(UTC),
            contact_id=row.id,
            fields=["email", "first_name", "last_name"],
        )
    return Revealed(str(row.id), personal.email, personal.first_name, personal.last_name)


@dataclass(frozen=True)
class ContactExport:
    """Everything held about one person, decrypted (GDPR Art. 20).

    ``document`` is the export in its own versioned format (``format``:
    ``tact-export/1``, defined by :mod:`engine.people.export`): a portable JSON
    document handed to the person, not a view of our rows.
    """

    contact_id: str
    document: dict[str, Json]

    def to_json(self) -> str:
        return json.dumps(self.document, ensure_ascii=False, indent=2)

    def as_dict(self) -> dict[str, Json]:
        return {"contact_id": self.contact_id, "document": self.document}


def export(rt: Runtime, address: str, *, actor: str) -> ContactExport:
    """The export of the contact with this address; the access is audited under ``actor``."""
    vault = rt.vault
    with rt.engine.begin() as conn:
        document = export_contact(conn, vault, rt.settings, address, actor=actor)
    contact = document.get("contact")
    contact_id = str(contact.get("id", "")) if isinstance(contact, dict) else ""
    return ContactExport(contact_id=contact_id, document=document)


def erase(rt: Runtime, address: str, *, actor: str) -> ErasureResult:
    """Erase for good: the data key is destroyed; the address stays suppressed (keyed hash).

    The contact's messages still waiting in the Maildir outbox are deleted too.
    """
    vault = rt.vault
    with writing(rt.engine) as conn:
        return erase_contact(
            conn, vault, address, actor=actor, outbox_dir=rt.settings.resolved_outbox_dir
        )


def export_by_id(rt: Runtime, contact_id: str) -> ContactExport:
    """The export of the contact with this id or public id, audited as :func:`export` is
    (``contact.exported``) under the current actor. ContactNotFound or ContactErased."""
    vault = rt.vault
    with writing(rt.engine) as conn:
        row = _active(conn, contact_id)
        document = export_row(conn, vault, rt.settings, row, actor=current_actor())
    return ContactExport(contact_id=str(row.id), document=document)


@dataclass(frozen=True)
class Erased(ErasureResult):
    """An erasure's result with its JSON form (the id as text)."""

    def as_dict(self) -> dict[str, Json]:
        return {
            "contact_id": str(self.contact_id) if self.contact_id else None,
            "already_erased": self.already_erased,
            "outbox_files_removed": self.outbox_files_removed,
        }


def erase_by_id(rt: Runtime, contact_id: str) -> ErasureResult:
    """Erase the contact with this id or public id for good, as :func:`erase` does, audited
    under the current actor; an erased one is reported ``already_erased``. ContactNotFound
    for an id no contact ever had."""
    vault = rt.vault
    with writing(rt.engine) as conn:
        row = row_by_id(conn, contact_id)
        result = erase_contact_id(
            conn,
            vault,
            row.id,
            actor=current_actor(),
            outbox_dir=rt.settings.resolved_outbox_dir,
        )
    return Erased(result.contact_id, result.already_erased, result.outbox_files_removed)


def consent_history_by_id(rt: Runtime, contact_id: str) -> tuple[LedgerEvent, ...]:
    """The consent ledger of the contact with this id or public id, oldest first (an erased
    contact's ledger stays: it is the pseudonymous proof of what was agreed)."""
    with rt.engine.connect() as conn:
        row = row_by_id(conn, contact_id)
        return tuple(LedgerEvent(**event) for event in ledger.history(conn, row.id))


def subscribe(rt: Runtime, address: str, topic: str, *, locale: str | None = None) -> OptInResult:
    """Subscribe an address to a topic as an operator action (source "admin").

    A double opt-in topic stays pending and a confirmation email goes out through a
    transport of its own (opened and closed by the sending path); the others are
    subscribed at once. ``result.state`` says which.
    """
    vault = rt.vault
    with writing(rt.engine) as conn:
        return request_subscription(
            conn,
            vault,
            rt.settings,
            address,
            topic,
            Origin(source=Source.ADMIN),
            transport=rt.new_transport(),
            locale=locale,
        )


#: Re-exported so the faces can tell the outcomes apart without importing engine.models.
SUBSCRIBED = ConsentState.SUBSCRIBED
