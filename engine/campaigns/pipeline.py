"""The batch pipeline: claim → gate → read → render → send → record, one batch at a time.

``run_batch`` is the unit a worker runs (ids in: campaign id and batch number) and the
embedded mode calls directly. Its three steps:

1. Claim and gate, in one write transaction: the batch's due rows (pending or
   deferred with ``due_at <= now``, or claimed or in doubt with an expired lease) become
   ``claimed`` in a single ``UPDATE … RETURNING`` (on PostgreSQL concurrent
   claimers block on the row locks and re-check the condition, so a row goes to one
   of them; on SQLite ``writing()`` serializes them). The gate runs right there,
   at send time, for exactly those contacts; skips and deferrals are written back.
2. Read and render, outside any transaction: the vault gives the declared fields
   for this batch only; the Message-ID is the one fixed on the row.
3. Last look, send and record (``_BatchSender``): right before a message leaves,
   ``policy.last_look`` re-checks what the customer may have changed since the
   claim (unsubscribed, suppressed, paused), in the transaction that records the
   message. How that transaction meets the send depends on the transport: an
   idempotent one (Maildir, null) sends a group of 100 inside it and records them
   sent; SMTP gets a ``handover`` that commits each row as ``in_doubt`` right
   before the final dot of DATA, and the rows the server answered 250 become
   ``sent`` in bulk (every 100, and at the end of the batch).
   Deferred rows get a backoff (``retry.next_attempt`` with the settings' base and
   attempts; failed once exhausted, and the slot released), bounced rows suppress
   the blind index and free the slot.

At least once per (campaign, contact), one Message-ID (Invariant 3): a row that
is sent is never claimed again. Every write is fenced by the lease the claim set:
a run that outlived its lease changes nothing, and its handover refuses to send.
A crash before a Maildir group commits re-sends the group under the same
Message-IDs, which the Maildir refuses as duplicates (counted as sent): exactly
once there. Over SMTP exactly once is impossible (RFC 1047), and losing a message
while recording it sent is the worst outcome, so a crash (or a connection lost)
after a handover leaves its row ``in_doubt``: after the lease it is claimed again
and re-sent under the same Message-ID, and the handover counts it on the row
(``resends``: a handover while an earlier one is unresolved, ``handed_over_at``
set). Duplicates can only be of in-doubt messages, never more than the count the
campaign report shows. A crash before a handover re-sends a message the server
never completed. The cap reservation is keyed ``"<campaign id>:<contact id>"``,
so a retry reserves nothing twice.

A render error (``RenderError``: the template, not the recipient) stops the batch:
the rows not sent yet go back to pending, the campaign pauses with the reason
``render-error: <file>:<line> (<kind>)`` and the campaign's compiled templates are
dropped, so a resume after the fix renders the fixed files.

Consecutive failures: a transport ``DEFERRED`` or ``FAILED`` counts one, a
``SENT`` resets the count; a bounce is the recipient's, not the campaign's, and
counts neither way. At ``settings.campaign_pause_after_failures`` the campaign
pauses itself; rows of the batch not tried yet go back to pending.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Engine,
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
from engine.campaigns.lifecycle import campaigns_t, outbox_t
from engine.config import Settings
from engine.consent.suppression import suppress
from engine.consent.topics import cached_topics
from engine.db import PreparedWrite, writing, writing_on
from engine.delivery import retry
from engine.delivery.base import (
    DeliveryResult,
    DeliveryStatus,
    OutgoingMessage,
    Transport,
    send_each,
)
from engine.errors import (
    HeaderError,
    RenderError,
    TactError,
    TemplateError,
)
from engine.links.tokens import TokenSigner
from engine.models import AuditEvent, CampaignStatus, EventType, OutboxStatus, SuppressionReason
from engine.policy import (
    Action,
    GateContext,
    Limits,
    Verdict,
    gate,
    last_look,
    mark_sent_many,
    release_many,
    unmark_sent,
)
from engine.policy.decisions import record as record_decisions
from engine.policy.decisions import row as decision_row
from engine.policy.lastlook import eligible, last_look_one
from engine.recipients import load_recipients
from engine.render.compose import Composer
from engine.render.dkim import signer_from_settings
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
#: A template failed for a recipient: the row goes back to pending, the campaign pauses.
RENDER_ERROR = "render-error"
#: Counted in a batch report, never written: a row another run had claimed meanwhile.
TAKEN_OVER = "taken-over"


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
class BatchReport:
    campaign_id: int
    batch_no: int
    claimed: int = 0
    #: Outcome per row: sent, deferred, skipped, bounced, failed, pending (given back).
    by_status: Counter[str] = field(default_factory=Counter)
    paused: bool = False
    #: Why the batch paused its campaign, when it did (``render-error: …``, failures).
    pause_reason: str | None = None

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


#: Rows held under a lease: claimed, or handed to a server with no answer recorded yet.
LEASED = (OS.CLAIMED.value, OS.IN_DOUBT.value)


def due_condition(now: datetime) -> Any:
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


def _write_back(
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
            _SENT_MANY,
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


#: The handover's write, built once: this row is in doubt (fenced like ``_write_back``).
#: The lease stays: the row is claimed again only after it, and the "sent" that follows
#: the server's 250 is fenced by it. A handover while an earlier one is still unresolved
#: (``handed_over_at`` set) is an in-doubt re-send, counted in ``resends``.
_IN_DOUBT_ONE = (
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


#: Many rows sent with the same attempts, reason and segment (``_write_back``): claimed
#: (an idempotent transport's group) or in doubt (an SMTP handover the server took).
_SENT_MANY = (
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

#: ``_IN_DOUBT_ONE`` only if the last look passes (by ``transactional``): the fast path.
_IN_DOUBT_IF_ELIGIBLE = {
    flag: _IN_DOUBT_ONE.where(eligible(transactional=flag)) for flag in (False, True)
}


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


class Composers:
    """Each campaign's ``Composer``, built once and reused by every batch of it.

    Building one compiles the campaign's templates and inlines its CSS: tens of
    milliseconds, too much to repeat for every batch of 500. A worker process keeps
    one ``Composers`` for its life; ``send_campaign`` one per call. Bounded: the
    least recently used campaigns are dropped beyond ``size``.
    """

    def __init__(self, settings: Settings, vault: Vault, *, size: int = 8) -> None:
        self.settings = settings
        self.vault = vault
        self.size = size
        self._built: OrderedDict[tuple[int, str], Composer] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self, campaign_id: int) -> None:
        """Drop a campaign's compiled templates (they failed: the fix must be read anew)."""
        with self._lock:
            for key in [k for k in self._built if k[0] == campaign_id]:
                del self._built[key]

    def get(self, campaign_id: int, template: str) -> Composer:
        key = (campaign_id, template)
        with self._lock:
            composer = self._built.get(key)
            if composer is not None:
                self._built.move_to_end(key)
                return composer
        composer = Composer(
            self.settings,
            template,
            TokenSigner(self.vault.keyring, self.settings),
            dkim=signer_from_settings(self.settings),
        )
        with self._lock:
            self._built[key] = composer
            while len(self._built) > self.size:
                self._built.popitem(last=False)
        return composer


