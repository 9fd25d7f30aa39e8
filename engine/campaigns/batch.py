"""One batch: claim → gate → read → render → send → record.

``run_batch`` is the unit a worker runs (ids in: campaign id and batch number) and the
embedded mode calls directly. Its three steps:

1. Claim and gate, in one write transaction: the batch's due rows become
   ``claimed`` in a single statement (``outbox.claim``), and the gate runs right
   there, at send time, for exactly those contacts; skips and deferrals are
   written back.
2. Read and render, outside any transaction: the vault gives the declared fields
   for this batch only; the Message-ID is the one fixed on the row.
3. Last look, send and record (``sender.BatchSender``): right before a message
   leaves, ``policy.last_look`` re-checks what the customer may have changed since
   the claim, in the transaction that records the message. An idempotent
   transport (Maildir, null) sends a group of 100 inside it and records them
   sent; SMTP gets a ``handover`` that commits each row as ``in_doubt`` right
   before the final dot of DATA, and the rows the server answered 250 become
   ``sent`` in bulk (every 100, and at the end of the batch). Deferred rows get a
   backoff (``retry.next_attempt``; failed once exhausted, and the slot released),
   bounced rows suppress the blind index and free the slot.

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

Consecutive failures (``results``): at ``settings.campaign_pause_after_failures``
transport failures in a row the campaign pauses itself; rows of the batch not
tried yet go back to pending.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from engine.campaigns import lifecycle
from engine.campaigns.outbox import Claimed, claim, message_key, outcome, write_back
from engine.campaigns.results import render_pause_reason
from engine.campaigns.sender import BatchSender, Composers
from engine.config import Settings
from engine.consent.topics import cached_topics
from engine.db import writing
from engine.delivery.base import Transport
from engine.errors import RenderError, TemplateError
from engine.models import CampaignStatus, OutboxStatus
from engine.policy import Action, GateContext, Limits, gate
from engine.vault import Vault

__all__ = ["BatchReport", "gate_context", "render_pause_reason", "run_batch"]

log = logging.getLogger(__name__)
OS = OutboxStatus


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


def gate_context(settings: Settings, camp: Any, now: datetime) -> GateContext:
    """What the gate and the last look know of this campaign at ``now``."""
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
        ctx = gate_context(settings, camp, now)
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
                decided.append(outcome(r, OS.SKIPPED, verdict.reason.value))
            elif verdict.action is Action.DEFER:
                decided.append(
                    outcome(r, OS.DEFERRED, verdict.reason.value, due=verdict.defer_until)
                )
            else:
                allowed.append((r, verdict.reason.value))
        write_back(conn, now, decided, lease_until)
    for row_outcome in decided:
        report.by_status[row_outcome["o_status"]] += 1
    if allowed:
        sender = BatchSender(engine, vault, settings, camp, ctx, lease_until, transport, report)
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
