"""The batch pipeline: claim → gate → read → render → send → record, one batch at a time.

``run_batch`` is the unit a worker runs (ids in: campaign id and batch number) and the
embedded mode calls directly. Its three steps:

1. Claim and gate, in one write transaction: the batch's due rows (pending or
   deferred with ``due_at <= now``, or claimed with an expired lease) become
   ``claimed`` in a single ``UPDATE … RETURNING`` (on PostgreSQL concurrent
   claimers block on the row locks and re-check the condition, so a row goes to one
   of them; on SQLite ``writing()`` serializes them). The gate runs right there,
   at send time, for exactly those contacts; skips and deferrals are written back.
2. Read, render and send, outside any transaction: the vault gives the declared
   fields for this batch only; the Message-ID is the one fixed on the row.
3. Record, in one write transaction: sent (and the cap reservation marked sent),
   deferred with backoff (``retry.next_attempt``; failed once exhausted, and the
   slot released), bounced (the blind index suppressed, the slot released).

At most once per (campaign, contact) (Invariant 3): a row that is sent is never
claimed again; a row whose send succeeded but was not recorded (a crash between 2
and 3) is claimed again after its lease and re-sent under the same Message-ID,
which the Maildir transport refuses as a duplicate (counted as sent). The cap
reservation is keyed ``"<campaign id>:<contact id>"``, so that retry reserves
nothing twice.

Consecutive failures: a transport ``DEFERRED`` or ``FAILED`` counts one, a
``SENT`` resets the count; a bounce is the recipient's, not the campaign's, and
counts neither way. At ``settings.campaign_pause_after_failures`` the campaign
pauses itself; rows of the batch not tried yet go back to pending.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update

from engine.campaigns import lifecycle
from engine.campaigns.lifecycle import campaigns_t, outbox_t
from engine.config import Settings
from engine.consent.suppression import suppress
from engine.consent.tokens import TokenSigner
from engine.consent.topics import cached_topics
from engine.db import writing
from engine.delivery import retry
from engine.delivery.base import DeliveryStatus, OutgoingMessage, Transport
from engine.models import AuditEvent, CampaignStatus, EventType, OutboxStatus, SuppressionReason
from engine.policy import Action, GateContext, Limits, gate, mark_sent, release
from engine.recipients import load_recipients
from engine.render.compose import Composer
from engine.render.dkim import signer_from_settings
from engine.render.mime import HeaderError
from engine.vault import Vault

log = logging.getLogger(__name__)
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
OS = OutboxStatus

#: Reasons the pipeline writes on outbox rows (the gate's own are ``policy.Reason``).
TRANSPORT_DEFERRED = "transport-deferred"
TRANSPORT_FAILED = "transport-failed"
RETRIES_EXHAUSTED = "retries-exhausted"
HARD_BOUNCE = "hard-bounce"
UNSENDABLE = "unsendable"
ERASED = "erased"
CAMPAIGN_PAUSED = "campaign-paused"


@dataclass
class BatchReport:
    campaign_id: int
    batch_no: int
    claimed: int = 0
    #: Outcome per row: sent, deferred, skipped, bounced, failed, pending (given back).
    by_status: Counter[str] = field(default_factory=Counter)
    paused: bool = False

    @property
    def sent(self) -> int:
        return self.by_status.get(OS.SENT, 0)


@dataclass(frozen=True)
class Claimed:
    id: int
    contact_id: UUID
    message_id: str
    attempts: int
    due_at: datetime
    segment: str | None


def message_key(campaign_id: int, contact_id: UUID) -> str:
    return f"{campaign_id}:{contact_id}"


def due_condition(now: datetime) -> Any:
    return or_(
        and_(
            outbox_t.c.status.in_([OS.PENDING.value, OS.DEFERRED.value]), outbox_t.c.due_at <= now
        ),
        and_(outbox_t.c.status == OS.CLAIMED.value, outbox_t.c.lease_until < now),
    )


def claim(
    conn: Connection, campaign_id: int, batch_no: int, now: datetime, lease: timedelta
) -> list[Claimed]:
    """Take the batch's due rows in one atomic statement."""
    result = conn.execute(
        update(outbox_t)
        .where(
            outbox_t.c.campaign_id == campaign_id,
            outbox_t.c.batch_no == batch_no,
            due_condition(now),
        )
        .values(status=OS.CLAIMED.value, lease_until=now + lease, updated_at=now)
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


def _write_back(conn: Connection, now: datetime, outcomes: list[dict[str, Any]]) -> None:
    """Bulk-update claimed rows (only while still claimed: a stale run changes nothing)."""
    if not outcomes:
        return
    stmt = (
        update(outbox_t)
        .where(outbox_t.c.id == bindparam("o_id"), outbox_t.c.status == OS.CLAIMED.value)
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
    conn.execute(stmt, outcomes)


def _outcome(
    row: Claimed,
    status: OutboxStatus,
    reason: str | None,
    *,
    due: datetime | None = None,
    attempts: int | None = None,
    segment: str | None = None,
) -> dict[str, Any]:
    return {
        "o_id": row.id,
        "o_status": status.value,
        "o_due": due or row.due_at,
        "o_attempts": row.attempts if attempts is None else attempts,
        "o_reason": reason,
        "o_segment": segment or row.segment,
    }


def run_batch(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    campaign_id: int,
    batch_no: int,
    transport: Transport,
    *,
    now: datetime | None = None,
) -> BatchReport:
    """Send one batch of a sending campaign (the transport must be open; it is flushed)."""
    now = now or datetime.now(UTC)
    report = BatchReport(campaign_id, batch_no)
    lease = timedelta(seconds=settings.campaign_lease_seconds)
    with writing(engine) as conn:
        camp = lifecycle.get(conn, campaign_id)
        if camp.status != CampaignStatus.SENDING:
            return report
        claimed = claim(conn, campaign_id, batch_no, now, lease)
        report.claimed = len(claimed)
        if not claimed:
            return report
        ctx = GateContext(
            topic=camp.topic,
            now=now,
            transactional=camp.transactional,
            allow_defer=camp.allow_defer,
            deadline=camp.deadline,
            limits=Limits.from_settings(settings, cached_topics(settings.resolved_topics_file)),
            campaign=camp.name,
        )
        verdicts = gate(
            conn,
            [r.contact_id for r in claimed],
            ctx,
            message_key_for=lambda cid: message_key(campaign_id, cid),
        )
        decided: list[dict[str, Any]] = []
        allowed: list[tuple[Claimed, str]] = []
        for r in claimed:
            verdict = verdicts[r.contact_id]
            if verdict.action is Action.SKIP:
                decided.append(_outcome(r, OS.SKIPPED, verdict.reason.value))
            elif verdict.action is Action.DEFER:
                decided.append(
                    _outcome(r, OS.DEFERRED, verdict.reason.value, due=verdict.defer_until)
                )
            else:
                allowed.append((r, verdict.reason.value))
        _write_back(conn, now, decided)
    for outcome in decided:
        report.by_status[outcome["o_status"]] += 1
    if allowed:
        _send(engine, vault, settings, camp, allowed, transport, now, report)
    log.info(
        "campaign %s batch %s: %d claimed, outcome %s",
        campaign_id,
        batch_no,
        report.claimed,
        dict(report.by_status),
    )
    return report


def _send(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    camp: Any,
    allowed: list[tuple[Claimed, str]],
    transport: Transport,
    now: datetime,
    report: BatchReport,
) -> None:
    composer = Composer(
        settings,
        camp.template,
        TokenSigner(vault.keyring, settings),
        dkim=signer_from_settings(settings),
    )
    wanted = ["email", *composer.spec.fields]
    ids = [r.contact_id for r, _ in allowed]
    with engine.connect() as conn:
        batch = load_recipients(conn, vault, ids, wanted, purpose=f"campaign:{camp.name}")
    people, segments, meta = batch.people, batch.segments, batch.meta
    threshold = settings.campaign_pause_after_failures
    outcomes: list[dict[str, Any]] = []
    to_mark: list[str] = []
    to_release: list[str] = []
    bounced: list[tuple[UUID, bytes]] = []
    run = 0  # transport failures in a row, in this batch
    any_success = False
    paused = False
    for r, reason in allowed:
        key = message_key(camp.id, r.contact_id)
        if paused:  # give back what was not tried
            outcomes.append(_outcome(r, OS.PENDING, CAMPAIGN_PAUSED))
            to_release.append(key)
            continue
        person = people.get(r.contact_id)
        info = meta.get(r.contact_id)
        if person is None or not person.email or info is None:
            outcomes.append(_outcome(r, OS.SKIPPED, ERASED))  # erased after the gate
            to_release.append(key)
            continue
        segment = segments.get(r.contact_id)
        try:
            composed = composer.compose(
                contact_id=r.contact_id,
                public_id=info.public_id,
                to_addr=person.email,
                fields={f: getattr(person, f) for f in composer.spec.fields},
                segment=segment,
                locale=info.locale,
                date=now,
                message_id=r.message_id,
            )
        except HeaderError as exc:  # e.g. an internationalized address (SMTPUTF8)
            log.info("contact %s not sendable: %s", r.contact_id, exc)
            outcomes.append(_outcome(r, OS.FAILED, UNSENDABLE))
            to_release.append(key)
            continue
        result = transport.send(
            OutgoingMessage(
                r.message_id, composer.renderer.brand.sender_address, person.email, composed.data
            )
        )
        seg = segment or lifecycle.STANDARD
        if result.status in (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE):
            outcomes.append(_outcome(r, OS.SENT, reason, attempts=r.attempts + 1, segment=seg))
            to_mark.append(key)
            run, any_success = 0, True
        elif result.status is DeliveryStatus.BOUNCED:
            outcomes.append(_outcome(r, OS.BOUNCED, HARD_BOUNCE, attempts=r.attempts + 1))
            to_release.append(key)
            if info.blind_index is not None:
                bounced.append((r.contact_id, info.blind_index))
        else:  # DEFERRED (transient) or FAILED (our side: sender refused, no extension)
            attempts = r.attempts + 1
            later = retry.next_attempt(attempts, now, key=r.message_id)
            if later is None:
                outcomes.append(_outcome(r, OS.FAILED, RETRIES_EXHAUSTED, attempts=attempts))
                to_release.append(key)
            else:
                why = (
                    TRANSPORT_DEFERRED
                    if result.status is DeliveryStatus.DEFERRED
                    else TRANSPORT_FAILED
                )
                outcomes.append(_outcome(r, OS.DEFERRED, why, due=later, attempts=attempts))
            run += 1
            if (0 if any_success else camp.consecutive_failures) + run >= threshold:
                paused = True
    transport.flush()
    with writing(engine) as conn:
        _write_back(conn, now, outcomes)
        for key in to_mark:
            mark_sent(conn, key)
        for key in to_release:
            release(conn, key)
        for contact_id, index in bounced:
            if suppress(conn, index, SuppressionReason.HARD_BOUNCE):
                conn.execute(
                    audit_t.insert().values(
                        occurred_at=now,
                        action=EventType.SUPPRESSION_ADDED,
                        actor=f"campaign:{camp.id}",
                        contact_id=contact_id,
                        detail={"reason": str(SuppressionReason.HARD_BOUNCE), "source": "smtp"},
                    )
                )
        failures = run if any_success else campaigns_t.c.consecutive_failures + run
        conn.execute(
            update(campaigns_t)
            .where(campaigns_t.c.id == camp.id)
            .values(consecutive_failures=failures)
        )
        if paused:
            current = lifecycle.get(conn, camp.id, lock=True)
            if current.status == CampaignStatus.SENDING:
                lifecycle.pause(
                    conn, camp.id, now, reason=f"{threshold} consecutive delivery failures"
                )
            report.paused = True
    for outcome in outcomes:
        report.by_status[outcome["o_status"]] += 1


# -- the tick --------------------------------------------------------------------------------


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


def launch_due(engine: Engine, settings: Settings, now: datetime) -> list[int]:
    """Launch every scheduled campaign whose time has come; returns their ids.

    On PostgreSQL the scheduled rows are taken ``FOR UPDATE SKIP LOCKED``, so two
    ticks on two machines launch each campaign once (the fan-out is idempotent anyway).
    """
    launched: list[int] = []
    with writing(engine) as conn:
        query = (
            select(campaigns_t)
            .where(campaigns_t.c.status == CampaignStatus.SCHEDULED.value)
            .order_by(campaigns_t.c.priority.desc(), campaigns_t.c.id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for row in conn.execute(query).all():
            at = lifecycle.launch_time(row)
            if at is None or at <= now:
                lifecycle.launch(conn, row.id, now, settings=settings)
                launched.append(row.id)
    return launched


def pending_count(conn: Connection, campaign_id: int, *, due_by: datetime | None = None) -> int:
    query = select(func.count()).select_from(outbox_t).where(outbox_t.c.campaign_id == campaign_id)
    query = query.where(
        due_condition(due_by) if due_by is not None else outbox_t.c.status.in_(lifecycle.OPEN)
    )
    return int(conn.execute(query).scalar_one())


def send_campaign(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    campaign_id: int,
    transport: Transport,
    *,
    now: datetime | None = None,
    progress: Callable[[BatchReport], None] | None = None,
) -> list[BatchReport]:
    """Run every due batch of one sending campaign; mark it sent when nothing is left.

    The transport must be open. Rows due later (a recipient's local hour, a deferral)
    stay for a later tick.
    """
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        batches = due_batches(conn, campaign_id, now)
    reports = []
    for batch_no in batches:
        report = run_batch(engine, vault, settings, campaign_id, batch_no, transport, now=now)
        reports.append(report)
        if progress:
            progress(report)
        if report.paused:
            break
    with writing(engine) as conn:
        lifecycle.finish(conn, campaign_id, now)
    return reports


def run_due(
    engine: Engine, vault: Vault, settings: Settings, transport: Transport, now: datetime
) -> list[BatchReport]:
    """The beat tick's work, in-process: launch what is due, run due batches, finish."""
    lifecycle_ids = launch_due(engine, settings, now)
    if lifecycle_ids:
        log.info("launched campaigns %s", lifecycle_ids)
    with engine.connect() as conn:
        sending = list(
            conn.execute(
                select(campaigns_t.c.id)
                .where(campaigns_t.c.status == CampaignStatus.SENDING.value)
                .order_by(campaigns_t.c.priority.desc(), campaigns_t.c.id)
            ).scalars()
        )
    reports: list[BatchReport] = []
    transport.open()
    try:
        for campaign_id in sending:
            reports += send_campaign(engine, vault, settings, campaign_id, transport, now=now)
    finally:
        transport.close()
    return reports
