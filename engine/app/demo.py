"""``make demo``: the whole path on the embedded default, through the real campaign pipeline.

init → generate customers (to a temporary file, deleted after) → import →
segments → the example campaign, through the same use-cases as ``tact campaigns
create/send`` (:mod:`engine.app.campaigns`): created as a draft named like its
template, brought to sending by :func:`engine.app.campaigns.to_sending` (scheduled,
launched: the fan-out writes one outbox row per candidate), then every due batch
by :func:`engine.app.campaigns.send_now` (claim → gate → render → Maildir outbox →
record) → the campaign report → a staff account to open the console with
(:func:`console_login`: ``admin@northwind.example``, role admin; its password is
returned once, and a re-run resets it, since the first one was shown only once).

The gate decides at send time, so what happens depends on the clock: recipients
in their quiet hours are deferred to the end of them, and stay in the outbox
table for ``tact run`` (or ``tact beat`` with workers, or ``tact campaigns send``)
to deliver when their slot comes. That is a normal outcome, not a failure.

Re-running is safe and sends nothing twice: the import upserts, the build
replaces the segments, and the campaign is the same one (found by name): a
campaign that is still sending only runs its batches that are due by now (the
deferred recipients whose slot has come), a finished one sends nothing. The
outbox row is unique per (campaign, contact) and the Maildir transport refuses a
Message-ID it already holds.

The demo always writes into the Maildir outbox (``settings.resolved_outbox_dir``),
whatever ``settings.transport`` says: it mails synthetic customers.
"""

from __future__ import annotations

import tempfile
import time as clock
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from uuid import UUID

from sqlalchemy import Connection, func, select

from engine.app import campaigns as use
from engine.app import staff
from engine.app.campaigns import Start
from engine.campaigns import lifecycle
from engine.campaigns.lifecycle import outbox_t
from engine.campaigns.report import CampaignReport, campaign_report
from engine.config import Settings
from engine.delivery.maildir import MaildirTransport
from engine.errors import CampaignNotFound, DemoError, StaffExists
from engine.links.urls import links_for
from engine.models import OutboxStatus
from engine.people.importer import ImportReport, import_file
from engine.render.template import TemplateSpec
from engine.runtime import Runtime
from engine.segments import BuildOptions, BuildReport, build, load_rules
from engine.setup import initialize
from engine.synthetic import generate_customers, write_jsonl
from engine.vault.vault import contacts

__all__ = [
    "CAMPAIGN",
    "DEMO_ADMIN",
    "ConsoleLogin",
    "DemoReport",
    "Start",
    "console_login",
    "run_demo",
]

#: The example campaign's template; the demo's campaign carries the same name.
CAMPAIGN = "autumn-2026"
#: The demo's staff account: the console's first admin on a demo installation.
DEMO_ADMIN = "admin@northwind.example"


@dataclass(frozen=True)
class ConsoleLogin:
    """How to open the console after the demo: the account and its password (shown once)."""

    staff_id: int
    email: str
    role: str
    #: Chosen by Tact now; stored only as an Argon2id hash.
    password: str
    #: True when the account was made now; False when it existed and its password was reset
    #: (its sessions ended), since the password printed the first time was shown once.
    created: bool
    #: The console on ``tact serve``'s own address.
    url: str


@dataclass(frozen=True)
class Deferred:
    """Deferred recipients of one reason, and when the first and the last of them are due."""

    reason: str
    count: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class Sample:
    """One recipient to look at: ids and its signed preference-center link, nothing personal."""

    contact_id: UUID
    public_id: UUID
    segment: str
    status: str
    preferences_url: str  # as the email carries it (settings.public_base_url)
    local_url: str  # the same token on ``tact serve``'s own address


