"""The gate's shared vocabulary: what it decided, and why (one ``Reason`` per rule outcome).

``Reason`` holds the built-in rules' reasons. A new rule may name its own in its
file (a ``StrEnum`` of its outcomes): a ``Verdict`` takes any ``StrEnum``, and what
is stored and reported is its value. Values must not collide with ``Reason``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Action(StrEnum):
    SEND = "send"
    DEFER = "defer"
    SKIP = "skip"


class Reason(StrEnum):
    OK = "ok"
    TRANSACTIONAL_EXEMPT = "transactional-exempt"
    CONTACT_INACTIVE = "contact-inactive"
    SUPPRESSED_UNSUBSCRIBED = "suppressed-unsubscribed"
    SUPPRESSED_HARD_BOUNCE = "suppressed-hard-bounce"
    SUPPRESSED_COMPLAINT = "suppressed-complaint"
    SUPPRESSED_ERASED = "suppressed-erased"
    NO_CONSENT = "no-consent"
    CONSENT_PENDING = "consent-pending"
    CONSENT_WITHDRAWN = "consent-withdrawn"
    CONSENT_EXPIRED = "consent-expired"
    PAUSED_BY_CUSTOMER = "paused-by-customer"
    QUIET_HOURS = "quiet-hours"
    CAP_GLOBAL = "cap-global"
    CAP_MIN_GAP = "cap-min-gap"
    CAP_TOPIC = "cap-topic"
    CAP_CADENCE = "cap-cadence"
    DEADLINE_PASSED = "deadline-passed"


@dataclass(frozen=True)
class Verdict:
    """One decision. ``defer_until`` (UTC) is set only when ``action`` is defer."""

    action: Action
    reason: StrEnum
    defer_until: datetime | None
    rule: str

    @classmethod
    def skip(cls, reason: StrEnum, rule: str) -> Verdict:
        return cls(Action.SKIP, reason, None, rule)

    @classmethod
    def defer(cls, reason: StrEnum, until: datetime, rule: str) -> Verdict:
        return cls(Action.DEFER, reason, until, rule)
