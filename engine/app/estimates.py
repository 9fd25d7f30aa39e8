"""Estimate: whom a campaign would reach if it went out now, and what the gate would do.

Writes nothing (not even a decision or a cap reservation): it reads the campaign, the
audience a launch now would fan out to (``lifecycle.candidates``, the launch's own
query), and runs the policy chain over the facts the gate would load
(``engine.campaigns.forecast``: ``Chain.evaluate``, the same rules in the same order,
for the same campaign context). So the answer is the gate's, as of now; the gate still
decides again for each recipient at send time, and consent withdrawn in between wins.

Every contact of the campaign's segments is counted once, under the first rule that
objects (a suppressed contact who is also capped is "suppressed"), in one of these
outcomes: would send; deferred (quiet hours, a cap or cadence, the customer's pause:
sent later, when their slot comes); or skipped (suppressed, no consent for the topic,
past the deadline, a cap the campaign may not wait for).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from engine.campaigns import lifecycle
from engine.campaigns.forecast import forecast
from engine.policy import Action, Reason
from engine.runtime import Runtime

#: The groups an estimate counts in, for people: reason → group.
GROUPS: dict[str, str] = {
    Reason.OK: "send",
    Reason.TRANSACTIONAL_EXEMPT: "send",
    Reason.CONTACT_INACTIVE: "inactive",
    Reason.SUPPRESSED_UNSUBSCRIBED: "suppressed",
    Reason.SUPPRESSED_HARD_BOUNCE: "suppressed",
    Reason.SUPPRESSED_COMPLAINT: "suppressed",
    Reason.SUPPRESSED_ERASED: "suppressed",
    Reason.NO_CONSENT: "no-consent",
    Reason.CONSENT_PENDING: "no-consent",
    Reason.CONSENT_WITHDRAWN: "no-consent",
    Reason.CONSENT_EXPIRED: "no-consent",
    Reason.DEADLINE_PASSED: "deadline",
    Reason.PAUSED_BY_CUSTOMER: "paused",
    Reason.QUIET_HOURS: "quiet-hours",
    Reason.CAP_GLOBAL: "cap",
    Reason.CAP_MIN_GAP: "cap",
    Reason.CAP_TOPIC: "cap",
    Reason.CAP_CADENCE: "cap",
}


@dataclass(frozen=True)
class Outcome:
    """How many the gate would decide this way now (``action`` send, defer or skip)."""

    action: str
    reason: str
    group: str
    count: int


@dataclass(frozen=True)
class Estimate:
    campaign: str
    status: str
    topic: str
    #: When the estimate holds (UTC, ISO 8601).
    at: str
    #: Whom a launch now would write an outbox row for (the launch's audience query).
    recipients: int
    by_segment: dict[str, int]
    by_locale: dict[str, int]
    #: Every contact of the campaign's segments that the gate was asked about.
    considered: int
    would_send: int
    deferred: int
    skipped: int
    #: Per (action, reason), most first.
    outcomes: tuple[Outcome, ...]
    #: Per group (send, suppressed, no-consent, cap, quiet-hours, paused, deadline,
    #: inactive) and action: ``{"cap": {"defer": 3, "skip": 1}}``.
    by_group: dict[str, dict[str, int]]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def estimate(rt: Runtime, name: str, *, now: datetime | None = None) -> Estimate:
    """The campaign ``name`` as if it went out at ``now`` (default: now); writes nothing."""
    at = now or datetime.now(UTC)
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
        found = forecast(conn, rt.settings, row, at)
        conn.rollback()  # read-only: nothing to keep, on either database
    audience = [c for c in found if c.in_audience]
    by_segment = Counter(c.segment for c in audience)
    by_locale = Counter(c.locale or "unknown" for c in audience)
    verdicts = Counter((str(c.verdict.action), str(c.verdict.reason)) for c in found)
    actions = Counter(str(c.verdict.action) for c in found)
    groups: dict[str, Counter[str]] = {}
    for (action, reason), n in verdicts.items():
        groups.setdefault(GROUPS.get(reason, reason), Counter())[action] += n
    return Estimate(
        campaign=row.name,
        status=str(row.status),
        topic=row.topic,
        at=at.isoformat(),
        recipients=len(audience),
        by_segment=dict(sorted(by_segment.items())),
        by_locale=dict(sorted(by_locale.items())),
        considered=len(found),
        would_send=actions.get(Action.SEND, 0),
        deferred=actions.get(Action.DEFER, 0),
        skipped=actions.get(Action.SKIP, 0),
        outcomes=tuple(
            Outcome(action, reason, GROUPS.get(reason, reason), n)
            for (action, reason), n in sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        by_group={g: dict(sorted(c.items())) for g, c in sorted(groups.items())},
    )