@dataclass
class DemoReport:
    setup: list[str]
    imported: ImportReport
    segments: BuildReport
    outbox: Path
    start: Start
    #: Recipients by status, reason, segment; every gate decision.
    campaign: CampaignReport
    contacts: int  # contacts in the database (the audience is a subset)
    console: ConsoleLogin | None = None
    this_run: Counter[str] = field(default_factory=Counter)
    outbox_files: int = 0
    sample: Sample | None = None
    seconds: float = 0.0  # the sending step (this run's batches)

    @property
    def name(self) -> str:
        return self.campaign.name

    @property
    def by_status(self) -> dict[str, int]:
        return self.campaign.by_status

    def count(self, status: OutboxStatus) -> int:
        return int(self.by_status.get(status.value, 0))

    @property
    def by_status_reason(self) -> dict[tuple[str, str], int]:
        """(status, reason) -> recipients: the final reason on each outbox row, by status."""
        return {
            (status, reason): n
            for status, reasons in self.campaign.by_status_reason.items()
            for reason, n in reasons.items()
        }

    @property
    def deferred(self) -> list[Deferred]:
        """The campaign report's deferrals by reason, with their times as datetimes."""
        return [
            Deferred(d.reason, d.recipients, _instant(d.first_due), _instant(d.last_due))
            for d in self.campaign.deferred
        ]


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def run_demo(
    runtime: Runtime | Settings,
    *,
    customers: int = 5000,
    seed: int = 42,
    as_of: date = date(2026, 11, 1),
    bad_rows: int = 12,
    campaign: str = CAMPAIGN,
    now: datetime | None = None,
    on_step: Callable[[str], None] = lambda _: None,
    import_progress: Callable[[int, int], None] | None = None,
    send_progress: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Run the demo; ``now`` (UTC) is the campaign's clock (default: the wall clock).

    Given settings rather than a runtime, it builds its own and closes it at the end.
    """
    own = not isinstance(runtime, Runtime)
    rt = Runtime(runtime, configure_logging=False) if not isinstance(runtime, Runtime) else runtime
    try:
        return _run(
            rt,
            customers,
            seed,
            as_of,
            bad_rows,
            campaign,
            now,
            on_step,
            import_progress,
            send_progress,
        )
    finally:
        if own:
            rt.close()


def _run(
    rt: Runtime,
    customers: int,
    seed: int,
    as_of: date,
    bad_rows: int,
    campaign: str,
    now: datetime | None,
    on_step: Callable[[str], None],
    import_progress: Callable[[int, int], None] | None,
    send_progress: Callable[[int, int], None] | None,
) -> DemoReport:
    settings = rt.settings
    on_step("setting up")
    setup = initialize(settings=settings)
    engine = rt.engine  # built now, after the database exists
    vault = rt.vault  # checked against the keyring initialize made or found
    with tempfile.TemporaryDirectory(prefix="tact-demo-") as tmp:
        source = Path(tmp) / "customers.jsonl"
        on_step(f"generating {customers:,} customers")
        write_jsonl(
            source, generate_customers(customers, seed=seed, as_of=as_of, bad_rows=bad_rows)
        )
        size = source.stat().st_size
        on_step("importing")
        imported = import_file(
            engine,
            vault,
            settings,
            source,
            progress=(lambda b: import_progress(b, size)) if import_progress else None,
        )
    on_step("building segments")
    segments = build(
        engine,
        load_rules(settings.templates_dir / "segments.toml"),
        # The customers' histories end at as_of: profile them as of that day,
        # so the same customers always give the same segments.
        BuildOptions(seed=seed, as_of=datetime.combine(as_of, time(), tzinfo=UTC)),
    )
    now = now or datetime.now(UTC)
    outbox = settings.resolved_outbox_dir
    on_step(f"campaign {campaign}: create or find, launch, send the due batches")
    started = clock.perf_counter()
    campaign_id, start = _prepare_campaign(rt, campaign, now)
    this_run: Counter[str] = Counter()
    if start in (Start.CREATED, Start.LAUNCHED, Start.RESUMED):
        transport = MaildirTransport(outbox)  # the demo mails synthetic customers: Maildir
        transport.open()
        try:
            _, totals = use.send_now(
                rt, campaign_id, now, transport=transport, progress=send_progress
            )
        finally:
            transport.close()
        this_run.update(totals)
    seconds = clock.perf_counter() - started
    with engine.connect() as conn:
        report = DemoReport(
            setup=setup,
            imported=imported,
            segments=segments,
            outbox=outbox,
            start=start,
            campaign=campaign_report(conn, campaign_id),
            contacts=int(conn.execute(select(func.count()).select_from(contacts)).scalar_one()),
            this_run=this_run,
            outbox_files=count_files(outbox / "new"),
            seconds=seconds,
        )
        report.sample = sample_recipient(conn, rt, campaign_id)
    on_step("a staff account for the console")
    report.console = console_login(rt, now=now)
    return report


def console_url(settings: Settings) -> str:
    """The console on ``tact serve``'s address (a wildcard bind is reached on loopback)."""
    host = settings.web_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - reached on loopback, not bound
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web_port}/admin"


