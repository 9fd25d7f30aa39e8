"""Bounces and complaints received by mail: parse them, then suppress accordingly.

Two report formats are understood, both ``multipart/report`` (RFC 6522):

- delivery status notifications (RFC 3464, ``report-type=delivery-status``): one
  block per recipient with Final-Recipient, Action, Status and Diagnostic-Code.
  ``failed`` with a 5.x.x status is a hard bounce, except 5.2.2 (mailbox full,
  transient by RFC 3463); ``delayed``, or a 4.x.x status, is a soft bounce;
  ``delivered``, ``relayed`` and ``expanded`` are not failures and are skipped.
- complaints in the Abuse Reporting Format (RFC 5965, ``report-type=feedback-report``):
  Feedback-Type abuse, fraud, virus or other is a complaint; the recipient is the
  Original-Rcpt-To field, else the To of the enclosed original message.
  ``not-spam`` and ``auth-failure`` (RFC 6591) are not complaints.

Hard bounces and complaints go on the suppression list by keyed hash (an address
Tact does not hold is suppressed too); soft bounces change nothing. The addresses
are needed to suppress, and that is their only use: they are never logged,
printed or put in an audit event, and the reports' reprs leave them out.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select

from engine.consent.suppression import suppress
from engine.errors import InvalidAddress
from engine.models import AuditEvent, EventType, SuppressionReason
from engine.vault import Vault
from engine.vault.vault import contacts

log = logging.getLogger(__name__)
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
#: Permanent by class but transient by meaning (RFC 3463 X.2.2: mailbox full).
_SOFT_PERMANENT = frozenset({"5.2.2"})


class BounceKind(StrEnum):
    HARD_BOUNCE = "hard-bounce"
    SOFT_BOUNCE = "soft-bounce"
    COMPLAINT = "complaint"


class ReportType(StrEnum):
    DELIVERY_STATUS = "delivery-status"
    FEEDBACK_REPORT = "feedback-report"
    NOT_A_REPORT = "not-a-report"


@dataclass(frozen=True)
class BounceEntry:
    address: str = field(repr=False)  # personal data: never in a repr, log or output
    kind: BounceKind
    status: str  # an RFC 3463 status (5.1.1) for a DSN; the Feedback-Type for a complaint


@dataclass(frozen=True)
class BounceReport:
    report_type: ReportType
    entries: tuple[BounceEntry, ...] = ()
    #: Failures or complaints whose recipient could not be found in the report.
    unidentified: int = 0


@dataclass
class BounceCounts:
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    #: Suppression entries added or strengthened.
    suppressed: int = 0
    #: Already suppressed at least as strongly.
    already_suppressed: int = 0
    #: Recipients that are not a valid address (nothing to suppress).
    invalid: int = 0
    unidentified: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def parse_bounce(raw: bytes) -> BounceReport:
    """What a DSN or ARF message reports; ``NOT_A_REPORT`` for anything else."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report" or not msg.is_multipart():
        return BounceReport(ReportType.NOT_A_REPORT)
    report_type = str(msg.get_param("report-type", "") or "").strip().lower()
    parts = [p for p in msg.get_payload() if isinstance(p, Message)]
    if report_type == ReportType.DELIVERY_STATUS:
        return _parse_dsn(parts)
    if report_type == ReportType.FEEDBACK_REPORT:
        return _parse_arf(parts)
    return BounceReport(ReportType.NOT_A_REPORT)


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\r?\n", text) if chunk]


def _address_field(value: str | None) -> str | None:
    """``rfc822; bob@example.com`` (DSN) or ``<bob@example.com>`` (ARF) to the bare address."""
    if not value:
        return None
    value = " ".join(str(value).split())
    kind, sep, rest = value.partition(";")
    if sep:
        if kind.strip().lower() != "rfc822":
            return None
        value = rest
    pairs = getaddresses([value.strip()])
    address = pairs[0][1].strip() if pairs else ""
    return address if "@" in address else None


