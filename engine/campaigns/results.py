"""A batch's outcomes: what each delivery result means for its row, and writing them back.

The sender (``engine.campaigns.sender``) decides nothing about rows itself: it
hands every outcome here. ``BatchResults`` turns a transport's ``DeliveryResult``
into the row's next state (sent, deferred with a backoff, bounced, failed),
counts transport failures in a row towards the campaign's pause, gathers the
outcomes and their side effects (cap slots marked sent or released, hard bounces
suppressed, last-look decisions) in a ``Pending``, and writes them in bulk.

Consecutive failures: a transport ``DEFERRED`` or ``FAILED`` (or a connection
lost after a handover) counts one, a ``SENT`` resets the count; a bounce is the
recipient's, not the campaign's, and counts neither way. At
``settings.campaign_pause_after_failures`` the campaign pauses itself.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Connection, Engine, update

from engine.campaigns import lifecycle
from engine.campaigns.lifecycle import campaigns_t
from engine.campaigns.outbox import (
    CAMPAIGN_PAUSED,
    HARD_BOUNCE,
    RENDER_ERROR,
    RETRIES_EXHAUSTED,
    TAKEN_OVER,
    TRANSPORT_DEFERRED,
    TRANSPORT_FAILED,
    Claimed,
    correct_in_doubt,
    outcome,
    write_back,
)
from engine.config import Settings
from engine.consent.suppression import suppress
from engine.db import writing
from engine.delivery import retry
from engine.delivery.base import DeliveryResult, DeliveryStatus, OutgoingMessage
from engine.errors import RenderError
from engine.models import AuditEvent, CampaignStatus, EventType, OutboxStatus, SuppressionReason
from engine.policy import (
    Action,
    GateContext,
    Verdict,
    mark_sent_many,
    release_many,
    unmark_sent,
)
from engine.policy.decisions import record as record_decisions
from engine.policy.decisions import row as decision_row

if TYPE_CHECKING:
    from engine.campaigns.batch import BatchReport

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
OS = OutboxStatus


def render_pause_reason(exc: RenderError) -> str:
    """``render-error: <file>:<line> (<kind>)``: where and what kind, never the data.

    A RenderError's text may quote a value (``ValueError: invalid literal … 'Ann'``):
    only the template, the line and the leading word (an exception name) are kept.
    """
    where = f"{exc.template}:{exc.line}" if exc.template and exc.line else exc.template
    detail = str(exc).split(": ", 1)[-1]
    head = detail.split(":", 1)[0].strip()
    kind = head if re.fullmatch(r"[A-Za-z_]{1,40}", head) else type(exc).__name__
    return f"{RENDER_ERROR}: {where or 'template'} ({kind})"


@dataclass
class Ready:
    """One composed message, waiting for its last look."""

    row: Claimed
    reason: str
    key: str
    segment: str
    blind_index: bytes | None
    message: OutgoingMessage


@dataclass
class Pending:
    """Outcomes decided but not written yet, and their side effects."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    to_mark: list[str] = field(default_factory=list)
    to_release: list[str] = field(default_factory=list)
    bounced: list[tuple[UUID, bytes]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.to_mark or self.to_release or self.decisions)


