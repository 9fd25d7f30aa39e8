"""A campaign's lifecycle: create, schedule, launch (fan-out), pause, resume, cancel.

One transition table (``TRANSITIONS``) decides every move; anything else is refused
with ``IllegalTransition`` naming both states. A move is a compare-and-set on the
status (``UPDATE … WHERE status = <seen>``), so two operators or workers racing on
one campaign cannot both win.

``launch`` is the fan-out: it writes one outbox row per eligible contact (ids only),
with the batch number, the due time in the contact's zone and the Message-ID fixed
for good. The row is unique per (campaign, contact), so a second launch adds only
contacts that were not there before. The gate still runs later, per batch, at send
time: the audience built here is a list of candidates, not a permission.

Call every function inside one transaction that may write: on SQLite
``engine.db.writing()``; on PostgreSQL any ``engine.begin()`` (the campaign row is
locked ``FOR UPDATE`` first).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.campaigns.audience import audience_query
from engine.config import Settings
from engine.consent.topics import cached_topics
from engine.errors import CampaignExists, CampaignNotFound, IllegalTransition, TemplateError
from engine.models import Campaign, CampaignStatus, GateDecision, OutboxRow, OutboxStatus
from engine.policy.quiet_hours import zone as zone_named
from engine.render.brand import Brand
from engine.render.mime import message_id_for
from engine.render.template import TemplateSpec
from engine.segments import segment_for_contacts
from engine.vault.vault import contacts

campaigns_t = Campaign.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]

S = CampaignStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.SENDING, S.PAUSED, S.CANCELLED}),
    S.SENDING: frozenset({S.PAUSED, S.SENT, S.CANCELLED}),
    S.PAUSED: frozenset({S.SCHEDULED, S.SENDING, S.CANCELLED}),
    S.SENT: frozenset(),
    S.CANCELLED: frozenset(),
}
#: The earliest zone offset on Earth (UTC+14): a local-hour campaign fans out then.
EARLIEST_OFFSET = timedelta(hours=14)
STANDARD = "standard"
CANCELLED_REASON = "campaign-cancelled"
_HOUR = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def get(conn: Connection, ref: int | str, *, lock: bool = False) -> Row[Any]:
    """The campaign row by id or by name (locked ``FOR UPDATE`` on PostgreSQL when asked)."""
    query = select(campaigns_t).where(
        campaigns_t.c.id == ref if isinstance(ref, int) else campaigns_t.c.name == ref
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise CampaignNotFound(
            f"no campaign {ref!r}", hint="`tact campaigns list` shows the campaigns there are"
        )
    return row


def ids(conn: Connection) -> list[int]:
    """Every campaign's id, newest first."""
    return [
        int(i)
        for i in conn.execute(select(campaigns_t.c.id).order_by(campaigns_t.c.id.desc())).scalars()
    ]


def sending_ids(conn: Connection) -> list[int]:
    """The campaigns now sending, highest priority first (the order their batches go in)."""
    return [
        int(i)
        for i in conn.execute(
            select(campaigns_t.c.id)
            .where(campaigns_t.c.status == S.SENDING.value)
            .order_by(campaigns_t.c.priority.desc(), campaigns_t.c.id)
        ).scalars()
    ]


def parse_local_hour(text: str) -> time:
    match = _HOUR.match(text)
    if match is None:
        raise TemplateError(f"local hour {text!r} is not HH:MM (00:00-23:59)")
    return time(int(match.group(1)), int(match.group(2)))