def _parse_dsn(parts: list[Message]) -> BounceReport:
    status_part = next(
        (p for p in parts if p.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        return BounceReport(ReportType.DELIVERY_STATUS)
    entries: list[BounceEntry] = []
    unidentified = 0
    for block in _blocks(status_part)[1:]:  # the first block is per-message
        action = str(block.get("Action", "")).strip().lower()
        found = _STATUS.search(str(block.get("Status", "")))
        status = ".".join(found.groups()) if found else ""
        kind = _dsn_kind(action, status)
        if kind is None:
            continue
        address = _address_field(block.get("Final-Recipient")) or _address_field(
            block.get("Original-Recipient")
        )
        if address is None:
            unidentified += 1
            continue
        entries.append(BounceEntry(address, kind, status or action))
    return BounceReport(ReportType.DELIVERY_STATUS, tuple(entries), unidentified)


def _dsn_kind(action: str, status: str) -> BounceKind | None:
    if action in {"delivered", "relayed", "expanded"}:
        return None
    if action == "delayed" or status.startswith("4.") or status in _SOFT_PERMANENT:
        return BounceKind.SOFT_BOUNCE
    if status.startswith("5.") or action == "failed":
        return BounceKind.HARD_BOUNCE
    return None


def _parse_arf(parts: list[Message]) -> BounceReport:
    report = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if report is None:
        return BounceReport(ReportType.FEEDBACK_REPORT)
    blocks = _blocks(report)
    fields = blocks[0] if blocks else Message()
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback_type not in COMPLAINT_TYPES:
        return BounceReport(ReportType.FEEDBACK_REPORT)
    addresses = [a for a in map(_address_field, fields.get_all("Original-Rcpt-To") or []) if a]
    if not addresses:
        original = _original_headers(parts)
        if original is not None:
            addresses = [a for _, a in getaddresses(original.get_all("To") or []) if "@" in a]
    if not addresses:
        return BounceReport(ReportType.FEEDBACK_REPORT, (), 1)
    entries = tuple(BounceEntry(a, BounceKind.COMPLAINT, feedback_type) for a in addresses)
    return BounceReport(ReportType.FEEDBACK_REPORT, entries)


def _original_headers(parts: list[Message]) -> Message | None:
    for part in parts[2:] or parts[1:]:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return HeaderParser().parsestr(text.decode("utf-8", "replace"))
    return None


_REASONS = {
    BounceKind.HARD_BOUNCE: SuppressionReason.HARD_BOUNCE,
    BounceKind.COMPLAINT: SuppressionReason.COMPLAINT,
}


def apply_bounce(
    conn: Connection, vault: Vault, report: BounceReport, *, actor: str = "inbound"
) -> BounceCounts:
    """Suppress hard bounces and complaints (by blind index); count everything.

    Each suppression that changes the list writes a ``suppression.added`` audit event
    naming the contact by id when Tact holds it, and never the address.
    """
    counts = BounceCounts(unidentified=report.unidentified)
    seen: set[tuple[bytes, BounceKind]] = set()
    for entry in report.entries:
        if entry.kind is BounceKind.SOFT_BOUNCE:
            counts.soft_bounces += 1
            continue
        if entry.kind is BounceKind.HARD_BOUNCE:
            counts.hard_bounces += 1
        else:
            counts.complaints += 1
        try:
            index = vault.index_for(entry.address)
        except InvalidAddress:
            counts.invalid += 1
            continue
        if (index, entry.kind) in seen:
            counts.already_suppressed += 1
            continue
        seen.add((index, entry.kind))
        reason = _REASONS[entry.kind]
        if not suppress(conn, index, reason):
            counts.already_suppressed += 1
            continue
        counts.suppressed += 1
        contact_id = conn.execute(
            select(contacts.c.id).where(contacts.c.blind_index == index)
        ).scalar()
        detail: dict[str, Any] = {
            "reason": str(reason),
            "source": str(report.report_type),
            "status": entry.status,
            "known_contact": contact_id is not None,
        }
        conn.execute(
            insert(audit_t).values(
                occurred_at=datetime.now(UTC),
                action=EventType.SUPPRESSION_ADDED,
                actor=actor,
                contact_id=contact_id,
                detail=detail,
            )
        )
    log.info("bounce report %s applied: %s", report.report_type, counts.as_dict())
    return counts
