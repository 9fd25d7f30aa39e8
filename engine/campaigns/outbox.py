"""The outbox store: which rows are due, the claim, and every write-back to the rows.

One outbox row per (campaign, contact), its Message-ID fixed at fan-out. A row is
*due* when it is pending or deferred with ``due_at <= now``, or held under a lease
(claimed, or in doubt) that has expired. ``claim`` takes a batch's due rows in a
single ``UPDATE … RETURNING`` (on PostgreSQL concurrent claimers block on the row
locks and re-check the condition, so a row goes to one of them; on SQLite
``writing()`` serializes them).

Every write here is fenced by the lease the claim set: only rows still held
*under this run's lease* change, so a run that outlived its lease, whose rows
another run has claimed since, changes nothing. The statements are built once, at
import: the sender runs them per message (the handover) or per group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)

from engine.campaigns import lifecycle
from engine.campaigns.lifecycle import outbox_t
from engine.models import OutboxStatus
from engine.policy.lastlook import eligible

OS = OutboxStatus

#: Reasons the pipeline writes on outbox rows (the gate's own are ``policy.Reason``).
TRANSPORT_DEFERRED = "transport-deferred"
TRANSPORT_FAILED = "transport-failed"
RETRIES_EXHAUSTED = "retries-exhausted"
HARD_BOUNCE = "hard-bounce"
UNSENDABLE = "unsendable"
ERASED = "erased"
CAMPAIGN_PAUSED = "campaign-paused"
#: A template failed for a recipient: the row goes back to pending, the campaign pauses.
RENDER_ERROR = "render-error"
#: Counted in a batch report, never written: a row another run had claimed meanwhile.
TAKEN_OVER = "taken-over"


@dataclass(frozen=True)
class Claimed:
    """One row this run holds under its lease."""

    id: int
    contact_id: UUID
    message_id: str
    attempts: int
    due_at: datetime
    segment: str | None


def message_key(campaign_id: int, contact_id: UUID) -> str:
    """The cap reservation's key: one per (campaign, contact), so a retry reserves nothing twice."""
    return f"{campaign_id}:{contact_id}"


#: Rows held under a lease: claimed, or handed to a server with no answer recorded yet.
LEASED = (OS.CLAIMED.value, OS.IN_DOUBT.value)


def due_condition(now: datetime) -> Any:
    """The rows a run may claim at ``now``: due, or held under an expired lease."""
    return or_(
        and_(
            outbox_t.c.status.in_([OS.PENDING.value, OS.DEFERRED.value]), outbox_t.c.due_at <= now
        ),
        and_(outbox_t.c.status.in_(LEASED), outbox_t.c.lease_until < now),
    )


def claim(
    conn: Connection, campaign_id: int, batch_no: int, now: datetime, lease_until: datetime
) -> list[Claimed]:
    """Take the batch's due rows in one atomic statement."""
    result = conn.execute(
        update(outbox_t)
        .where(
            outbox_t.c.campaign_id == campaign_id,
            outbox_t.c.batch_no == batch_no,
            due_condition(now),
        )
        .values(status=OS.CLAIMED.value, lease_until=lease_until, updated_at=now)
        .returning(
            outbox_t.c.id,
            outbox_t.c.contact_id,
            outbox_t.c.message_id,
            outbox_t.c.attempts,
            outbox_t.c.due_at,
            outbox_t.c.segment,
        )
    )
    rows = [Claimed(*r) for r in result]
    return sorted(rows, key=lambda r: r.contact_id)


def due_batches(conn: Connection, campaign_id: int, now: datetime) -> list[int]:
    """Batch numbers of this campaign that have a row to claim now."""
    return list(
        conn.execute(
            select(outbox_t.c.batch_no)
            .where(outbox_t.c.campaign_id == campaign_id, due_condition(now))
            .group_by(outbox_t.c.batch_no)
            .order_by(outbox_t.c.batch_no)
        ).scalars()
    )


def pending_count(conn: Connection, campaign_id: int, *, due_by: datetime | None = None) -> int:
    """Rows of the campaign still open (or, with ``due_by``, claimable by then)."""
    query = select(func.count()).select_from(outbox_t).where(outbox_t.c.campaign_id == campaign_id)
    query = query.where(
        due_condition(due_by) if due_by is not None else outbox_t.c.status.in_(lifecycle.OPEN)
    )
    return int(conn.execute(query).scalar_one())


def outcome(
    row: Claimed,
    status: OutboxStatus,
    reason: str | None,
    *,
    due: datetime | None = None,
    attempts: int | None = None,
    segment: str | None = None,
) -> dict[str, Any]:
    """One row's outcome, as the parameters ``write_back`` takes."""
    return {
        "o_id": row.id,
        "o_status": status.value,
        "o_due": due or row.due_at,
        "o_attempts": row.attempts if attempts is None else attempts,
        "o_reason": reason,
        "o_segment": segment or row.segment,
    }