def create(
    conn: Connection,
    settings: Settings,
    *,
    name: str,
    template: str,
    topic: str | None = None,
    segments: Sequence[str] | None = None,
    send_at: datetime | None = None,
    local_hour: str | None = None,
    send_date: date | None = None,
    deadline: datetime | None = None,
    allow_defer: bool = True,
    priority: int = 0,
    transactional: bool = False,
    now: datetime | None = None,
) -> int:
    """A new draft campaign; returns its id. The template and the topic must exist."""
    now = now or datetime.now(UTC)
    spec = TemplateSpec.load(settings.templates_dir / "campaigns" / template)
    topic = topic or spec.topic
    cached_topics(settings.resolved_topics_file).get(topic)  # refuses an unknown topic
    check_times(send_at, local_hour, send_date, deadline)
    exists = conn.execute(select(campaigns_t.c.id).where(campaigns_t.c.name == name)).first()
    if exists is not None:
        raise CampaignExists(
            f"a campaign named {name!r} already exists",
            hint=f"pick another name, or `tact campaigns edit {name}` to change that one",
        )
    chosen = [s for s in (segments or ()) if s]
    result = conn.execute(
        campaigns_t.insert().values(
            name=name,
            template=template,
            topic=topic,
            audience={"segments": chosen} if chosen else {"all": True},
            priority=priority,
            send_at=send_at,
            local_hour=local_hour,
            send_date=send_date if local_hour is not None else None,
            deadline=deadline,
            allow_defer=allow_defer,
            transactional=transactional,
            status=S.DRAFT.value,
            created_at=now,
            consecutive_failures=0,
        )
    )
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every backend returns the key
        raise TemplateError("the campaign was not stored")
    return int(key[0])


def check_times(
    send_at: datetime | None,
    local_hour: str | None,
    send_date: date | None,
    deadline: datetime | None,
) -> None:
    """Refuse a send time that cannot be used (both kinds, a local hour with no date, no zone)."""
    if send_at is not None and local_hour is not None:
        raise TemplateError("give either a send time or a local hour, not both")
    if local_hour is not None:
        parse_local_hour(local_hour)
        if send_date is None:
            raise TemplateError("a local hour needs a date")
    for label, value in (("send time", send_at), ("deadline", deadline)):
        if value is not None and value.tzinfo is None:
            raise TemplateError(f"the {label} needs a time zone (e.g. 2026-12-01T09:00+00:00)")


#: What ``edit`` may change, until the launch.
EDITABLE = frozenset(
    {"send_at", "local_hour", "send_date", "deadline", "audience", "priority", "allow_defer"}
)


def editable(row: Any) -> str | None:
    """Why the campaign can no longer be edited, or None while it can (not launched yet)."""
    if row.launched_at is not None:
        at = row.launched_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"it was launched at {at}: its audience and send times are fixed in the outbox"
    if row.status not in (S.DRAFT, S.SCHEDULED, S.PAUSED):
        return f"it is {row.status}"
    return None


