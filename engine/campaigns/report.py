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

``by_status_reason`` is each status's rows by final reason; ``deferred`` each deferral
reason with how many wait and when the first and the last of them are due;
``by_locale`` the rows by the recipient's language (the contact's locale folded to its
language subtag: ``zh-Hans-CN`` and ``zh_CN`` count as ``zh``; ``-`` when unknown), and
``by_email_language`` by the language each email is written in, as the template folder
chooses it now (``engine.render.locales.pick`` over the languages it has whole content
in; empty when the folder cannot be read: it may have changed since the send).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from engine.campaigns.lifecycle import get, outbox_t
from engine.errors import TactError
from engine.models import GateDecision, OutboxStatus
from engine.render.locales import BrandWords, pick
from engine.render.template import TemplateSpec, email_languages
from engine.vault.vault import contacts

decisions_t = GateDecision.__table__  # type: ignore[attr-defined]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _utc(value: Any) -> Any:
    """A time read back from SQLite has no zone: it is UTC."""
    if value is not None and getattr(value, "tzinfo", 1) is None:
        return value.replace(tzinfo=UTC)
    return value


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
    by_status_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    deferred: list[DeferredWindow] = field(default_factory=list)
    by_locale: dict[str, dict[str, int]] = field(default_factory=dict)
    by_email_language: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeferredWindow:
    """Recipients deferred for one reason, and when the first and the last are due (ISO)."""

    reason: str
    recipients: int
    first_due: str | None
    last_due: str | None


def language(locale: str | None) -> str:
    """A contact's locale folded to its language subtag (``zh-Hans-CN`` -> ``zh``)."""
    if not locale:
        return "-"
    return locale.replace("_", "-").split("-", 1)[0].lower() or "-"


def report(conn: Connection, campaign_id: int) -> dict[str, Any]:
    """:func:`campaign_report` as a plain mapping (for callers that index it by key)."""
    return asdict(campaign_report(conn, campaign_id))


def _email_languages(templates_dir: Path | None, template: str) -> tuple[tuple[str, ...], str]:
    """The languages the template's emails can be in (default first), or () when unknown."""
    if templates_dir is None:
        return (), ""
    try:
        spec = TemplateSpec.load(templates_dir / "campaigns" / template)
        languages, _ = email_languages(spec, BrandWords.load(templates_dir / "brand"))
    except (TactError, OSError, ValueError):
        return (), ""
    return languages, spec.language


def campaign_report(
    conn: Connection, campaign_id: int, templates_dir: Path | None = None
) -> CampaignReport:
    """The report; with ``templates_dir``, also the rows by the language of the email."""
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
    by_status_reason: dict[str, dict[str, int]] = {}
    for status, reason, n in conn.execute(
        select(outbox_t.c.status, outbox_t.c.reason, func.count())
        .where(outbox_t.c.campaign_id == campaign_id)
        .group_by(outbox_t.c.status, outbox_t.c.reason)
    ).all():
        by_status_reason.setdefault(status, {})[reason or "none"] = int(n)
    deferred = [
        DeferredWindow(reason or "none", int(n), _iso(_utc(first)), _iso(_utc(last)))
        for reason, n, first, last in conn.execute(
            select(
                outbox_t.c.reason,
                func.count(),
                func.min(outbox_t.c.due_at),
                func.max(outbox_t.c.due_at),
            )
            .where(
                outbox_t.c.campaign_id == campaign_id,
                outbox_t.c.status == OutboxStatus.DEFERRED.value,
            )
            .group_by(outbox_t.c.reason)
            .order_by(func.count().desc())
        ).all()
    ]
    by_locale: dict[str, dict[str, int]] = {}
    by_email_language: dict[str, dict[str, int]] = {}
    languages, default = _email_languages(templates_dir, camp.template)
    for locale, status, n in conn.execute(
        select(contacts.c.locale, outbox_t.c.status, func.count())
        .select_from(outbox_t.outerjoin(contacts, contacts.c.id == outbox_t.c.contact_id))
        .where(outbox_t.c.campaign_id == campaign_id)
        .group_by(contacts.c.locale, outbox_t.c.status)
    ).all():
        counts = by_locale.setdefault(language(locale), {})
        counts[status] = counts.get(status, 0) + int(n)
        if languages:
            written = by_email_language.setdefault(pick(locale, languages, default), {})
            written[status] = written.get(status, 0) + int(n)
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
        by_status_reason=by_status_reason,
        deferred=deferred,
        by_locale=dict(sorted(by_locale.items())),
        by_email_language=dict(sorted(by_email_language.items())),
    )
