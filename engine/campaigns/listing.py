"""Campaigns a page at a time, and one campaign's outcomes over time: for the console and
the API, which list 1,000 campaigns and chart a report without loading either whole.

- :func:`page`: campaign rows newest first (by id, a cursor of the last id seen);
- :func:`outbox_counts`: the outbox rows of those campaigns by status, in one query;
- :func:`audience_by_segment`: the size of a topic's audience now, per segment, counted
  in SQL by the same query the launch runs (:func:`engine.campaigns.audience.
  audience_query`), the segment of each contact decided as
  :func:`engine.segments.segment_for_contacts` does; :func:`audience_stamp` says when
  it may have changed (a cache of it stays exact);
- :func:`timeline`: outcomes (sent, deferred, skipped, failed, bounced) in equal time
  buckets, aggregated in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Float, case, cast, extract, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from engine.campaigns.audience import audience_query
from engine.models import (
    STANDARD_VERSION,
    Campaign,
    ConsentRecord,
    ContactPreferences,
    GateDecision,
    OutboxRow,
    OutboxStatus,
    SegmentAssignment,
    SegmentModelRecord,
    Suppression,
)
from engine.policy.reasons import Action
from engine.vault.vault import contacts

campaigns_t = Campaign.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
decisions_t = GateDecision.__table__  # type: ignore[attr-defined]
assignments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]
prefs_t = ContactPreferences.__table__  # type: ignore[attr-defined]
consent_t = ConsentRecord.__table__  # type: ignore[attr-defined]
models_t = SegmentModelRecord.__table__  # type: ignore[attr-defined]
suppressions_t = Suppression.__table__  # type: ignore[attr-defined]

#: The outbox outcomes a timeline counts (deferrals come from the gate's decisions).
TIMELINE_STATUSES = (
    OutboxStatus.SENT,
    OutboxStatus.SKIPPED,
    OutboxStatus.FAILED,
    OutboxStatus.BOUNCED,
)


def page(
    conn: Connection, *, after: int | None, limit: int, status: str | None = None
) -> list[Any]:
    """Up to ``limit`` campaign rows with an id below ``after``, newest first."""
    query = select(campaigns_t).order_by(campaigns_t.c.id.desc()).limit(limit)
    if after is not None:
        query = query.where(campaigns_t.c.id < after)
    if status is not None:
        query = query.where(campaigns_t.c.status == status)
    return list(conn.execute(query).all())


def outbox_counts(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """The outbox rows of each of these campaigns by status (a campaign with none: {})."""
    found: dict[int, dict[str, int]] = {int(i): {} for i in ids}
    if not found:
        return found
    rows = conn.execute(
        select(outbox_t.c.campaign_id, outbox_t.c.status, func.count())
        .where(outbox_t.c.campaign_id.in_(list(found)))
        .group_by(outbox_t.c.campaign_id, outbox_t.c.status)
    ).all()
    for campaign_id, status, n in rows:
        found[int(campaign_id)][str(status)] = int(n)
    return found


def audience_size(
    conn: Connection, topic: str, segments: Sequence[str] | None, now: datetime
) -> int:
    """How many a launch now would write a row for (``lifecycle.candidates``, counted)."""
    by_segment = audience_by_segment(conn, topic, now)
    if not segments:
        return sum(by_segment.values())
    return sum(by_segment.get(s, 0) for s in set(segments))


def audience_by_segment(conn: Connection, topic: str, now: datetime) -> dict[str, int]:
    """The audience of ``topic`` as a launch now would take it, counted per segment (the
    standard version under ``standard``) in one query: every campaign of the topic, whatever
    segments it is limited to, is a sum of these."""
    segment = func.coalesce(assignments_t.c.segment, literal(STANDARD_VERSION))
    opted_out = prefs_t.c.personalization_opt_out.is_(True)
    version = case((opted_out, literal(STANDARD_VERSION)), else_=segment)
    query = (
        audience_query(topic, at=now, columns=(version.label("version"),))
        .order_by(None)
        .outerjoin(assignments_t, assignments_t.c.contact_id == contacts.c.id)
        .outerjoin(prefs_t, prefs_t.c.contact_id == contacts.c.id)
    )
    counted = query.subquery()
    rows = conn.execute(select(counted.c.version, func.count()).group_by(counted.c.version)).all()
    return {str(name): int(n) for name, n in rows}


def audience_stamp(conn: Connection) -> tuple[Any, ...]:
    """What changes when an audience may have: the newest consent event (a subscription,
    a withdrawal, an import's consent, an objection to profiling, an erasure all write
    one), the newest segment build, the suppression list's size and newest entry. Each
    is read from an index."""
    return (
        conn.execute(select(func.max(consent_t.c.id))).scalar(),
        conn.execute(select(func.max(models_t.c.version))).scalar(),
        conn.execute(select(func.count()).select_from(suppressions_t)).scalar(),
        conn.execute(select(func.max(suppressions_t.c.created_at))).scalar(),
    )


def latest_changes(conn: Connection, campaign: Any) -> tuple[Any, Any, int]:
    """The campaign's newest outbox change and newest gate decision (index look-ups), and
    how many outbox rows it has (an index count)."""
    newest_row = conn.execute(
        select(func.max(outbox_t.c.updated_at)).where(outbox_t.c.campaign_id == campaign.id)
    ).scalar()
    newest_decision = conn.execute(
        select(func.max(decisions_t.c.decided_at)).where(decisions_t.c.campaign == campaign.name)
    ).scalar()
    rows = conn.execute(
        select(func.count()).select_from(outbox_t).where(outbox_t.c.campaign_id == campaign.id)
    ).scalar_one()
    return newest_row, newest_decision, int(rows)


def status_counts(conn: Connection, campaign_id: int) -> tuple[tuple[str, int], ...]:
    """How many of the campaign's outbox rows are in each status (over the batch index)."""
    rows = conn.execute(
        select(outbox_t.c.status, func.count())
        .where(outbox_t.c.campaign_id == campaign_id)
        .group_by(outbox_t.c.status)
    )
    return tuple(sorted((str(status), int(n)) for status, n in rows))


