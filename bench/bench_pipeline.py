"""The whole sending pipeline: emails per second beside the floor and the textbook design.

Target (this 2-core machine): the pipeline at least 50% of the floor's rate and
at least 10 times the textbook design's rate, all three measured in one run.

Setup (not timed, in the parent): the render benchmark's (``bench_render._prepare``,
imported): a fresh SQLite var directory, N synthetic customers (2,000; 500 with
``--quick``) imported into the vault, segments built. A throwaway Redis
(``BenchContext.redis``: ``support.services.RedisServer``) for the textbook
design; without ``redis-server`` on PATH the benchmark fails with the install
hint rather than report the pipeline without its baseline (under ``CI`` too).

The measurements run in one child process (``python -m bench.bench_pipeline
--child ...``), interleaved by rounds, so they share the interpreter, the
machine's load and its caches. All three deliver the same campaign
(``autumn-2026``) into Maildirs on the same file system (the scratch directory,
under ``TMPDIR``):

pipeline
    The real embedded path, as ``tact campaigns send`` runs it. Per campaign, not
    timed: a fresh copy of the set-up var directory (database, keystore, keys);
    ``Settings`` with quiet hours off (``quiet_hours_start == quiet_hours_end``,
    else the count would depend on the hour of the run) and every other default
    (batches of 500, the default caps, the Maildir transport under
    ``var/outbox``); ``lifecycle.create`` / ``schedule`` / ``launch`` (the fan-out
    into the outbox) of a campaign with a new name; the transport opened. Timed:
    ``engine.campaigns.send_campaign(engine, vault, settings, id,
    transport, now=...)``: per batch the claim, the gate (policy chain,
    frequency-cap reservations, decision records), the vault read, segments,
    compose (signed links, segment blocks, brand frame, MIME), the Maildir write,
    the outbox and ledger records; then the campaign marked sent. The figure is
    emails written (``sent`` in the batch reports, checked against the files in
    the Maildir) over the time of ``send_campaign``; recipients the gate skips or
    that cannot be addressed cost time and count nothing.

    Why a fresh database per campaign rather than one database with lenient caps:
    a second campaign to the same people meets the caps — the "offers" topic
    gives customers a weekly cadence, which no ``Settings`` field lifts — and
    would be deferred, not sent; and tables growing round after round would make
    rounds unequal. So every timed campaign is the same one: the first of the
    week, to an empty send ledger. Campaigns repeat, each on its own copy, until
    their timed total reaches 2 s (0.5 s with ``--quick``).
floor
    The least work that still produces and delivers the same email to the same
    people (the recipients the untimed warm-up campaign delivered to): the render
    benchmark's floor (``bench_render.Floor``, imported) — one cached compiled
    template per part (the brand frame with the standard blocks written in, CSS
    inlined in advance), rendered with a plain dict, then
    ``MessageTemplate.build`` — plus ``MaildirTransport.send`` into a fresh
    Maildir per pass (the pipeline's transport). Addresses, first names, signed
    links and Message-IDs are computed before timing: no database, vault, gate,
    segments or signing while timed. Passes repeat until their timed total
    reaches 2 s (0.5 s).
textbook
    One Celery task per recipient (``bench/textbook_app.py``, whose docstring
    gives the task): a real Redis broker and a real worker process (``celery -A
    bench.textbook_app worker --pool solo --concurrency 1``, started once, mingle
    and gossip off since it is alone); per task one ORM query for the contact
    with its consent and suppression check, the vault's decryption of the same
    fields, the two signed links, Jinja ``get_template()`` per call from a
    ``FileSystemLoader`` (its normal template cache) over the same content,
    ``email.message.EmailMessage`` (SMTP policy) delivered by the same
    ``MaildirTransport`` as the pipeline's, one send row and one commit per
    recipient, on its own copy of the var directory.
    Timed from the first enqueue (``send_one.delay(contact id, round tag)``: ids
    only) until the database holds the round's last send row (polled every
    10 ms, bounded). The producer runs beside the worker, on the other core.
    500 recipients per round (100 with ``--quick``), the first of the floor's:
    fewer than the others because it is slow, which does not bias a per-email
    rate. Delivery goes through the pipeline's own transport rather than the
    stdlib ``mailbox``, which fsyncs every message (0.5 to 6 ms each on this
    disk) while the pipeline's transport does not by default: the textbook is
    not charged for durability the pipeline does not buy.

Informational, measured in the same rounds: the floor without its Maildir write
(render and MIME only). The file system weighs on everything here: on a disk
where creating a file costs much more than rendering an email (this machine's:
0.4 to 2 ms, depending on what else writes), the floor and the pipeline both
spend most of their time creating files, so pipeline/floor says little about
the pipeline's own work, and since the pipeline cannot beat the floor,
pipeline/textbook cannot exceed floor/textbook, which the file creation also
bounds. Run with ``TMPDIR=/dev/shm`` to measure on tmpfs, where the CPU work
decides.

Untimed warm-up before round 1: one campaign, one floor pass, 20 textbook
tasks (the worker's imports, connections, templates). One message of each design
is then parsed with the stdlib parser: two-part ``multipart/alternative``, the
unsubscribe link in both parts, the One-Click header. Five rounds (three with
``--quick``) of (pipeline, floor, floor without Maildir, textbook): more than
the render benchmark's three because file creation on a shared disk is noisy.
Each figure is its best round; the ratios divide best rates.

For a profile of the pipeline: ``python -m bench.bench_pipeline --profile``
(sets up its own temporary var directory, prints the cProfile top functions of
a few ``send_campaign`` calls).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import email.policy
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from bench.common import (
    PROJECT_ROOT,
    BenchContext,
    Figure,
    child_result,
    copy_var_dir,
    isolated_environment,
    module_main,
    print_profile,
    run_child,
)

BENCH = "pipeline"
MODULE = "bench.bench_pipeline"
CAMPAIGN = "autumn-2026"

FULL_CUSTOMERS = 2_000
QUICK_CUSTOMERS = 500
FULL_TEXTBOOK = 500
QUICK_TEXTBOOK = 100
FULL_SECONDS = 2.0
QUICK_SECONDS = 0.5
ROUNDS = 5
QUICK_ROUNDS = 3
TEXTBOOK_WARMUP = 20

FLOOR_TARGET = ">= 0.5"
TEXTBOOK_TARGET = ">= 10"

PATHS = ("pipeline", "floor", "textbook")
#: Informational: the floor's render and MIME without the Maildir write.
RENDER_ONLY = "render_only"

#: Seconds the worker may take to start and finish its warm-up tasks.
WORKER_START_TIMEOUT = 120.0
WORKER_STOP_TIMEOUT = 15.0
#: Bound on one textbook round: this many seconds per task, at least a minute.
TEXTBOOK_SECONDS_PER_TASK = 0.2
POLL = 0.01


# ------------------------------------------------------------------- parent


def _redis(ctx: BenchContext) -> str:
    if shutil.which("redis-server") is None:
        raise RuntimeError(
            "the textbook baseline needs a real Redis broker and redis-server is not on PATH "
            "(apt-get install redis-server, or brew install redis); this benchmark fails "
            "rather than report the pipeline without its baseline"
        )
    return ctx.redis().url


def run(ctx: BenchContext) -> list[Figure]:
    from bench.bench_render import _prepare

    customers = QUICK_CUSTOMERS if ctx.quick else FULL_CUSTOMERS
    textbook = QUICK_TEXTBOOK if ctx.quick else FULL_TEXTBOOK
    seconds = QUICK_SECONDS if ctx.quick else FULL_SECONDS
    rounds_wanted = QUICK_ROUNDS if ctx.quick else ROUNDS
    broker = _redis(ctx)
    var_dir = _prepare(ctx, customers)
    try:
        with ctx.step(
            f"measuring ({rounds_wanted} rounds, >= {seconds:g}s of pipeline and floor, "
            f"{textbook} textbook tasks per round)"
        ):
            result = run_child(
                MODULE,
                [
                    "--var-dir",
                    str(var_dir),
                    "--broker",
                    broker,
                    "--seconds",
                    str(seconds),
                    "--textbook",
                    str(textbook),
                    "--rounds",
                    str(rounds_wanted),
                ],
                timeout=1200,
            )
    finally:
        shutil.rmtree(var_dir.parent, ignore_errors=True)

    rounds: list[dict[str, float]] = result["rounds"]
    best = {p: max(r[p] for r in rounds) for p in (*PATHS, RENDER_ONLY)}
    for i, r in enumerate(rounds, 1):
        ctx.log(
            f"    round {i}: "
            + ", ".join(f"{p} {r[p]:,.0f}/s" for p in (*PATHS, RENDER_ONLY))
            + f" (pipeline/floor {r['pipeline'] / r['floor']:.2f}, "
            f"pipeline/textbook {r['pipeline'] / r['textbook']:.1f})"
        )
    camp = result["campaign"]
    sizes = result["sizes"]
    ctx.log(
        f"    per campaign: audience {camp['audience']}, outcome {camp['by_status']}, "
        f"{camp['batches']} batches, fan-out (untimed) {camp['launch_seconds']:.2f}s; "
        f"floor audience {result['floor_people']}; message bytes: "
        + ", ".join(f"{p} {sizes[p]:,}" for p in PATHS)
    )
    common = f"{customers} customers; best of {len(rounds)} rounds"
    return [
        Figure(
            BENCH,
            "pipeline emails/s",
            best["pipeline"],
            "emails/s",
            note=(
                f"send_campaign on SQLite into Maildir: claim, gate + cap reservations, vault, "
                f"segments, render, MIME, outbox/ledger, Maildir; {camp['sent']} of "
                f"{camp['audience']} sent per campaign; {common}"
            ),
        ),
        Figure(
            BENCH,
            "floor emails/s",
            best["floor"],
            "emails/s",
            note=(
                f"cached flattened template (html, text) + MessageTemplate.build + Maildir "
                f"write, personal data precomputed; {result['floor_people']} per pass; {common}"
            ),
        ),
        Figure(
            BENCH,
            "textbook emails/s",
            best["textbook"],
            "emails/s",
            note=(
                f"one Celery task per recipient (Redis, solo worker): ORM query, vault, Jinja "
                f"get_template, EmailMessage, mailbox.Maildir, commit per recipient; "
                f"{result['textbook']} tasks per round; {common}"
            ),
        ),
        Figure(
            BENCH,
            "floor without Maildir emails/s",
            best[RENDER_ONLY],
            "emails/s",
            note=(
                "informational: the floor's render + MIME alone, no file written; the gap to "
                f"the floor is the file system's cost per email; {common}"
            ),
        ),
        Figure(
            BENCH,
            "pipeline/floor",
            best["pipeline"] / best["floor"],
            "x",
            FLOOR_TARGET,
            note="best pipeline rate over best floor rate, same run",
        ),
        Figure(
            BENCH,
            "pipeline/textbook",
            best["pipeline"] / best["textbook"],
            "x",
            TEXTBOOK_TARGET,
            note="best pipeline rate over best textbook rate, same run",
        ),
    ]


# -------------------------------------------------------------------- child


def _first_message(maildir: Path) -> bytes:
    for path in sorted((maildir / "new").iterdir()):
        return path.read_bytes()
    raise RuntimeError(f"{maildir}: no message delivered")


def _check(name: str, data: bytes) -> int:
    """Parse one message with the stdlib: the shape every design must deliver; its size."""
    msg = BytesParser(policy=email.policy.default).parsebytes(data)
    if msg.get_content_type() != "multipart/alternative":
        raise RuntimeError(f"{name}: not multipart/alternative but {msg.get_content_type()}")
    parts = [p.get_content_type() for p in msg.iter_parts()]
    if parts != ["text/plain", "text/html"]:
        raise RuntimeError(f"{name}: parts {parts}")
    url = str(msg["List-Unsubscribe"]).split(">", 1)[0].lstrip("<")
    if not url.startswith("https://"):
        raise RuntimeError(f"{name}: List-Unsubscribe {msg['List-Unsubscribe']!r}")
    for part in msg.iter_parts():
        content = part.get_content()
        if url not in content and url.replace("&", "&amp;") not in content:
            raise RuntimeError(f"{name}: {part.get_content_type()} lacks the unsubscribe link")
    if msg["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click":
        raise RuntimeError(f"{name}: no List-Unsubscribe-Post")
    return len(data)


@dataclass
class CampaignRun:
    seconds: float
    sent: int
    audience: int
    batches: int
    by_status: Counter[str] = field(default_factory=Counter)
    launch_seconds: float = 0.0
    sample: bytes | None = None
    #: The contacts this campaign delivered to, in contact order (warm-up only).
    sent_ids: list[Any] = field(default_factory=list)


class Pipeline:
    """The real campaign pipeline, one fresh copy of the database per campaign."""

    def __init__(self, pristine: Path, work: Path) -> None:
        self.pristine = pristine
        self.work = work
        self.count = 0

    def campaign(self, *, keep_sample: bool = False, profiler: Any = None) -> CampaignRun:
        from sqlalchemy import select

        from engine.campaigns import lifecycle, send_campaign
        from engine.campaigns.lifecycle import outbox_t
        from engine.config import Settings
        from engine.db import engine_from_settings, writing
        from engine.delivery.factory import transport_from_settings
        from engine.vault import Vault

        self.count += 1
        var = copy_var_dir(self.pristine, self.work / f"campaign-{self.count}")
        settings = Settings(var_dir=var, quiet_hours_start=0, quiet_hours_end=0)
        engine = engine_from_settings(settings)
        try:
            vault = Vault.from_settings(settings)
            now = datetime.now(UTC)
            started = time.perf_counter()
            with writing(engine) as conn:
                cid = lifecycle.create(
                    conn, settings, name=f"bench-{self.count}", template=CAMPAIGN, now=now
                )
                lifecycle.schedule(conn, cid, now)
                audience = lifecycle.launch(conn, cid, now, settings=settings)
            launch_seconds = time.perf_counter() - started
            transport = transport_from_settings(settings)
            transport.open()
            try:
                gc.collect()
                if profiler is not None:
                    profiler.enable()
                started = time.perf_counter()
                reports = send_campaign(engine, vault, settings, cid, transport, now=now)
                seconds = time.perf_counter() - started
                if profiler is not None:
                    profiler.disable()
            finally:
                transport.close()
            by_status: Counter[str] = Counter()
            for report in reports:
                by_status.update(report.by_status)
            sent = sum(r.sent for r in reports)
            outbox = settings.resolved_outbox_dir
            files = sum(1 for _ in (outbox / "new").iterdir())
            if files != sent:
                raise RuntimeError(f"campaign reports {sent} sent, the Maildir holds {files}")
            if sent == 0:
                raise RuntimeError(f"campaign sent nothing: {dict(by_status)}")
            sent_ids: list[Any] = []
            if keep_sample:
                with engine.connect() as conn:
                    sent_ids = list(
                        conn.execute(
                            select(outbox_t.c.contact_id)
                            .where(outbox_t.c.campaign_id == cid, outbox_t.c.status == "sent")
                            .order_by(outbox_t.c.contact_id)
                        ).scalars()
                    )
                if len(sent_ids) != sent:
                    raise RuntimeError(f"{len(sent_ids)} outbox rows sent, reports say {sent}")
            return CampaignRun(
                seconds=seconds,
                sent=sent,
                audience=audience,
                batches=len(reports),
                by_status=by_status,
                launch_seconds=launch_seconds,
                sample=_first_message(outbox) if keep_sample else None,
                sent_ids=sent_ids,
            )
        finally:
            engine.dispose()
            # Not deleted here: a deletion of thousands of files makes the file
            # system busy (journal, discard) during the next timed pass. The whole
            # scratch directory goes at the end of the run.

    def rate(self, seconds: float) -> tuple[float, CampaignRun]:
        sent, timed = 0, 0.0
        while True:
            run = self.campaign()
            sent += run.sent
            timed += run.seconds
            if timed >= seconds:
                return sent / timed, run


class FloorDelivery:
    """The render floor of bench_render plus the Maildir transport.

    Its recipients are the ones the warm-up campaign delivered to: the same
    emails to the same people. Their personal data, signed links and
    Message-IDs are computed here, before any timing, as ``bench_render.Job``
    does for its audience.
    """

    def __init__(self, var_dir: Path, work: Path, contact_ids: list[Any]) -> None:
        from sqlalchemy import select

        from bench.bench_render import Floor, Person, floor_person
        from engine.config import Settings
        from engine.db import engine_from_settings
        from engine.links.tokens import TokenSigner
        from engine.render.compose import Composer
        from engine.vault import Vault
        from engine.vault.vault import contacts

        settings = Settings(var_dir=var_dir)
        vault = Vault.from_settings(settings)
        self.composer = Composer(settings, CAMPAIGN, TokenSigner(vault.keyring, settings))
        self.floor = Floor(self.composer)
        fields = ["email", *self.composer.spec.vault_fields]
        engine = engine_from_settings(settings)
        try:
            with engine.connect() as conn:
                read = vault.read(conn, contact_ids, fields, purpose="bench")
                public: dict[Any, Any] = dict(
                    conn.execute(
                        select(contacts.c.id, contacts.c.public_id).where(
                            contacts.c.id.in_(contact_ids)
                        )
                    ).all()
                )
        finally:
            engine.dispose()
        people: list[Person] = []
        for cid in contact_ids:
            person = read.get(cid)
            if person is None or not person.email:
                raise RuntimeError(f"contact {cid} was delivered to but cannot be read")
            people.append(floor_person(settings, self.composer, cid, person, public[cid]))
        self.people = people
        self.work = work
        self.sender = self.composer.renderer.brand.sender_address
        self.count = 0

    def one_pass(self, *, keep_sample: bool = False) -> tuple[int, float, bytes | None]:
        from engine.delivery.base import DeliveryStatus, OutgoingMessage
        from engine.delivery.maildir import MaildirTransport

        self.count += 1
        root = self.work / f"floor-{self.count}"
        transport = MaildirTransport(root)
        transport.open()
        build = self.floor.message
        send = transport.send
        sender = self.sender
        sent = 0
        gc.collect()
        started = time.perf_counter()
        now = datetime.now(UTC)
        for p in self.people:
            result = send(OutgoingMessage(p.message_id, sender, p.to_addr, build(p, now)))
            if result.status is DeliveryStatus.SENT:
                sent += 1
        transport.flush()
        seconds = time.perf_counter() - started
        transport.close()
        sample = _first_message(root) if keep_sample else None  # root stays: see campaign()
        if sent != len(self.people):
            raise RuntimeError(f"floor delivered {sent} of {len(self.people)}")
        return sent, seconds, sample

    def render_pass(self) -> tuple[int, float]:
        """The same pass without the Maildir (informational: the file system's share)."""
        build = self.floor.message
        sink: list[bytes] = []
        keep = sink.append
        gc.collect()
        started = time.perf_counter()
        now = datetime.now(UTC)
        for p in self.people:
            keep(build(p, now))
        seconds = time.perf_counter() - started
        return len(sink), seconds

    def rate(self, seconds: float, *, deliver: bool = True) -> float:
        sent, timed = 0, 0.0
        while timed < seconds:
            n, s = self.one_pass()[:2] if deliver else self.render_pass()
            sent += n
            timed += s
        return sent / timed


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM it when this process dies (Linux).

    The runner kills a child that overruns its timeout with SIGKILL, which
    leaves no chance to stop the worker; the kernel does it instead.
    """
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Textbook:
    """A Celery worker process running bench.textbook_app, and its producer side."""

    def __init__(self, pristine: Path, work: Path, broker: str, ids: list[Any]) -> None:
        from bench import textbook_app
        from engine.config import Settings
        from engine.db import engine_from_settings

        self.app = textbook_app
        self.ids = ids
        self.var = copy_var_dir(pristine, work / "textbook-var")
        self.maildir = work / "textbook-maildir"
        self.templates = work / "textbook-templates"
        self.log_path = work / "textbook-worker.log"
        self.engine = engine_from_settings(Settings(var_dir=self.var))
        self.proc: subprocess.Popen[bytes] | None = None
        self.rounds = 0
        textbook_app.app.conf.broker_url = broker
        self.broker = broker

    def start(self, composer: Any) -> None:
        self.app.write_templates(composer, self.templates)
        env = isolated_environment()
        env.update(
            {
                self.app.BROKER_ENV: self.broker,
                self.app.VAR_DIR_ENV: str(self.var),
                self.app.MAILDIR_ENV: str(self.maildir),
                self.app.TEMPLATES_ENV: str(self.templates),
            }
        )
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.textbook_app",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--queues",
            self.app.QUEUE,
            "--hostname",
            f"textbook-{os.getpid()}@%h",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        # Warm-up (untimed): the worker's imports, first connections, first templates.
        self._run("warmup", self.ids[:TEXTBOOK_WARMUP], WORKER_START_TIMEOUT)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no worker log)"

    def _done(self, tag: str) -> int:
        from sqlalchemy import func, select

        from engine.models import SendReservation

        t = SendReservation.__table__  # type: ignore[attr-defined]
        prefix = self.app.message_key(tag, "")
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(t).where(t.c.message_key.like(f"{prefix}%"))
                ).scalar_one()
            )

    def _run(self, tag: str, ids: list[Any], timeout: float) -> float:
        """Enqueue one task per id; seconds until the last one's send row is committed."""
        send = self.app.send_one.delay
        started = time.perf_counter()
        for cid in ids:
            send(str(cid), tag)
        deadline = started + timeout
        while True:
            done = self._done(tag)
            if done >= len(ids):
                return time.perf_counter() - started
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(
                    f"the textbook worker exited ({self.proc and self.proc.returncode}):\n"
                    + self._log_tail()
                )
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"textbook round {tag!r}: {done} of {len(ids)} tasks done after "
                    f"{timeout:.0f}s; worker log:\n" + self._log_tail()
                )
            time.sleep(POLL)

    def rate(self) -> float:
        self.rounds += 1
        ids = self.ids
        gc.collect()
        seconds = self._run(
            f"round{self.rounds}", ids, max(60.0, TEXTBOOK_SECONDS_PER_TASK * len(ids))
        )
        return len(ids) / seconds

    def sample(self) -> bytes:
        return _first_message(self.maildir)

    def delivered(self) -> int:
        return sum(1 for _ in (self.maildir / "new").iterdir())

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                proc.wait(WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(WORKER_STOP_TIMEOUT)
        self.engine.dispose()


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --child")
    parser.add_argument("--var-dir", type=Path, required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--seconds", type=float, default=FULL_SECONDS)
    parser.add_argument("--textbook", type=int, default=FULL_TEXTBOOK)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)

    work = args.var_dir.parent / "pipeline-work"
    work.mkdir(parents=True, exist_ok=True)
    # Copied before anything opens the set-up database: every copy starts from it closed.
    pristine = copy_var_dir(args.var_dir, work / "pristine")
    pipeline = Pipeline(pristine, work)
    warm = pipeline.campaign(keep_sample=True)  # warm-up, untimed; its recipients
    floor = FloorDelivery(args.var_dir, work, warm.sent_ids)
    ids = [p.contact_id for p in floor.people[: args.textbook]]
    if len(ids) < args.textbook:
        raise RuntimeError(f"only {len(ids)} recipients for {args.textbook} textbook tasks")
    textbook = Textbook(pristine, work, args.broker, ids)
    try:
        textbook.start(floor.composer)
        _, _, floor_sample = floor.one_pass(keep_sample=True)  # warm-up, untimed
        if warm.sample is None or floor_sample is None:
            raise RuntimeError("no sample message to check")
        sizes = {
            "pipeline": _check("pipeline", warm.sample),
            "floor": _check("floor", floor_sample),
            "textbook": _check("textbook", textbook.sample()),
        }
        rounds: list[dict[str, float]] = []
        last = warm
        for _ in range(args.rounds):
            rates: dict[str, float] = {}
            rates["pipeline"], last = pipeline.rate(args.seconds)
            rates["floor"] = floor.rate(args.seconds)
            rates["render_only"] = floor.rate(args.seconds / 2, deliver=False)
            rates["textbook"] = textbook.rate()
            rounds.append(rates)
        expected = TEXTBOOK_WARMUP + args.rounds * len(ids)
        if textbook.delivered() != expected:
            raise RuntimeError(f"textbook Maildir holds {textbook.delivered()}, not {expected}")
    finally:
        textbook.stop()
    child_result(
        {
            "rounds": rounds,
            "sizes": sizes,
            "floor_people": len(floor.people),
            "textbook": len(textbook.ids),
            "campaign": {
                "audience": last.audience,
                "sent": last.sent,
                "batches": last.batches,
                "by_status": dict(last.by_status),
                "launch_seconds": last.launch_seconds,
            },
        }
    )


def profile(argv: list[str]) -> None:
    """Set up a temporary var directory and print a cProfile of ``send_campaign`` calls."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --profile")
    parser.add_argument("--customers", type=int, default=FULL_CUSTOMERS)
    parser.add_argument("--campaigns", type=int, default=3)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)

    from bench.bench_render import _prepare
    from bench.common import isolate_this_process

    isolate_this_process()
    ctx = BenchContext(quick=False)
    try:
        var_dir = _prepare(ctx, args.customers)
        work = ctx.fresh_dir("pipeline-profile")
        pipeline = Pipeline(copy_var_dir(var_dir, work / "pristine"), work)
        pipeline.campaign()  # warm-up
        prof = cProfile.Profile()
        sent, seconds = 0, 0.0
        for _ in range(args.campaigns):
            run = pipeline.campaign(profiler=prof)
            sent += run.sent
            seconds += run.seconds
        print(
            f"{args.campaigns} campaigns, {sent} emails in {seconds:.2f}s under the profiler "
            f"({sent / seconds:,.0f}/s); last outcome {dict(run.by_status)}",
            flush=True,
        )
        print_profile(prof, args.top)
    finally:
        with contextlib.suppress(Exception):
            ctx.close()


if __name__ == "__main__":
    module_main(MODULE, child, profile, "[--customers N] (use python -m bench.run --only pipeline)")
