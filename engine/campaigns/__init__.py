"""Campaigns: lifecycle, DB-driven schedule, fan-out into the outbox, the batch pipeline.

Workers and the embedded mode call the same functions with ids: ``launch``,
``run_batch``, ``run_due``.
"""

from __future__ import annotations

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
from engine.campaigns.pipeline import BatchReport, run_batch, run_due, send_campaign
from engine.campaigns.report import report
from engine.errors import CampaignNotFound, IllegalTransition

__all__ = [
    "TRANSITIONS",
    "BatchReport",
    "CampaignNotFound",
    "IllegalTransition",
    "cancel",
    "create",
    "get",
    "launch",
    "pause",
    "report",
    "resume",
    "run_batch",
    "run_due",
    "schedule",
    "send_campaign",
]