def _gate_context(settings: Settings, camp: Any, now: datetime) -> GateContext:
    return GateContext(
        topic=camp.topic,
        now=now,
        transactional=camp.transactional,
        allow_defer=camp.allow_defer,
        deadline=camp.deadline,
        limits=Limits.from_settings(settings, cached_topics(settings.resolved_topics_file)),
        campaign=camp.name,
    )


def run_batch(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    campaign_id: int,
    batch_no: int,
    transport: Transport,
    *,
    now: datetime | None = None,
    composers: Composers | None = None,
) -> BatchReport:
    """Send one batch of a sending campaign (the transport must be open; it is flushed).

    ``composers``: reuse the campaign's compiled templates across batches.
    """
    now = now or datetime.now(UTC)
    report = BatchReport(campaign_id, batch_no)
    lease_until = now + timedelta(seconds=settings.campaign_lease_seconds)
    with writing(engine) as conn:
        camp = lifecycle.get(conn, campaign_id)
        if camp.status != CampaignStatus.SENDING:
            return report
        claimed = claim(conn, campaign_id, batch_no, now, lease_until)
        report.claimed = len(claimed)
        if not claimed:
            return report
        ctx = _gate_context(settings, camp, now)
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
        _write_back(conn, now, decided, lease_until)
    for outcome in decided:
        report.by_status[outcome["o_status"]] += 1
    if allowed:
        sender = _BatchSender(engine, vault, settings, camp, ctx, lease_until, transport, report)
        try:
            composer = (composers or Composers(settings, vault)).get(camp.id, camp.template)
        except (RenderError, TemplateError) as exc:  # the templates do not load at all
            sender.give_back(allowed, exc)
            return report
        sender.run(allowed, composer)
        if sender.render_failed and composers is not None:
            composers.forget(camp.id)
    log.info(
        "campaign %s batch %s: %d claimed, outcome %s",
        campaign_id,
        batch_no,
        report.claimed,
        dict(report.by_status),
    )
    return report


