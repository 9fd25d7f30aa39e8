"""Mail that reaches Tact's mailboxes: the mailto: unsubscribe, bounces and complaints.

The faces hand over the message's bytes (the CLI from a file or stdin, a mail
hook, later an HTTP webhook); the parsing and the consent or suppression changes
are in :mod:`engine.events`. Results carry counts and ids, never an address.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.db import writing
from engine.events.bounces import BounceCounts, ReportType, apply_bounce, parse_bounce
from engine.events.mailto import InboundStatus, UnsubscribeOutcome, handle_unsubscribe_email
from engine.runtime import Runtime

__all__ = [
    "MAX_MESSAGE_BYTES",
    "REFUSED",
    "BounceResult",
    "InboundStatus",
    "ReportType",
    "UnsubscribeOutcome",
    "UnsubscribeResult",
    "bounce",
    "unsubscribe",
]

#: Larger messages are neither unsubscribe requests nor reports: faces refuse them unparsed.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
#: Outcomes where the message carried no genuine token (a mail hook may bounce those).
REFUSED = frozenset(
    {InboundStatus.NO_TOKEN, InboundStatus.INVALID_TOKEN, InboundStatus.EXPIRED_TOKEN}
)


@dataclass(frozen=True)
class UnsubscribeResult:
    """What a message to the unsubscribe mailbox did."""

    outcome: UnsubscribeOutcome

    @property
    def refused(self) -> bool:
        """No genuine token: nothing changed, and the sender may be forged."""
        return self.outcome.status in REFUSED

    def as_dict(self) -> dict[str, str | list[str] | None]:
        outcome = self.outcome
        return {
            "status": str(outcome.status),
            "reason": outcome.reason,
            "contact_id": str(outcome.contact_id) if outcome.contact_id else None,
            "topic": outcome.topic,
            "withdrawn": list(outcome.withdrawn),
            "found_in": outcome.found_in,
        }


def unsubscribe(rt: Runtime, raw: bytes) -> UnsubscribeResult:
    """Withdraw what the signed token in this message names (RFC 2369 mailto:).

    The token is taken from the Subject, else the body, else an unsubscribe+TOKEN
    recipient. A message without a valid token changes nothing; it never raises for
    a bad message.
    """
    vault = rt.vault
    with writing(rt.engine) as conn:
        outcome = handle_unsubscribe_email(conn, vault, rt.settings, raw)
    return UnsubscribeResult(outcome)


@dataclass(frozen=True)
class BounceResult:
    """What a bounce or complaint did; ``counts`` is None for a message that is neither."""

    report_type: ReportType
    counts: BounceCounts | None

    @property
    def is_report(self) -> bool:
        return self.counts is not None

    def as_dict(self) -> dict[str, str | int]:
        doc: dict[str, str | int] = {"report_type": str(self.report_type)}
        if self.counts is not None:
            doc.update(self.counts.as_dict())
        return doc


def bounce(rt: Runtime, raw: bytes) -> BounceResult:
    """Apply a delivery status notification (RFC 3464) or feedback report (RFC 5965).

    Hard bounces and complaints suppress their address (by keyed hash, held or not);
    soft bounces are counted. Anything else changes nothing, and needs no keyring.
    """
    report = parse_bounce(raw)
    if report.report_type is ReportType.NOT_A_REPORT:
        return BounceResult(report.report_type, None)
    vault = rt.vault
    with writing(rt.engine) as conn:
        counts = apply_bounce(conn, vault, report)
    return BounceResult(report.report_type, counts)