def console_login(rt: Runtime, *, now: datetime | None = None) -> ConsoleLogin:
    """The demo's admin account (:data:`DEMO_ADMIN`) with a new password, created if need be.

    An existing account is reused: made an admin again, enabled, unlocked, and given a new
    password (which ends its sessions): the one printed before was shown only once.
    """
    try:
        added = staff.add(rt, DEMO_ADMIN, "admin", now=now)
        created = True
        staff_id, password = added.id, added.password
    except StaffExists:
        created = False
        staff_id = staff.find(rt, DEMO_ADMIN)
        member = next(m for m in staff.list_staff(rt, with_email=False) if m.id == staff_id)
        if not member.active:
            staff.enable(rt, str(staff_id), now=now)
        if member.role.value != "admin":
            staff.set_role(rt, str(staff_id), "admin", now=now)
        reset = staff.reset_password(rt, str(staff_id), now=now)  # also lifts a lock
        password = reset.password
    if password is None:  # chosen by Tact in both branches: a change above broke that
        raise DemoError("the demo admin got no password to show")
    return ConsoleLogin(
        staff_id=staff_id,
        email=DEMO_ADMIN,
        role="admin",
        password=password,
        created=created,
        url=console_url(rt.settings),
    )


def _prepare_campaign(rt: Runtime, name: str, now: datetime) -> tuple[int, Start]:
    """Find the demo's campaign (or create it) and bring it to sending, as ``campaigns send``
    does (:func:`engine.app.campaigns.to_sending`); a sent, paused or cancelled one is
    left alone."""
    try:
        found = use.status(rt, name)
        created = False
    except CampaignNotFound:
        found = use.create(rt, use.NewCampaign(name=name, template=name), now=now)
        created = True
    if found.template != name:
        raise DemoError(
            f"a campaign named {name!r} exists with template {found.template!r}; "
            "the demo will not send it (cancel it, or run the demo on another var directory)"
        )
    campaign_id, start = use.to_sending(rt, name, now, early=True, strict=False)
    return campaign_id, Start.CREATED if created else start


def sample_recipient(conn: Connection, rt: Runtime, campaign_id: int) -> Sample | None:
    """The first recipient (by id) who was sent the email, else the first of any status."""
    camp = lifecycle.get(conn, campaign_id)
    found = None
    for wanted in (OutboxStatus.SENT.value, None):
        query = (
            select(
                outbox_t.c.contact_id, outbox_t.c.segment, outbox_t.c.status, contacts.c.public_id
            )
            .join(contacts, contacts.c.id == outbox_t.c.contact_id)
            .where(outbox_t.c.campaign_id == campaign_id)
            .order_by(outbox_t.c.contact_id)
            .limit(1)
        )
        if wanted is not None:
            query = query.where(outbox_t.c.status == wanted)
        found = conn.execute(query).first()
        if found is not None:
            break
    if found is None:
        return None
    settings = rt.settings
    spec = TemplateSpec.load(settings.templates_dir / "campaigns" / camp.template)
    links = links_for(
        settings,
        rt.signer,
        found.public_id,
        topic=camp.topic,
        campaign=spec.name,  # as the composer signs it
    )
    token = links.preferences_url.rsplit("/", 1)[1]
    return Sample(
        contact_id=found.contact_id,
        public_id=found.public_id,
        segment=found.segment or lifecycle.STANDARD,
        status=found.status,
        preferences_url=links.preferences_url,
        local_url=f"http://{settings.web_host}:{settings.web_port}/p/{token}",
    )


def count_files(directory: Path) -> int:
    return sum(1 for p in directory.iterdir() if p.is_file()) if directory.is_dir() else 0