def write_back(
    conn: Connection, now: datetime, outcomes: list[dict[str, Any]], lease_until: datetime
) -> int:
    """Bulk-update claimed rows; returns how many changed.

    Fenced: only rows still claimed *under this run's lease* change. A run that
    outlived its lease, whose rows another run has claimed since, changes nothing.
    """
    if not outcomes:
        return 0
    # Sent rows keep their due time and mostly share the rest: one UPDATE … IN per
    # (attempts, reason, segment) costs less than a parameter set per row.
    sent: dict[tuple[Any, ...], list[int]] = {}
    others: list[dict[str, Any]] = []
    for o in outcomes:
        if o["o_status"] == OS.SENT.value:
            sent.setdefault((o["o_attempts"], o["o_reason"], o["o_segment"]), []).append(o["o_id"])
        else:
            others.append(o)
    changed = 0
    for (attempts, reason, segment), ids in sent.items():
        changed += conn.execute(
            SENT_MANY,
            {
                "ids": ids,
                "o_lease": lease_until,
                "o_attempts": attempts,
                "o_reason": reason,
                "o_segment": segment,
                "o_now": now,
            },
        ).rowcount
    if not others:
        return changed
    stmt = (
        update(outbox_t)
        .where(
            outbox_t.c.id == bindparam("o_id"),
            outbox_t.c.status == OS.CLAIMED.value,
            outbox_t.c.lease_until == lease_until,
        )
        .values(
            status=bindparam("o_status"),
            due_at=bindparam("o_due"),
            attempts=bindparam("o_attempts"),
            reason=bindparam("o_reason"),
            segment=bindparam("o_segment"),
            lease_until=None,
            updated_at=now,
        )
    )
    return changed + int(conn.execute(stmt, others).rowcount)


def correct_in_doubt(
    conn: Connection, row_id: int, fixed: dict[str, Any], now: datetime, lease_until: datetime
) -> None:
    """A row recorded in doubt at its handover that the server then refused: ``fixed`` now.

    The server does not have the message, so the row is no longer in doubt: it is
    deferred for a retry, bounced or failed (``fixed``, an ``outcome``).
    """
    conn.execute(
        update(outbox_t)
        .where(
            outbox_t.c.id == row_id,
            outbox_t.c.status == OS.IN_DOUBT.value,
            outbox_t.c.lease_until == lease_until,
        )
        .values(
            status=fixed["o_status"],
            due_at=fixed["o_due"],
            attempts=fixed["o_attempts"],
            reason=fixed["o_reason"],
            handed_over_at=None,
            lease_until=None,
            updated_at=now,
        )
    )


#: The handover's write, built once: this row is in doubt (fenced like ``write_back``).
#: The lease stays: the row is claimed again only after it, and the "sent" that follows
#: the server's 250 is fenced by it. A handover while an earlier one is still unresolved
#: (``handed_over_at`` set) is an in-doubt re-send, counted in ``resends``.
IN_DOUBT_ONE = (
    update(outbox_t)
    .where(
        outbox_t.c.id == bindparam("o_id"),
        outbox_t.c.status == OS.CLAIMED.value,
        outbox_t.c.lease_until == bindparam("o_lease"),
    )
    .values(
        status=OS.IN_DOUBT.value,
        attempts=bindparam("o_attempts"),
        reason=bindparam("o_reason"),
        segment=bindparam("o_segment"),
        handed_over_at=bindparam("o_now"),
        resends=outbox_t.c.resends
        + case((outbox_t.c.handed_over_at.is_(None), literal(0)), else_=literal(1)),
        updated_at=bindparam("o_now"),
    )
)


#: Many rows sent with the same attempts, reason and segment (``write_back``): claimed
#: (an idempotent transport's group) or in doubt (an SMTP handover the server took).
SENT_MANY = (
    update(outbox_t)
    .where(
        outbox_t.c.id.in_(bindparam("ids", expanding=True)),
        outbox_t.c.status.in_(LEASED),
        outbox_t.c.lease_until == bindparam("o_lease"),
    )
    .values(
        status=OS.SENT.value,
        attempts=bindparam("o_attempts"),
        reason=bindparam("o_reason"),
        segment=bindparam("o_segment"),
        lease_until=None,
        updated_at=bindparam("o_now"),
    )
)

#: ``IN_DOUBT_ONE`` only if the last look passes (by ``transactional``): the fast path.
IN_DOUBT_IF_ELIGIBLE = {
    flag: IN_DOUBT_ONE.where(eligible(transactional=flag)) for flag in (False, True)
}