@dataclass
class _Ready:
    """One composed message, waiting for its last look."""

    row: Claimed
    reason: str
    key: str
    segment: str
    blind_index: bytes | None
    message: OutgoingMessage


@dataclass
class _Pending:
    """Outcomes decided but not written yet, and their side effects."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    to_mark: list[str] = field(default_factory=list)
    to_release: list[str] = field(default_factory=list)
    bounced: list[tuple[UUID, bytes]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.to_mark or self.to_release or self.decisions)


class _Delivery:
    """One message to a transport that is not idempotent: its handover, then its outcome."""

    __slots__ = ("handed", "item", "message", "pending", "sender", "withheld")

    def __init__(self, sender: _BatchSender, item: _Ready, pending: _Pending) -> None:
        self.sender = sender
        self.item = item
        self.pending = pending
        self.message = item.message
        self.handed = False
        self.withheld = False

    def handover(self) -> bool:
        """Right before the final dot: record the row as in doubt, or say why not."""
        s, item = self.sender, self.item
        if s.paused:  # the campaign paused itself while this message was on its way
            s._give_back(item, self.pending)
            self.withheld = True
            return False
        params = {
            "o_id": item.row.id,
            "o_lease": s.lease_until,
            "o_attempts": item.row.attempts + 1,
            "o_reason": item.reason,
            "o_segment": item.segment,
            "o_now": s.now,
            "cid": item.row.contact_id,
            "topic": s.ctx.topic,
        }
        # Common case, one statement: still ours, and the last look passes. The cap
        # slot is counted already (reserved); it is marked sent in bulk with the row's
        # "sent" after the server's 250, or stays reserved (still counted) if this
        # process dies first.
        if s._fast_handover(params):
            self._handed()
            return True
        with writing_on(s._connection()) as conn:
            verdict = last_look_one(conn, item.row.contact_id, s.ctx)
            if verdict.action is not Action.SEND:
                now_pending = _Pending()
                s._withhold(item, verdict, now_pending)
                s._write(conn, now_pending)
                self.withheld = True
                return False
            if not conn.execute(_IN_DOUBT_ONE, params).rowcount:
                return False  # another run holds this row now: it is theirs to send
            log.warning("last look: the SQL condition refused what the rules allow")
            self._handed()
            return True

    def _handed(self) -> None:
        self.handed = True

    def done(self, result: DeliveryResult) -> None:
        s, item, pending = self.sender, self.item, self.pending
        if self.withheld:
            return
        if result.status is DeliveryStatus.WITHHELD:
            s._count(TAKEN_OVER)
            return
        if not self.handed:
            s._result(item, result, pending)
            return
        if result.status in (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE):
            # The server's 250: the row becomes sent with the batch's other outcomes, in
            # bulk. A crash before that write leaves it in doubt: re-sent after the
            # lease, same Message-ID, counted.
            s._result(item, result, pending)
            s._flush_if_full(pending)
            return
        if result.status is DeliveryStatus.IN_DOUBT:
            # The connection was lost after the handover (RFC 1047): the server may have
            # it or not. The row stays in doubt, so it is re-sent after its lease under
            # the same Message-ID (a duplicate at worst, counted), never lost. It counts
            # as a transport failure towards the campaign's pause.
            with s._lock:
                s.report.by_status[OS.IN_DOUBT] += 1
                s._failed_once()
            return
        # Refused after the handover (a 4xx or 5xx to the final dot): the server does
        # not have it, so the row is no longer in doubt; retry or bounce as before.
        correction = _Pending()
        s._result(item, result, correction)
        with writing(s.engine) as conn:
            s._correct(conn, item, correction)


class _BatchSender:
    """Render, last look, send and record the messages the gate let through.

    Two ways to reach exactly once, chosen by the transport (``Transport.idempotent``):

    - idempotent (Maildir, null): per group of ``GROUP`` composed messages, one write
      transaction runs the last look, hands the allowed messages to the transport and
      records every outcome. A crash in the middle re-sends the group later under the
      same Message-IDs, which the transport turns into ``DUPLICATE``.
    - not idempotent (SMTP): per message, the transport calls ``handover`` at its
      point of no return; that runs the last look and commits the row as in doubt
      (fenced by the lease) before the final dot. The 250s and the failures seen
      before a handover are written in bulk (``_flush_if_full`` and the batch's end);
      a refusal after the handover corrects the row it wrote; a connection lost
      after it leaves the row in doubt, for a re-send after the lease.
    """

    GROUP = 100
    #: SMTP: the outcomes gathered (250s mostly) are written every ``FLUSH`` messages.
    #: A crash re-sends what the server took since the last write (in doubt, counted).
    #: Measured (bench_smtp --profile, P=4): every 20 cost 14% of the send time
    #: (4 ms a write); every 100 about 3%. Chaos test (batches of 50): 64 duplicates
    #: in 20 kills at 20, 208 at 50.
    FLUSH = 100

    def __init__(
        self,
        engine: Engine,
        vault: Vault,
        settings: Settings,
        camp: Any,
        ctx: GateContext,
        lease_until: datetime,
        transport: Transport,
        report: BatchReport,
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.settings = settings
        self.camp = camp
        self.ctx = ctx
        self.now = ctx.now
        self.lease_until = lease_until
        self.transport = transport
        self.report = report
        self.threshold = settings.campaign_pause_after_failures
        self.run_length = 0  # transport failures in a row, in this batch
        self.any_success = False
        self.paused = False
        #: Set when a template failed: the reason the campaign pauses with.
        self.render_failed: str | None = None
        self.retry_base = timedelta(seconds=settings.delivery_retry_base_seconds)
        #: Guards the counters, the report and the pending lists: ``send_each`` and the SMTP
        #: transport report on the calling thread, but the protocol lets a transport's
        #: ``send_many`` report from threads of its own.
        self._lock = threading.RLock()
        self._prepared: dict[bool, PreparedWrite] = {}
        self._held: Connection | None = None

    # -- the whole batch ------------------------------------------------------------------

    def run(self, allowed: list[tuple[Claimed, str]], composer: Composer) -> None:
        pending = _Pending()
        if self.transport.idempotent:
            ready = list(self._compose(allowed, composer, pending))
            for start in range(0, len(ready), self.GROUP):
                self._send_group(ready[start : start + self.GROUP], pending)
                pending = _Pending()
        else:
            self._send_handed_over(self._compose(allowed, composer, pending), pending)
        self.transport.flush()
        with writing(self.engine) as conn:
            self._write(conn, pending)
            self._finish(conn)

    def give_back(self, allowed: list[tuple[Claimed, str]], exc: TactError) -> None:
        """The campaign's templates did not load: every row goes back, the campaign pauses."""
        self.render_failed = (
            render_pause_reason(exc) if isinstance(exc, RenderError) else f"{RENDER_ERROR}: {exc}"
        )
        self.paused = True
        log.warning("campaign %s: %s", self.camp.id, self.render_failed)
        pending = _Pending()
        for r, _ in allowed:
            self._add_back(pending, r, message_key(self.camp.id, r.contact_id), RENDER_ERROR)
        with writing(self.engine) as conn:
            self._write(conn, pending)
            self._finish(conn)

    def _compose(
        self, allowed: list[tuple[Claimed, str]], composer: Composer, pending: _Pending
    ) -> Iterator[_Ready]:
        camp = self.camp
        wanted = ["email", *composer.spec.fields]
        ids = [r.contact_id for r, _ in allowed]
        with self.engine.connect() as conn:
            batch = load_recipients(conn, self.vault, ids, wanted, purpose=f"campaign:{camp.name}")
        people, segments, meta = batch.people, batch.segments, batch.meta
        sender = composer.renderer.brand.sender_address
        for r, reason in allowed:
            key = message_key(camp.id, r.contact_id)
            person = people.get(r.contact_id)
            info = meta.get(r.contact_id)
            if person is None or not person.email or info is None:
                self._drop(pending, _outcome(r, OS.SKIPPED, ERASED), key)  # erased since the gate
                continue
            segment = segments.get(r.contact_id)
            if self.paused:  # paused meanwhile (failures, a render error): not composed
                self._add_back(pending, r, key, CAMPAIGN_PAUSED)
                continue
            try:
                composed = composer.compose(
                    contact_id=r.contact_id,
                    public_id=info.public_id,
                    to_addr=person.email,
                    fields={f: getattr(person, f) for f in composer.spec.fields},
                    segment=segment,
                    locale=info.locale,
                    date=self.now,
                    message_id=r.message_id,
                )
            except HeaderError as exc:  # e.g. an internationalized address (SMTPUTF8)
                log.info("contact %s not sendable: %s", r.contact_id, exc)
                self._drop(pending, _outcome(r, OS.FAILED, UNSENDABLE), key)
                continue
            except RenderError as exc:
                # The template is at fault, not the recipient: nothing more of this
                # campaign is composed; this row and every row not sent yet go back to
                # pending, and the campaign pauses until someone fixes the template.
                reason = render_pause_reason(exc)
                log.warning("campaign %s: contact %s: %s", camp.id, r.contact_id, reason)
                with self._lock:
                    self.render_failed = reason
                    self.paused = True
                self._add_back(pending, r, key, RENDER_ERROR)
                continue
            yield _Ready(
                r,
                reason,
                key,
                segment or lifecycle.STANDARD,
                info.blind_index,
                OutgoingMessage(r.message_id, sender, person.email, composed.data),
            )

    # -- idempotent transports: a group per transaction -----------------------------------

    def _send_group(self, group: list[_Ready], pending: _Pending) -> None:
        with writing(self.engine) as conn:
            looks = last_look(conn, [item.row.contact_id for item in group], self.ctx)
            for item in group:
                if self.paused:
                    self._give_back(item, pending)
                    continue
                verdict = looks[item.row.contact_id]
                if verdict.action is not Action.SEND:
                    self._withhold(item, verdict, pending)
                    continue
                self._result(item, self.transport.send(item.message), pending)
            self.transport.flush()
            self._write(conn, pending)

    # -- other transports: the handover ----------------------------------------------------

    def _send_handed_over(self, ready: Iterator[_Ready], pending: _Pending) -> None:
        """Every message with its handover; the transport takes them as fast as it can.

        Messages are composed as the transport asks for the next one: the SMTP
        transport (``send_many``) asks while its connections wait on the server, so
        composing overlaps with delivery. Outcomes seen before a handover are written
        once, at the end of the batch: none of them was delivered, so a crash before
        that write only makes them due again.
        """
        deliveries = self._deliveries(ready, pending)
        try:
            send_many = getattr(self.transport, "send_many", None)
            if send_many is not None:
                send_many(deliveries)
            else:
                send_each(self.transport, deliveries)
        finally:
            if self._held is not None:
                self._held.close()
                self._held = None

    def _deliveries(self, ready: Iterator[_Ready], pending: _Pending) -> Iterator[_Delivery]:
        for item in ready:
            if self.paused:
                self._give_back(item, pending)
            else:
                yield _Delivery(self, item, pending)

    def _fast_handover(self, params: dict[str, Any]) -> bool:
        """Record the message as sent if it is still ours and passes the last look."""
        conn = self._connection()
        flag = self.ctx.transactional
        if conn.dialect.name == "sqlite":
            prepared = self._prepared.get(flag)
            if prepared is None:
                prepared = self._prepared[flag] = PreparedWrite(
                    _IN_DOUBT_IF_ELIGIBLE[flag], conn.dialect
                )
            return bool(prepared.run_alone(conn, params))
        with writing_on(conn) as tx:
            return bool(tx.execute(_IN_DOUBT_IF_ELIGIBLE[flag], params).rowcount)

    def _connection(self) -> Connection:
        """The handovers' connection, held for the batch."""
        if self._held is None:
            self._held = self.engine.connect()
        return self._held

    # -- outcomes -------------------------------------------------------------------------

    def _add(self, pending: _Pending, outcome: dict[str, Any]) -> None:
        with self._lock:
            pending.outcomes.append(outcome)

    def _drop(self, pending: _Pending, outcome: dict[str, Any], key: str) -> None:
        """Not sent, and never will be: the outcome, and the cap slot freed."""
        with self._lock:
            pending.outcomes.append(outcome)
            pending.to_release.append(key)

    def _count(self, status: str) -> None:
        with self._lock:
            self.report.by_status[status] += 1

    def _give_back(self, item: _Ready, pending: _Pending) -> None:
        self._add_back(pending, item.row, item.key, CAMPAIGN_PAUSED)

    def _add_back(self, pending: _Pending, row: Claimed, key: str, reason: str) -> None:
        """Not sent, to be sent after a resume: pending again, its cap slot freed."""
        with self._lock:
            self._add(pending, _outcome(row, OS.PENDING, reason))
            pending.to_release.append(key)

    def _withhold(self, item: _Ready, verdict: Verdict, pending: _Pending) -> None:
        """The last look said no: the row is skipped or deferred, its slot freed."""
        if verdict.action is Action.DEFER:
            outcome = _outcome(item.row, OS.DEFERRED, verdict.reason.value, due=verdict.defer_until)
        else:
            outcome = _outcome(item.row, OS.SKIPPED, verdict.reason.value)
        detail: dict[str, object] = {"topic": self.ctx.topic, "stage": "last-look"}
        with self._lock:
            self._add(pending, outcome)
            pending.to_release.append(item.key)
            pending.decisions.append(
                decision_row(self.ctx.campaign, item.row.contact_id, verdict, self.now, detail)
            )

    def _result(self, item: _Ready, result: DeliveryResult, pending: _Pending) -> None:
        with self._lock:
            self._result_locked(item, result, pending)

    def _result_locked(self, item: _Ready, result: DeliveryResult, pending: _Pending) -> None:
        r = item.row
        if result.status in (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE):
            self._add(
                pending,
                _outcome(r, OS.SENT, item.reason, attempts=r.attempts + 1, segment=item.segment),
            )
            pending.to_mark.append(item.key)
            self.run_length, self.any_success = 0, True
        elif result.status is DeliveryStatus.BOUNCED:
            self._add(pending, _outcome(r, OS.BOUNCED, HARD_BOUNCE, attempts=r.attempts + 1))
            pending.to_release.append(item.key)
            if item.blind_index is not None:
                pending.bounced.append((r.contact_id, item.blind_index))
        elif result.status is DeliveryStatus.WITHHELD:  # only with a handover: not ours
            self._count(TAKEN_OVER)
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
                self._add(pending, _outcome(r, OS.FAILED, RETRIES_EXHAUSTED, attempts=attempts))
                pending.to_release.append(item.key)
            else:
                why = (
                    TRANSPORT_DEFERRED
                    if result.status is DeliveryStatus.DEFERRED
                    else TRANSPORT_FAILED
                )
                self._add(pending, _outcome(r, OS.DEFERRED, why, due=later, attempts=attempts))
            self._failed_once()

    def _failed_once(self) -> None:
        """One more transport failure in a row (the lock held); pause at the threshold."""
        self.run_length += 1
        earlier = 0 if self.any_success else self.camp.consecutive_failures
        if earlier + self.run_length >= self.threshold:
            self.paused = True

    def _flush_if_full(self, pending: _Pending) -> None:
        """Write what is pending once a group's worth has gathered (SMTP path).

        Bounds what a crash leaves in doubt and delivered (and so duplicated) to
        about ``FLUSH`` messages, at one write transaction per ``FLUSH`` messages.
        """
        with self._lock:
            full = len(pending.outcomes) >= self.FLUSH
        if full:
            with writing(self.engine) as conn:
                self._write(conn, pending)

    def _write(self, conn: Connection, pending: _Pending) -> None:
        """Write ``pending`` and empty it (in place: deliveries on their way hold it)."""
        with self._lock:
            outcomes = list(pending.outcomes)
            to_mark, to_release = list(pending.to_mark), list(pending.to_release)
            bounced, decisions = list(pending.bounced), list(pending.decisions)
            for items in (pending.outcomes, pending.to_mark, pending.to_release):
                items.clear()
            pending.bounced.clear()
            pending.decisions.clear()
            for outcome in outcomes:
                self.report.by_status[outcome["o_status"]] += 1
        _write_back(conn, self.now, outcomes, self.lease_until)
        mark_sent_many(conn, to_mark)
        release_many(conn, to_release)
        self._suppress(conn, bounced)
        record_decisions(conn, decisions)

    def _correct(self, conn: Connection, item: _Ready, correction: _Pending) -> None:
        """A message recorded in doubt at the handover that the server then refused."""
        (outcome,) = correction.outcomes
        conn.execute(
            update(outbox_t)
            .where(
                outbox_t.c.id == item.row.id,
                outbox_t.c.status == OS.IN_DOUBT.value,
                outbox_t.c.lease_until == self.lease_until,
            )
            .values(
                status=outcome["o_status"],
                due_at=outcome["o_due"],
                attempts=outcome["o_attempts"],
                reason=outcome["o_reason"],
                handed_over_at=None,
                lease_until=None,
                updated_at=self.now,
            )
        )
        if outcome["o_status"] == OS.DEFERRED.value:
            unmark_sent(conn, item.key)  # still holds its slot, for the retry
        else:
            release_many(conn, [item.key], sent_too=True)
        self._suppress(conn, correction.bounced)
        self._count(outcome["o_status"])

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

    def _finish(self, conn: Connection) -> None:
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
    composers: Composers | None = None,
) -> list[BatchReport]:
    """Run every due batch of one sending campaign; mark it sent when nothing is left.

    The transport must be open. Rows due later (a recipient's local hour, a deferral)
    stay for a later tick.
    """
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        batches = due_batches(conn, campaign_id, now)
    reports = []
    composers = composers or Composers(settings, vault)
    for batch_no in batches:
        report = run_batch(
            engine, vault, settings, campaign_id, batch_no, transport, now=now, composers=composers
        )
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
    composers = Composers(settings, vault)
    transport.open()
    try:
        for campaign_id in sending:
            reports += send_campaign(
                engine, vault, settings, campaign_id, transport, now=now, composers=composers
            )
    finally:
        transport.close()
    return reports
