"""What happened to a campaign: rows by status, by reason and by segment (Invariant 5).

``by_reason`` is the final reason on each outbox row (the gate's reason for a skip
or deferral, ``ok``/``transactional-exempt`` for a send, the pipeline's for a
transport outcome); ``decisions`` counts every gate decision ever taken for the
campaign, ``"<action>:<reason>"``, deferrals that later went through included.

``in_doubt_resends`` is how many times a message handed to the SMTP server
without a recorded answer (a crash between the handover and the 250 being
written) was sent again, under its same Message-ID: at least the number of
duplicates any recipient can have got. ``in_doubt`` is how many rows are in
that state now (they are claimed again after their lease).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from engine.campaigns.lifecycle import get, outbox_t
from engine.models import GateDecision, OutboxStatus

decisions_t = GateDecision.__table__  # type: ignore[attr-defined]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class CampaignReport:
    """What happened to one campaign (the fields of ``tact campaigns report --json``)."""

    id: int
    name: str
    template: str
    topic: str
    status: str
    pause_reason: str | None
    consecutive_failures: int
    created: str | None
    scheduled: str | None
    launched: str | None
    finished: str | None
    recipients: int
    by_status: dict[str, int]
    by_reason: dict[str, int]
    by_segment: dict[str, dict[str, int]]
    in_doubt: int
    in_doubt_resends: int
    decisions: dict[str, int]


def report(conn: Connection, campaign_id: int) -> dict[str, Any]:
    """:func:`campaign_report` as a plain mapping (for callers that index it by key)."""
    return asdict(campaign_report(conn, campaign_id))


def campaign_report(conn: Connection, campaign_id: int) -> CampaignReport:
    camp = get(conn, campaign_id)
    by_status: dict[str, int] = dict(
        conn.execute(
            select(outbox_t.c.status, func.count())
            .where(outbox_t.c.campaign_id == campaign_id)
            .group_by(outbox_t.c.status)
        ).all()
    )
    by_reason = {
        reason or "none": n
        for reason, n in conn.execute(
            select(outbox_t.c.reason, func.count())
            .where(outbox_t.c.campaign_id == campaign_id)
            .group_by(outbox_t.c.reason)
        ).all()
    }
    by_segment: dict[str, dict[str, int]] = {}
    for segment, status, n in conn.execute(
        select(outbox_t.c.segment, outbox_t.c.status, func.count())
        .where(outbox_t.c.campaign_id == campaign_id)
        .group_by(outbox_t.c.segment, outbox_t.c.status)
    ).all():
        by_segment.setdefault(segment or "standard", {})[status] = n
    decisions = {
        f"{action}:{reason}": n
        for action, reason, n in conn.execute(
            select(decisions_t.c.action, decisions_t.c.reason, func.count())
            .where(decisions_t.c.campaign == camp.name)
            .group_by(decisions_t.c.action, decisions_t.c.reason)
        ).all()
    }
    resends = conn.execute(
        select(func.coalesce(func.sum(outbox_t.c.resends), 0)).where(
            outbox_t.c.campaign_id == campaign_id
        )
    ).scalar_one()
    return CampaignReport(
        id=camp.id,
        name=camp.name,
        template=camp.template,
        topic=camp.topic,
        status=camp.status,
        pause_reason=camp.pause_reason,
        consecutive_failures=camp.consecutive_failures,
        created=_iso(camp.created_at),
        scheduled=_iso(camp.scheduled_at),
        launched=_iso(camp.launched_at),
        finished=_iso(camp.finished_at),
        recipients=sum(by_status.values()),
        by_status=by_status,
        by_reason=by_reason,
        by_segment=by_segment,
        in_doubt=by_status.get(OutboxStatus.IN_DOUBT.value, 0),
        in_doubt_resends=int(resends),
        decisions=decisions,
    )