class BatchResults:
    """The outcomes of one batch's sends, the failure count, and their write-back.

    Thread-safe: ``BaseTransport.send_many`` and the SMTP transport report on the
    calling thread, but the protocol lets a transport's ``send_many`` report from
    threads of its own.
    """

    #: SMTP: the outcomes gathered (250s mostly) are written every ``FLUSH`` messages.
    #: A crash re-sends what the server took since the last write (in doubt, counted).
    #: Measured (bench_smtp --profile, P=4): every 20 cost 14% of the send time
    #: (4 ms a write); every 100 about 3%. Chaos test (batches of 50): 64 duplicates
    #: in 20 kills at 20, 208 at 50.
    FLUSH = 100

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        camp: Any,
        ctx: GateContext,
        lease_until: datetime,
        report: BatchReport,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.camp = camp
        self.ctx = ctx
        self.now = ctx.now
        self.lease_until = lease_until
        self.report = report
        self.threshold = settings.campaign_pause_after_failures
        self.run_length = 0  # transport failures in a row, in this batch
        self.any_success = False
        self.paused = False
        #: Set when a template failed: the reason the campaign pauses with.
        self.render_failed: str | None = None
        self.retry_base = timedelta(seconds=settings.delivery_retry_base_seconds)
        #: Guards the counters, the report and the pending lists.
        self.lock = threading.RLock()

    # -- deciding -------------------------------------------------------------------------

    def add(self, pending: Pending, row_outcome: dict[str, Any]) -> None:
        with self.lock:
            pending.outcomes.append(row_outcome)

    def drop(self, pending: Pending, row_outcome: dict[str, Any], key: str) -> None:
        """Not sent, and never will be: the outcome, and the cap slot freed."""
        with self.lock:
            pending.outcomes.append(row_outcome)
            pending.to_release.append(key)

    def count(self, status: str) -> None:
        with self.lock:
            self.report.by_status[status] += 1

    def give_back(self, item: Ready, pending: Pending) -> None:
        """Paused meanwhile: the message goes back to pending, unsent."""
        self.add_back(pending, item.row, item.key, CAMPAIGN_PAUSED)

    def add_back(self, pending: Pending, row: Claimed, key: str, reason: str) -> None:
        """Not sent, to be sent after a resume: pending again, its cap slot freed."""
        with self.lock:
            self.add(pending, outcome(row, OS.PENDING, reason))
            pending.to_release.append(key)

    def render_error(self, reason: str) -> None:
        """A template failed: nothing more is composed, the campaign pauses with ``reason``."""
        with self.lock:
            self.render_failed = reason
            self.paused = True

    def withhold(self, item: Ready, verdict: Verdict, pending: Pending) -> None:
        """The last look said no: the row is skipped or deferred, its slot freed."""
        if verdict.action is Action.DEFER:
            row_outcome = outcome(
                item.row, OS.DEFERRED, verdict.reason.value, due=verdict.defer_until
            )
        else:
            row_outcome = outcome(item.row, OS.SKIPPED, verdict.reason.value)
        detail: dict[str, object] = {"topic": self.ctx.topic, "stage": "last-look"}
        with self.lock:
            self.add(pending, row_outcome)
            pending.to_release.append(item.key)
            pending.decisions.append(
                decision_row(self.ctx.campaign, item.row.contact_id, verdict, self.now, detail)
            )

    def result(self, item: Ready, result: DeliveryResult, pending: Pending) -> None:
        """What the transport said about ``item``, as its row's outcome."""
        with self.lock:
            self._result_locked(item, result, pending)

    def _result_locked(self, item: Ready, result: DeliveryResult, pending: Pending) -> None:
        r = item.row
        if result.status in (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE):
            self.add(
                pending,
                outcome(r, OS.SENT, item.reason, attempts=r.attempts + 1, segment=item.segment),
            )
            pending.to_mark.append(item.key)
            self.run_length, self.any_success = 0, True
        elif result.status is DeliveryStatus.BOUNCED:
            self.add(pending, outcome(r, OS.BOUNCED, HARD_BOUNCE, attempts=r.attempts + 1))
            pending.to_release.append(item.key)
            if item.blind_index is not None:
                pending.bounced.append((r.contact_id, item.blind_index))
        elif result.status is DeliveryStatus.WITHHELD:  # only with a handover: not ours
            self.count(TAKEN_OVER)
        else:  # DEFERRED (transient) or FAILED (our side: sender refused, no extension)
            attempts = r.attempts + 1
            later = retry.next_attempt(
                attempts,
                self.now,
                key=r.message_id,
                base=self.retry_base,
                cap=max(retry.CAP, self.retry_base),
                max_attempts=self.settings.delivery_retry_max_attempts,
            )
            if later is None:
                self.add(pending, outcome(r, OS.FAILED, RETRIES_EXHAUSTED, attempts=attempts))
                pending.to_release.append(item.key)
            else:
                why = (
                    TRANSPORT_DEFERRED
                    if result.status is DeliveryStatus.DEFERRED
                    else TRANSPORT_FAILED
                )
                self.add(pending, outcome(r, OS.DEFERRED, why, due=later, attempts=attempts))
            self.failed_once()

    def in_doubt(self) -> None:
        """A connection lost after the handover: counted, and a failure towards the pause."""
        with self.lock:
            self.report.by_status[OS.IN_DOUBT] += 1
            self.failed_once()

    def failed_once(self) -> None:
        """One more transport failure in a row (the lock held); pause at the threshold."""
        self.run_length += 1
        earlier = 0 if self.any_success else self.camp.consecutive_failures
        if earlier + self.run_length >= self.threshold:
            self.paused = True

    # -- writing --------------------------------------------------------------------------

    def flush_if_full(self, pending: Pending) -> None:
        """Write what is pending once a group's worth has gathered (SMTP path).

        Bounds what a crash leaves in doubt and delivered (and so duplicated) to
        about ``FLUSH`` messages, at one write transaction per ``FLUSH`` messages.
        """
        with self.lock:
            full = len(pending.outcomes) >= self.FLUSH
        if full:
            with writing(self.engine) as conn:
                self.write(conn, pending)

    def write(self, conn: Connection, pending: Pending) -> None:
        """Write ``pending`` and empty it (in place: deliveries on their way hold it)."""
        with self.lock:
            outcomes = list(pending.outcomes)
            to_mark, to_release = list(pending.to_mark), list(pending.to_release)
            bounced, decisions = list(pending.bounced), list(pending.decisions)
            for items in (pending.outcomes, pending.to_mark, pending.to_release):
                items.clear()
            pending.bounced.clear()
            pending.decisions.clear()
            for row_outcome in outcomes:
                self.report.by_status[row_outcome["o_status"]] += 1
        write_back(conn, self.now, outcomes, self.lease_until)
        mark_sent_many(conn, to_mark)
        release_many(conn, to_release)
        self._suppress(conn, bounced)
        record_decisions(conn, decisions)

    def correct(self, item: Ready, result: DeliveryResult) -> None:
        """A message recorded in doubt at the handover that the server then refused.

        The server does not have it, so the row is no longer in doubt: retry or
        bounce as without a handover, in a transaction of its own.
        """
        correction = Pending()
        self.result(item, result, correction)
        with writing(self.engine) as conn:
            (fixed,) = correction.outcomes
            correct_in_doubt(conn, item.row.id, fixed, self.now, self.lease_until)
            if fixed["o_status"] == OS.DEFERRED.value:
                unmark_sent(conn, item.key)  # still holds its slot, for the retry
            else:
                release_many(conn, [item.key], sent_too=True)
            self._suppress(conn, correction.bounced)
            self.count(fixed["o_status"])

    def _suppress(self, conn: Connection, bounced: list[tuple[UUID, bytes]]) -> None:
        for contact_id, index in bounced:
            if suppress(conn, index, SuppressionReason.HARD_BOUNCE):
                conn.execute(
                    audit_t.insert().values(
                        occurred_at=self.now,
                        action=EventType.SUPPRESSION_ADDED,
                        actor=f"campaign:{self.camp.id}",
                        contact_id=contact_id,
                        detail={"reason": str(SuppressionReason.HARD_BOUNCE), "source": "smtp"},
                    )
                )

    def finish(self, conn: Connection) -> None:
        """The campaign's count of consecutive failures, and the pause it may trigger."""
        camp = self.camp
        failures = (
            self.run_length
            if self.any_success
            else campaigns_t.c.consecutive_failures + self.run_length
        )
        conn.execute(
            update(campaigns_t)
            .where(campaigns_t.c.id == camp.id)
            .values(consecutive_failures=failures)
        )
        if self.paused:
            reason = self.render_failed or f"{self.threshold} consecutive delivery failures"
            current = lifecycle.get(conn, camp.id, lock=True)
            if current.status == CampaignStatus.SENDING:
                lifecycle.pause(conn, camp.id, self.now, reason=reason)
            self.report.paused = True
            self.report.pause_reason = reason
