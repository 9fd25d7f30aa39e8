"""The tick: launch the campaigns whose time has come, and send their due batches.

What the embedded path (``run_due``, ``send_campaign``) and the beat
(``launch_due`` and ``outbox.due_batches``, then one task per batch) call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from engine.audit import record
from engine.campaigns import lifecycle
from engine.campaigns.batch import BatchReport, run_batch
from engine.campaigns.lifecycle import campaigns_t
from engine.campaigns.outbox import due_batches, pending_count
from engine.campaigns.sender import Composers
from engine.config import Settings
from engine.db import writing
from engine.delivery.base import Transport
from engine.models import CampaignStatus
from engine.vault import Vault

log = logging.getLogger(__name__)

#: The actor the audit log names for what the scheduler does on its own (``tact run``,
#: ``tact beat``): a launch at a campaign's time is nobody's request.
SCHEDULER = "scheduler"


def launch_due(engine: Engine, settings: Settings, now: datetime) -> list[int]:
    """Launch every scheduled campaign whose time has come; returns their ids.

    On PostgreSQL the scheduled rows are taken ``FOR UPDATE SKIP LOCKED``, so two
    ticks on two machines launch each campaign once (the fan-out is idempotent anyway).
    Each launch writes its ``campaign.launched`` audit row (actor :data:`SCHEDULER`, the
    campaign's id and name and its count of recipients, never an address) in the same
    transaction, as a launch by hand does.
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
                record(
                    conn,
                    "campaign.launched",
                    now,
                    actor=SCHEDULER,
                    campaign=row.name,
                    campaign_id=row.id,
                    early=False,
                    recipients=pending_count(conn, row.id),
                )
                launched.append(row.id)
    return launched


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