def edit(conn: Connection, campaign_id: int, values: dict[str, Any]) -> Row[Any]:
    """Change a campaign not launched yet (a compare-and-set on its status and launch);
    returns the row as it was. ``values`` holds only :data:`EDITABLE` columns."""
    unknown = set(values) - EDITABLE
    if unknown:
        raise TemplateError(f"cannot edit {sorted(unknown)}")
    row = get(conn, campaign_id, lock=True)
    why = editable(row)
    if why is not None:
        raise IllegalTransition(
            f"campaign {row.name!r} cannot be edited: {why}",
            hint=f"`tact campaigns clone {row.name} NEW` makes an editable copy",
        )
    merged = {name: values.get(name, getattr(row, name)) for name in EDITABLE}
    check_times(merged["send_at"], merged["local_hour"], merged["send_date"], merged["deadline"])
    if not values:
        return row
    result = conn.execute(
        update(campaigns_t)
        .where(
            campaigns_t.c.id == campaign_id,
            campaigns_t.c.status == row.status,
            campaigns_t.c.launched_at.is_(None),
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise IllegalTransition(f"campaign {row.name!r} changed meanwhile; try again")
    return row


def went_out(conn: Connection, campaign_id: int, name: str) -> int:
    """How many of the campaign's rows or gate decisions show that it reached the gate or a
    transport: rows other than those skipped by the cancel, plus its gate decisions."""
    rows = conn.execute(
        select(func.count())
        .select_from(outbox_t)
        .where(
            outbox_t.c.campaign_id == campaign_id,
            ~(
                (outbox_t.c.status == OutboxStatus.SKIPPED.value)
                & (outbox_t.c.reason == CANCELLED_REASON)
            ),
        )
    ).scalar_one()
    decisions_t = GateDecision.__table__  # type: ignore[attr-defined]
    decided = conn.execute(
        select(func.count()).select_from(decisions_t).where(decisions_t.c.campaign == name)
    ).scalar_one()
    return int(rows) + int(decided)


def delete_draft(conn: Connection, campaign_id: int) -> Row[Any]:
    """Delete a draft (it has no outbox row and no decision); returns the row deleted."""
    row = get(conn, campaign_id, lock=True)
    if row.status != S.DRAFT:
        raise IllegalTransition(
            f"campaign {row.name!r} is {row.status}; only a draft can be deleted",
            hint=(
                f"`tact campaigns delete --cancelled {row.name}` frees a cancelled one's name"
                if row.status == S.CANCELLED
                else f"`tact campaigns cancel {row.name}` stops it for good"
            ),
        )
    result = conn.execute(
        campaigns_t.delete().where(
            campaigns_t.c.id == campaign_id, campaigns_t.c.status == S.DRAFT.value
        )
    )
    if result.rowcount != 1:
        raise IllegalTransition(f"campaign {row.name!r} changed meanwhile; try again")
    return row


def retire_name(conn: Connection, campaign_id: int) -> str:
    """Free a cancelled campaign's name by renaming its row ``<name>~deleted-<id>``: the row,
    its outbox rows and the audit trail stay. Refused when it reached the gate or a
    transport: its Message-IDs derive from its name, and its decisions are filed under it,
    so a new campaign of that name would repeat both. Returns the new name."""
    row = get(conn, campaign_id, lock=True)
    if row.status != S.CANCELLED:
        raise IllegalTransition(
            f"campaign {row.name!r} is {row.status}, not cancelled",
            hint=(
                f"`tact campaigns delete {row.name}` deletes a draft"
                if row.status == S.DRAFT
                else f"`tact campaigns cancel {row.name}` first"
            ),
        )
    used = went_out(conn, campaign_id, row.name)
    if used:
        raise IllegalTransition(
            f"the name {row.name!r} stays taken: the campaign reached the gate or sent "
            f"({used:,} outbox rows and gate decisions), and its Message-IDs and audit trail "
            "derive from its name, so a new campaign of that name would repeat them",
            hint=f"give the new campaign another name, e.g. `tact campaigns clone {row.name} "
            f"{row.name}-2`",
        )
    suffix = f"~deleted-{row.id}"
    new_name = f"{row.name[: 64 - len(suffix)]}{suffix}"
    conn.execute(update(campaigns_t).where(campaigns_t.c.id == campaign_id).values(name=new_name))
    return new_name


def _move(conn: Connection, campaign_id: int, to: CampaignStatus, **values: Any) -> Row[Any]:
    row = get(conn, campaign_id, lock=True)
    if to not in TRANSITIONS[row.status]:
        raise IllegalTransition(f"campaign {row.name!r} is {row.status}; it cannot become {to}")
    result = conn.execute(
        update(campaigns_t)
        .where(campaigns_t.c.id == campaign_id, campaigns_t.c.status == row.status)
        .values(status=to.value, **values)
    )
    if result.rowcount != 1:
        raise IllegalTransition(f"campaign {row.name!r} changed meanwhile; try again")
    return row


def schedule(conn: Connection, campaign_id: int, now: datetime) -> None:
    _move(conn, campaign_id, S.SCHEDULED, scheduled_at=now)


def pause(conn: Connection, campaign_id: int, now: datetime, reason: str = "operator") -> None:
    """Stop claiming rows. Rows already claimed finish; the rest wait for ``resume``."""
    _move(conn, campaign_id, S.PAUSED, pause_reason=reason[:200])


def resume(conn: Connection, campaign_id: int, now: datetime) -> None:
    """Back to sending (or to scheduled, when it was paused before its launch)."""
    row = get(conn, campaign_id, lock=True)
    to = S.SENDING if row.launched_at is not None else S.SCHEDULED
    if row.status != S.PAUSED:
        raise IllegalTransition(f"campaign {row.name!r} is {row.status}, not paused")
    _move(conn, campaign_id, to, pause_reason=None, consecutive_failures=0)


def cancel(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Cancel for good; rows not yet sent are skipped (``campaign-cancelled``). Returns how many."""
    _move(conn, campaign_id, S.CANCELLED, finished_at=now)
    result = conn.execute(
        update(outbox_t)
        .where(
            outbox_t.c.campaign_id == campaign_id,
            outbox_t.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.DEFERRED.value]),
        )
        .values(status=OutboxStatus.SKIPPED.value, reason=CANCELLED_REASON, updated_at=now)
    )
    return int(result.rowcount)


def finish(conn: Connection, campaign_id: int, now: datetime) -> bool:
    """Mark a sending campaign sent once no row is pending, deferred or claimed."""
    left = conn.execute(
        select(func.count())
        .select_from(outbox_t)
        .where(
            outbox_t.c.campaign_id == campaign_id,
            outbox_t.c.status.in_(OPEN),
        )
    ).scalar_one()
    if left:
        return False
    row = get(conn, campaign_id, lock=True)
    if row.status != S.SENDING:
        return False
    _move(conn, campaign_id, S.SENT, finished_at=now)
    return True


#: Rows not settled yet. ``in_doubt`` is open: it is claimed again after its lease.
OPEN = (
    OutboxStatus.PENDING.value,
    OutboxStatus.DEFERRED.value,
    OutboxStatus.CLAIMED.value,
    OutboxStatus.IN_DOUBT.value,
)


def launch_time(row: Any) -> datetime | None:
    """When the fan-out should happen: the send time, or the local hour's earliest instant."""
    if row.send_at is not None:
        send_at: datetime = row.send_at
        return send_at
    if row.local_hour is not None and row.send_date is not None:
        naive = datetime.combine(row.send_date, parse_local_hour(row.local_hour))
        return naive.replace(tzinfo=UTC) - EARLIEST_OFFSET
    return None  # as soon as it is scheduled


def due_at_for(row: Any, timezone: str | None, now: datetime) -> datetime:
    """A recipient's due time: the send time, or the local hour in their zone (else UTC)."""
    if row.send_at is not None:
        send_at: datetime = row.send_at
        return send_at
    if row.local_hour is None or row.send_date is None:
        return now
    local = datetime.combine(
        row.send_date, parse_local_hour(row.local_hour), tzinfo=zone_named(timezone)
    )
    return local.astimezone(UTC)


def message_domain(settings: Settings) -> str:
    return Brand.load(settings.templates_dir / "brand").sender_address.rpartition("@")[2]


def message_id(campaign_name: str, contact_id: UUID, domain: str) -> str:
    """The Message-ID of one (campaign, contact), fixed at fan-out and reused by every retry.

    Keyed by the campaign's *name* (unique), not its template's: two campaigns built from
    one template are two messages. For a campaign named like its template this equals
    ``Composer.message_id``.
    """
    return message_id_for(campaign_name, contact_id, domain)


def candidates(
    conn: Connection, row: Any, now: datetime
) -> tuple[dict[UUID, str | None], dict[UUID, str | None]]:
    """The campaign's audience as of ``now``: each candidate's time zone, and the segment of
    each that has one. The same query serves the launch (the fan-out) and the estimate, so
    an estimate counts exactly whom a launch now would write a row for."""
    zones: dict[UUID, str | None] = dict(
        conn.execute(audience_query(row.topic, at=now, columns=(contacts.c.timezone,))).all()
    )
    segments = segment_for_contacts(conn, list(zones))
    wanted = (row.audience or {}).get("segments") or []
    if wanted:
        zones = {cid: z for cid, z in zones.items() if (segments.get(cid) or STANDARD) in wanted}
    return zones, segments


def is_due(row: Any, now: datetime) -> bool:
    """Whether a scheduled campaign's launch time has come (no time: as soon as scheduled)."""
    at = launch_time(row)
    return at is None or at <= now


def next_due_at(conn: Connection, now: datetime) -> datetime | None:
    """The next moment after ``now`` at which there is work: a scheduled campaign's launch,
    or a pending or deferred row of a sending campaign coming due. ``tact run`` sleeps
    until then (bounded by its poll interval, which also covers leases running out)."""
    moments: list[datetime] = []
    for row in conn.execute(
        select(campaigns_t).where(campaigns_t.c.status == S.SCHEDULED.value)
    ).all():
        at = launch_time(row)
        if at is not None and at > now:
            moments.append(at)
    next_row = conn.execute(
        select(func.min(outbox_t.c.due_at))
        .select_from(outbox_t.join(campaigns_t, campaigns_t.c.id == outbox_t.c.campaign_id))
        .where(
            campaigns_t.c.status == S.SENDING.value,
            outbox_t.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.DEFERRED.value]),
            outbox_t.c.due_at > now,
        )
    ).scalar_one()
    if next_row is not None:
        moments.append(next_row if next_row.tzinfo else next_row.replace(tzinfo=UTC))
    return min(moments, default=None)


def launch(
    conn: Connection, campaign_id: int, now: datetime, *, settings: Settings, early: bool = False
) -> int:
    """Fan out: write the outbox rows for the audience; returns how many rows were added.

    ``early``: launched before its time on purpose (``campaigns send --now``): a campaign
    with one send time is due now; a local-hour one still reaches each recipient at
    their hour on its date."""
    row = get(conn, campaign_id, lock=True)
    if row.status == S.SCHEDULED:
        _move(conn, campaign_id, S.SENDING, launched_at=now)
    elif row.status != S.SENDING:
        raise IllegalTransition(
            f"campaign {row.name!r} is {row.status}; only a scheduled "
            "or sending campaign can be launched"
        )
    zones, segments = candidates(conn, row, now)
    ids = list(zones)
    existing = set(
        conn.execute(
            select(outbox_t.c.contact_id).where(outbox_t.c.campaign_id == campaign_id)
        ).scalars()
    )
    new = [cid for cid in ids if cid not in existing]
    if not new:
        return 0
    domain = message_domain(settings)
    size = settings.campaign_batch_size
    first = len(existing)
    rows = [
        {
            "campaign_id": campaign_id,
            "contact_id": cid,
            "batch_no": (first + i) // size,
            "due_at": now
            if early and row.send_at is not None
            else due_at_for(row, zones.get(cid), now),
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "message_id": message_id(row.name, cid, domain),
            "segment": segments.get(cid) or STANDARD,
            "updated_at": now,
        }
        for i, cid in enumerate(new)
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # executemany of one compiled statement (psycopg pipelines it): measured 1.4 s for
    # 100k rows on PostgreSQL, against 14 s for multi-row VALUES, which SQLAlchemy
    # compiles afresh for every chunk of 1,000 rows.
    stmt = dialect.insert(outbox_t).on_conflict_do_nothing(
        index_elements=["campaign_id", "contact_id"]
    )
    for start in range(0, len(rows), 1000):
        conn.execute(stmt, rows[start : start + 1000])
    total = conn.execute(
        select(func.count()).select_from(outbox_t).where(outbox_t.c.campaign_id == campaign_id)
    ).scalar_one()
    return int(total) - len(existing)
