"""The console's first page: where campaigns stand and what the last 30 days sent.

One read-only use-case, aggregated in SQL (a count per group, never rows loaded
into Python), on indexes that exist for it (migration 0008: outbox by status and
time, gate decisions by action and time, consent events by event and time, contacts
by status), so it stays fast with 1,000 campaigns and 100,000 contacts. Counts only:
no contact is named, not even by id.

"The last 30 days" are 30 whole UTC days, today included: ``sent_30d`` is the sum
of ``sent_by_day``, and every other figure counts over the same window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from engine.consent.ledger import Source
from engine.consent.service import personalization_opt_outs
from engine.consent.topics import RESERVED_SCOPES
from engine.models import (
    STANDARD_VERSION,
    Campaign,
    CampaignStatus,
    ConsentEventType,
    ConsentRecord,
    ContactStatus,
    GateDecision,
    OutboxRow,
    OutboxStatus,
    SegmentAssignment,
    Suppression,
    SuppressionReason,
)
from engine.policy.reasons import Action
from engine.runtime import Runtime
from engine.segments.store import latest_model
from engine.vault.vault import contacts

campaigns_t = Campaign.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
decisions_t = GateDecision.__table__  # type: ignore[attr-defined]
consent_t = ConsentRecord.__table__  # type: ignore[attr-defined]
suppressions_t = Suppression.__table__  # type: ignore[attr-defined]
assignments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]

DAYS = 30

__all__ = ["DAYS", "Dashboard", "dashboard"]


@dataclass(frozen=True)
class Dashboard:
    """Campaigns by status, and the last 30 days' outcomes; the size of each segment."""

    #: Every campaign status, 0 included, in the lifecycle's order.
    campaigns_by_status: dict[str, int]
    sent_30d: int
    #: ("2026-12-01", n) for each of the last 30 UTC days, oldest first (0 included).
    sent_by_day: list[tuple[str, int]]
    #: Outbox rows skipped in the window, by reason.
    skipped_by_reason: dict[str, int]
    #: Gate deferrals in the window, by reason (a recipient deferred twice counts twice).
    deferred_by_reason: dict[str, int]
    #: Consent withdrawals in the ledger (erasures left out: they are no unsubscribe).
    unsubscribes_30d: int
    #: Addresses suppressed for a hard bounce, or for a complaint, in the window.
    bounces_30d: int
    complaints_30d: int
    #: The latest build's segments (name, size), then ("standard", everyone else).
    segments: list[tuple[str, int]]
    #: The window: its first instant and ``now``.
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaigns_by_status": dict(self.campaigns_by_status),
            "sent_30d": self.sent_30d,
            "sent_by_day": [{"day": day, "sent": n} for day, n in self.sent_by_day],
            "skipped_by_reason": dict(self.skipped_by_reason),
            "deferred_by_reason": dict(self.deferred_by_reason),
            "unsubscribes_30d": self.unsubscribes_30d,
            "bounces_30d": self.bounces_30d,
            "complaints_30d": self.complaints_30d,
            "segments": [{"name": name, "size": n} for name, n in self.segments],
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def _sent_between(start: datetime, now: datetime, index: int) -> Any:
    """Outbox rows sent on the UTC day that begins at ``start`` (up to ``now`` on the last)."""
    end = (
        outbox_t.c.updated_at < start + timedelta(days=1)
        if index < DAYS - 1
        else outbox_t.c.updated_at <= now
    )
    return (
        select(func.count())
        .select_from(outbox_t)
        .where(outbox_t.c.status == OutboxStatus.SENT, outbox_t.c.updated_at >= start, end)
        .scalar_subquery()
    )


def _counts(conn: Connection, query: Any) -> dict[str, int]:
    return {str(key): int(n) for key, n in conn.execute(query).all() if key is not None}


def _segments(conn: Connection) -> list[tuple[str, int]]:
    """The latest build's segments and their sizes, then the standard audience: the figures
    of ``tact segments list`` (:func:`engine.segments.build.overview`), from one count per
    segment over the assignments' index rather than per (segment, source) over the rows."""
    stored = latest_model(conn)
    active = int(
        conn.execute(
            select(func.count())
            .select_from(contacts)
            .where(contacts.c.status != ContactStatus.ERASED)
        ).scalar_one()
    )
    if stored is None:
        return [(STANDARD_VERSION, active)]
    sizes: dict[str | None, int] = {
        segment: int(n)
        for segment, n in conn.execute(
            select(assignments_t.c.segment, func.count()).group_by(assignments_t.c.segment)
        ).all()
    }
    opted_out = len(personalization_opt_outs(conn))
    names = [str(r["name"]) for r in stored.summary.get("rules", [])]
    names += [c.name for c in stored.model.clusters if c.name]
    found = [(name, sizes.get(name, 0)) for name in names]
    unassigned = max(active - sum(sizes.values()) - opted_out, 0)
    found.append((STANDARD_VERSION, sizes.get(None, 0) + opted_out + unassigned))
    return found


def dashboard(rt: Runtime, *, now: datetime | None = None) -> Dashboard:
    """The dashboard as of ``now`` (default: the present)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    first = (now - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(first + timedelta(days=i)).date().isoformat() for i in range(DAYS)]
    with rt.engine.connect() as conn:
        by_status = _counts(
            conn,
            select(campaigns_t.c.status, func.count()).group_by(campaigns_t.c.status),
        )
        in_window = (outbox_t.c.updated_at >= first, outbox_t.c.updated_at <= now)
        # One range count per day on the (status, time) index: no function per row.
        per_day = conn.execute(
            select(*(_sent_between(first + timedelta(days=i), now, i) for i in range(DAYS)))
        ).one()
        skipped = _counts(
            conn,
            select(outbox_t.c.reason, func.count())
            .where(outbox_t.c.status == OutboxStatus.SKIPPED, *in_window)
            .group_by(outbox_t.c.reason),
        )
        deferred = _counts(
            conn,
            select(decisions_t.c.reason, func.count())
            .where(
                decisions_t.c.action == Action.DEFER,
                decisions_t.c.decided_at >= first,
                decisions_t.c.decided_at <= now,
            )
            .group_by(decisions_t.c.reason),
        )
        unsubscribes = conn.execute(
            select(func.count())
            .select_from(consent_t)
            .where(
                consent_t.c.event == ConsentEventType.WITHDRAWN,
                # An objection to profiling or a refusal of tracking is no unsubscribe.
                consent_t.c.topic.not_in(RESERVED_SCOPES),
                consent_t.c.occurred_at >= first,
                consent_t.c.occurred_at <= now,
                consent_t.c.source != Source.ERASURE,
            )
        ).scalar_one()
        suppressed = _counts(
            conn,
            select(suppressions_t.c.reason, func.count())
            .where(suppressions_t.c.created_at >= first, suppressions_t.c.created_at <= now)
            .group_by(suppressions_t.c.reason),
        )
        segments = _segments(conn)
    sent_by_day = [(d, int(n)) for d, n in zip(days, per_day, strict=True)]
    return Dashboard(
        campaigns_by_status={str(s): by_status.get(s, 0) for s in CampaignStatus},
        sent_30d=sum(n for _, n in sent_by_day),
        sent_by_day=sent_by_day,
        skipped_by_reason=dict(sorted(skipped.items())),
        deferred_by_reason=dict(sorted(deferred.items())),
        unsubscribes_30d=int(unsubscribes),
        bounces_30d=suppressed.get(SuppressionReason.HARD_BOUNCE, 0),
        complaints_30d=suppressed.get(SuppressionReason.COMPLAINT, 0),
        segments=segments,
        since=first,
        until=now,
    )
