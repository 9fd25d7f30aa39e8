"""Campaigns: lifecycle, DB-driven schedule, fan-out into the outbox, the batch pipeline.

Workers and the embedded mode call the same functions with ids: ``launch``,
``run_batch``, ``run_due``. The pipeline, by job: ``outbox`` (the store: due rows,
the claim, every write-back), ``batch`` (one batch: claim, gate, read, render,
send, record), ``sender`` (compose, last look, send), ``handover`` (the in-doubt
record before a non-idempotent transport's point of no return), ``results`` (what
each delivery result means for its row), ``tick`` (launch what is due, send due
batches).
"""

from __future__ import annotations

from engine.campaigns.batch import BatchReport, run_batch
from engine.campaigns.lifecycle import (
    TRANSITIONS,
    cancel,
    create,
    get,
    launch,
    pause,
    resume,
    schedule,
)
from engine.campaigns.outbox import RENDER_ERROR, due_batches, pending_count
from engine.campaigns.report import report
from engine.campaigns.sender import Composers
from engine.campaigns.tick import launch_due, run_due, send_campaign
from engine.errors import CampaignNotFound, IllegalTransition

__all__ = [
    "RENDER_ERROR",
    "TRANSITIONS",
    "BatchReport",
    "CampaignNotFound",
    "Composers",
    "IllegalTransition",
    "cancel",
    "create",
    "due_batches",
    "get",
    "launch",
    "launch_due",
    "pause",
    "pending_count",
    "report",
    "resume",
    "run_batch",
    "run_due",
    "schedule",
    "send_campaign",
]