def _epoch(conn: Connection, column: Any) -> ColumnElement[Any]:
    """Seconds since 1970 of a timestamp column, in this database's SQL."""
    if conn.dialect.name == "postgresql":
        return cast(extract("epoch", column), Float)
    return (func.julianday(column) - 2440587.5) * 86400.0  # SQLite holds UTC text


def span(conn: Connection, campaign: Any) -> tuple[datetime, datetime] | None:
    """From the campaign's launch to its last outcome (or its end), None before a launch."""
    start: datetime | None = campaign.launched_at
    if start is None:
        return None
    last_row = conn.execute(
        select(func.max(outbox_t.c.updated_at)).where(outbox_t.c.campaign_id == campaign.id)
    ).scalar()
    last_decision = conn.execute(
        select(func.max(decisions_t.c.decided_at)).where(decisions_t.c.campaign == campaign.name)
    ).scalar()
    moments = [m for m in (last_row, last_decision, campaign.finished_at) if m is not None]
    end = max([start, *moments])
    return start, end


def timeline(
    conn: Connection, campaign: Any, buckets: int
) -> list[tuple[datetime, dict[str, int]]]:
    """The campaign's outcomes in ``buckets`` equal spans from its launch to its last
    outcome: (start of the span, {outcome: count}). [] before a launch."""
    window = span(conn, campaign)
    if window is None:
        return []
    start, end = window
    width = max((end - start).total_seconds() / buckets, 1e-3)
    start_epoch = start.timestamp()
    counts: list[dict[str, int]] = [{} for _ in range(buckets)]

    def add(key: str, bucket: float, n: int) -> None:
        index = min(max(int(bucket), 0), buckets - 1)
        counts[index][key] = counts[index].get(key, 0) + n

    row_bucket = func.floor((_epoch(conn, outbox_t.c.updated_at) - start_epoch) / width)
    for status, bucket, n in conn.execute(
        select(outbox_t.c.status, row_bucket, func.count())
        .where(
            outbox_t.c.campaign_id == campaign.id,
            outbox_t.c.status.in_([s.value for s in TIMELINE_STATUSES]),
        )
        .group_by(outbox_t.c.status, row_bucket)
    ).all():
        add(str(status), float(bucket), int(n))
    decision_bucket = func.floor((_epoch(conn, decisions_t.c.decided_at) - start_epoch) / width)
    for bucket, n in conn.execute(
        select(decision_bucket, func.count())
        .where(decisions_t.c.campaign == campaign.name, decisions_t.c.action == Action.DEFER)
        .group_by(decision_bucket)
    ).all():
        add("deferred", float(bucket), int(n))
    return [(start + timedelta(seconds=i * width), counts[i]) for i in range(buckets)]
