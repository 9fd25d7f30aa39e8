"""The SMTP path: the campaign pipeline into an SMTP sink beside a plain sender of the same bytes.

Target (this 2-core machine): the pipeline's SMTP delivery at least 80% of the
plain sender's rate (messages per second), both over the same number P of
connections (P = 4; ``BENCH_SMTP_POOL`` in the environment changes it). The
same two are also measured with P = 1, for information (no target).

Setup (not timed, in the parent): the render benchmark's (``bench_render._prepare``,
imported): a fresh SQLite var directory, N synthetic customers (2,000; 400 with
``--quick``) imported into the vault, segments built. The campaign
(``autumn-2026``, topic "offers") goes to the active contacts subscribed to
"offers" and not suppressed, about three in four of them.

The sink (``bench/smtp_sink.py``): aiosmtpd in a process of its own, started
by the parent for the whole run and stopped at its end (also on failure), so
it never shares the sender's GIL. It accepts everything, records each
message's Message-ID at the final dot (the same header search for every
message) and answers 250. Both sides deliver to this one sink process. Before
and after every measurement the child asks it (on a control port) what it
received: the count must equal what the side sent, every Message-ID once.
It also reports its CPU time, from which each measurement's "sink busy"
fraction (sink CPU seconds over wall seconds) is logged: a side whose sink is
busy near 100% is bounded by the sink, not by itself.

The measurements run in one child process (``python -m bench.bench_smtp
--child ...``), interleaved by rounds:

pipeline
    The real embedded path with the SMTP transport. Per campaign, not timed: a
    fresh copy of the set-up var directory (database, keystore, keys),
    ``Settings`` with quiet hours off (``quiet_hours_start ==
    quiet_hours_end``, else the count would depend on the hour of the run) and
    every other default, ``lifecycle.create`` / ``schedule`` / ``launch`` (the
    fan-out) of a campaign with a new name, and
    ``SmtpTransport(host, port, pool_size=P, starttls=False)``, opened (its
    connections are made on first use, so inside the timed part, as the plain
    sender's are). Timed: ``engine.campaigns.send_campaign(engine,
    vault, settings, id, transport, now=...)``: per batch of 500 the claim, the
    gate (policy chain, frequency-cap reservations, decision records), the
    vault read, segments, compose (links, blocks, brand frame, MIME); per
    message MAIL, RCPT, DATA, the body, the handover (the last look and the
    commit of the row as in doubt, one SQLite statement in autocommit) and the
    final dot; every 100 messages the 250s recorded as sent in one transaction;
    all P connections driven from the calling thread (``engine.delivery.smtp_mux``);
    per batch the remaining records; then the campaign marked sent. Closing the
    connections (QUIT) is not timed, on either side.

    Why a fresh database per campaign rather than lenient caps: the "offers"
    topic has a weekly cadence per customer that no ``Settings`` field lifts,
    so a second campaign to the same people would be deferred, not sent; and
    tables growing round after round would make rounds unequal. Every timed
    campaign is thus the same one: the first of the week, to an empty send
    ledger, with the default caps.
plain
    The same messages, as bytes: the untimed warm-up campaign (P connections)
    records every ``OutgoingMessage`` its transport delivered (envelope sender,
    recipient, the exact DATA bytes). Timed: P threads, each with one
    ``smtplib.SMTP`` connection to the sink (connect and EHLO included), taking
    the next message from one shared list iterator and calling
    ``sendmail(sender, [recipient], data)`` until none is left; the clock stops
    when every thread's last reply has arrived. No database, no rendering.

Each side delivers the same number of messages per measurement (the campaign's
audience: every pipeline campaign must send exactly as many as the warm-up
recorded). Three rounds; in each, for P and then for 1, the pipeline and the
plain sender (which goes first alternates from round to round); each figure is
its best round, and the ratios divide best rates. One recorded message is
parsed with the stdlib parser before timing: two-part
``multipart/alternative``, the unsubscribe link in both parts, One-Click.

Reading the ratio: the plain sender is light (a few hundred microseconds of
client CPU per message), so on this machine it is bounded by the sink, whose
aiosmtpd handles DATA line by line (logged "sink busy" near 100%). The target
thus asks the pipeline to come within 80% of what the sink can take over P
connections. The rate figures' notes give the sink's busy fraction in the
round that gave the best rate.

For a profile of the pipeline's side: ``python -m bench.bench_smtp --profile
[--pool P] [--customers N]`` (its own var directory and sink; prints the
cProfile top functions of a few ``send_campaign`` calls). The pipeline sends
from the calling thread whatever P is, so the profile covers compose, handover
and SMTP alike.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import email.policy
import gc
import os
import shutil
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Iterator
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
    size_label,
)
from bench.smtp_sink import SinkAddress, running_sink

BENCH = "smtp"
MODULE = "bench.bench_smtp"
CAMPAIGN = "autumn-2026"

FULL_CUSTOMERS = 2_000
QUICK_CUSTOMERS = 400
ROUNDS = 3
#: Connections on both sides (SmtpTransport's pool size, the plain sender's threads).
POOL = 4
POOL_ENV = "BENCH_SMTP_POOL"
SMTP_TIMEOUT = 30.0

RATIO_TARGET = ">= 0.8"
SIDES = ("pipeline", "plain")


# ------------------------------------------------------------------- parent


def _pool() -> int:
    raw = os.environ.get(POOL_ENV)
    if not raw:
        return POOL
    pool = int(raw)
    if pool < 1:
        raise ValueError(f"{POOL_ENV} must be at least 1, not {raw!r}")
    return pool


def _key(side: str, pool: int) -> str:
    return f"{side}@{pool}"


def run(ctx: BenchContext) -> list[Figure]:
    from bench.bench_render import _prepare

    customers = QUICK_CUSTOMERS if ctx.quick else FULL_CUSTOMERS
    pool = _pool()
    pools = [pool] if pool == 1 else [pool, 1]
    var_dir = _prepare(ctx, customers)
    try:
        with running_sink(env=isolated_environment(), cwd=str(PROJECT_ROOT)) as sink:
            with ctx.step(
                f"measuring ({ROUNDS} rounds of pipeline and plain, P = "
                + " and ".join(map(str, pools))
                + ")"
            ):
                result = run_child(
                    MODULE,
                    [
                        "--var-dir",
                        str(var_dir),
                        "--host",
                        sink.host,
                        "--port",
                        str(sink.smtp_port),
                        "--control",
                        str(sink.control_port),
                        "--pools",
                        ",".join(map(str, pools)),
                    ],
                    timeout=1200,
                )
    finally:
        shutil.rmtree(var_dir.parent, ignore_errors=True)

    rounds: list[dict[str, dict[str, float]]] = result["rounds"]
    best = {k: max(r[k]["rate"] for r in rounds) for k in rounds[0]}
    #: The sink's busy fraction in the round that gave each best rate.
    busy: dict[str, float] = {}
    for k in rounds[0]:
        top = max((r[k] for r in rounds), key=lambda m: m["rate"])
        busy[k] = top["sink_busy"]
    for i, r in enumerate(rounds, 1):
        parts = []
        for p in pools:
            pipe, plain = r[_key("pipeline", p)], r[_key("plain", p)]
            parts.append(
                f"P={p}: pipeline {pipe['rate']:,.0f}/s ({pipe['connections']:.0f} conn, "
                f"sink busy {pipe['sink_busy']:.0%}), plain {plain['rate']:,.0f}/s "
                f"({plain['connections']:.0f} conn, sink busy {plain['sink_busy']:.0%}), "
                f"ratio {pipe['rate'] / plain['rate']:.2f}"
            )
        ctx.log(f"    round {i}: " + "; ".join(parts))
    camp = result["campaign"]
    ctx.log(
        f"    per campaign: audience {camp['audience']}, outcome {camp['by_status']}, "
        f"{camp['batches']} batches, fan-out (untimed) {camp['launch_seconds']:.2f}s; "
        f"{result['messages']} messages per measurement, {result['message_bytes']:,} bytes "
        f"for the first"
    )
    common = (
        f"{customers} customers, {result['messages']} messages per measurement; "
        f"best of {len(rounds)} rounds"
    )
    figures: list[Figure] = []
    for p in pools:
        pipe_rate, plain_rate = best[_key("pipeline", p)], best[_key("plain", p)]
        figures += [
            Figure(
                BENCH,
                f"pipeline msgs/s, P={p}",
                pipe_rate,
                "msgs/s",
                note=f"send_campaign with SmtpTransport(pool_size={p}) into the sink "
                f"(sink busy {busy[_key('pipeline', p)]:.0%}); {common}",
            ),
            Figure(
                BENCH,
                f"plain sender msgs/s, P={p}",
                plain_rate,
                "msgs/s",
                note=f"{p} smtplib connections, sendmail of the recorded bytes "
                f"(sink busy {busy[_key('plain', p)]:.0%}); {common}",
            ),
            Figure(
                BENCH,
                f"pipeline/plain, P={p}",
                pipe_rate / plain_rate,
                "x",
                RATIO_TARGET if p == pool else None,
                note="best pipeline rate over best plain rate, same run, same sink"
                + ("" if p == pool else " (informational)"),
            ),
        ]
    return figures


# -------------------------------------------------------------------- child


def _check(data: bytes) -> int:
    """Parse one message with the stdlib: the shape the campaign must deliver; its size."""
    msg = BytesParser(policy=email.policy.default).parsebytes(data)
    if msg.get_content_type() != "multipart/alternative":
        raise RuntimeError(f"not multipart/alternative but {msg.get_content_type()}")
    parts = [p.get_content_type() for p in msg.iter_parts()]
    if parts != ["text/plain", "text/html"]:
        raise RuntimeError(f"parts {parts}")
    url = str(msg["List-Unsubscribe"]).split(">", 1)[0].lstrip("<")
    if not url.startswith("https://"):
        raise RuntimeError(f"List-Unsubscribe {msg['List-Unsubscribe']!r}")
    for part in msg.iter_parts():
        content = part.get_content()
        if url not in content and url.replace("&", "&amp;") not in content:
            raise RuntimeError(f"{part.get_content_type()} lacks the unsubscribe link")
    if msg["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click":
        raise RuntimeError("no List-Unsubscribe-Post")
    return len(data)


class Recorder:
    """The warm-up campaign's transport: the SMTP transport, keeping what it delivered."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.idempotent: bool = inner.idempotent
        self.sent: list[Any] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # anything else the pipeline may ask for
        return getattr(self.inner, name)

    def open(self) -> None:
        self.inner.open()

    def send(self, message: Any, handover: Any = None) -> Any:
        from engine.delivery.base import DeliveryStatus

        result = self.inner.send(message, handover)
        if result.status is DeliveryStatus.SENT:
            with self._lock:
                self.sent.append(message)
        return result

    def send_many(self, deliveries: Any) -> None:
        self.inner.send_many(_Recording(d, self) for d in deliveries)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class _Recording:
    """A delivery of the warm-up campaign: its message is kept when it was sent."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self.inner = inner
        self.message = inner.message
        self.recorder = recorder

    def handover(self) -> bool:
        return bool(self.inner.handover())

    def done(self, result: Any) -> None:
        from engine.delivery.base import DeliveryStatus

        if result.status is DeliveryStatus.SENT:
            with self.recorder._lock:
                self.recorder.sent.append(self.message)
        self.inner.done(result)


@dataclass
class Measured:
    """One measurement of one side: its rate and what the sink saw meanwhile."""

    sent: int
    seconds: float
    sink_cpu: float
    connections: int

    def as_dict(self) -> dict[str, float]:
        return {
            "rate": self.sent / self.seconds,
            "seconds": self.seconds,
            "sent": self.sent,
            "sink_busy": self.sink_cpu / self.seconds,
            "connections": self.connections,
        }


@dataclass
class CampaignRun:
    measured: Measured
    audience: int
    batches: int
    by_status: Counter[str] = field(default_factory=Counter)
    launch_seconds: float = 0.0
    recorded: list[Any] = field(default_factory=list)


def _exactly_once(side: str, got: list[str], expected: Counter[str]) -> None:
    """The sink received each expected Message-ID exactly as often as expected."""
    received = Counter(got)
    if received == expected:
        return
    missing = sum((expected - received).values())
    extra = sum((received - expected).values())
    twice = sum(1 for n in received.values() if n > 1)
    raise RuntimeError(
        f"{side}: the sink received {len(got)} messages, expected {expected.total()} "
        f"({missing} missing, {extra} unexpected, {twice} Message-IDs more than once)"
    )


class Pipeline:
    """The real campaign pipeline over SMTP, one fresh copy of the database per campaign."""

    def __init__(self, pristine: Path, work: Path, sink: SinkAddress) -> None:
        self.pristine = pristine
        self.work = work
        self.sink = sink
        self.count = 0

    def campaign(self, pool: int, *, record: bool = False, profiler: Any = None) -> CampaignRun:
        from sqlalchemy import select

        from engine.campaigns import lifecycle, send_campaign
        from engine.campaigns.lifecycle import outbox_t
        from engine.config import Settings
        from engine.db import engine_from_settings, writing
        from engine.delivery.smtp import SmtpTransport
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
                    conn, settings, name=f"smtp-bench-{self.count}", template=CAMPAIGN, now=now
                )
                lifecycle.schedule(conn, cid, now)
                audience = lifecycle.launch(conn, cid, now, settings=settings)
            launch_seconds = time.perf_counter() - started
            smtp = SmtpTransport(
                self.sink.host,
                self.sink.smtp_port,
                pool_size=pool,
                starttls=False,
                timeout=SMTP_TIMEOUT,
            )
            transport: Any = Recorder(smtp) if record else smtp
            transport.open()
            try:
                before = self.sink.take()
                gc.collect()
                if profiler is not None:
                    profiler.enable()
                started = time.perf_counter()
                reports = send_campaign(engine, vault, settings, cid, transport, now=now)
                seconds = time.perf_counter() - started
                if profiler is not None:
                    profiler.disable()
                after = self.sink.take()
            finally:
                transport.close()
            if before["messages"]:
                raise RuntimeError(f"the sink got {before['messages']} messages between rounds")
            by_status: Counter[str] = Counter()
            for report in reports:
                by_status.update(report.by_status)
            sent = sum(r.sent for r in reports)
            if sent == 0:
                raise RuntimeError(f"campaign sent nothing: {dict(by_status)}")
            with engine.connect() as conn:
                ids = list(
                    conn.execute(
                        select(outbox_t.c.message_id).where(
                            outbox_t.c.campaign_id == cid, outbox_t.c.status == "sent"
                        )
                    ).scalars()
                )
            if len(ids) != sent:
                raise RuntimeError(f"{len(ids)} outbox rows sent, the reports say {sent}")
            _exactly_once("pipeline", after["ids"], Counter(ids))
            return CampaignRun(
                measured=Measured(
                    sent, seconds, after["cpu"] - before["cpu"], after["connections"]
                ),
                audience=audience,
                batches=len(reports),
                by_status=by_status,
                launch_seconds=launch_seconds,
                recorded=transport.sent if record else [],
            )
        finally:
            engine.dispose()
            shutil.rmtree(var, ignore_errors=True)


class Plain:
    """P threads, one smtplib connection each, ``sendmail`` of pre-built bytes."""

    def __init__(self, messages: list[Any], sink: SinkAddress) -> None:
        self.messages = messages
        self.sink = sink
        self.expected = Counter(m.message_id for m in messages)

    def send(self, pool: int) -> Measured:
        host, port = self.sink.host, self.sink.smtp_port
        todo: Iterator[Any] = iter(self.messages)  # shared: next() on a list iterator is atomic
        done = threading.Barrier(pool + 1)
        leave = threading.Event()
        errors: list[BaseException] = []
        sent = [0] * pool

        def worker(slot: int) -> None:
            smtp: smtplib.SMTP | None = None
            try:
                smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
                smtp.ehlo()
                n = 0
                for m in todo:
                    smtp.sendmail(m.sender, [m.recipient], m.data)
                    n += 1
                sent[slot] = n
            except BaseException as exc:
                errors.append(exc)
            finally:
                with contextlib.suppress(threading.BrokenBarrierError):
                    done.wait()
                leave.wait()
                if smtp is not None:
                    with contextlib.suppress(OSError, smtplib.SMTPException):
                        smtp.quit()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(pool)]
        before = self.sink.take()
        gc.collect()
        started = time.perf_counter()
        for t in threads:
            t.start()
        try:
            done.wait(timeout=600)
            seconds = time.perf_counter() - started
        finally:
            leave.set()
        for t in threads:
            t.join(SMTP_TIMEOUT)
        after = self.sink.take()
        if errors:
            raise RuntimeError(f"plain sender: {errors[0]!r}") from errors[0]
        if before["messages"]:
            raise RuntimeError(f"the sink got {before['messages']} messages between rounds")
        total = sum(sent)
        if total != len(self.messages):
            raise RuntimeError(f"plain sender sent {total} of {len(self.messages)}")
        _exactly_once("plain", after["ids"], self.expected)
        return Measured(total, seconds, after["cpu"] - before["cpu"], after["connections"])


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --child")
    parser.add_argument("--var-dir", type=Path, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--pools", default=f"{POOL},1")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    pools = [int(p) for p in args.pools.split(",")]
    sink = SinkAddress(args.host, args.port, args.control)
    sink.take()  # whatever came before is not ours

    work = args.var_dir.parent / "smtp-work"
    work.mkdir(parents=True, exist_ok=True)
    # Copied before anything opens the set-up database: every copy starts from it closed.
    pristine = copy_var_dir(args.var_dir, work / "pristine")
    pipeline = Pipeline(pristine, work, sink)
    warm = pipeline.campaign(pools[0], record=True)  # warm-up, untimed; records the bytes
    messages = warm.recorded
    if len(messages) != warm.measured.sent:
        raise RuntimeError(
            f"recorded {len(messages)} messages, the campaign sent {warm.measured.sent}"
        )
    size = _check(messages[0].data)
    plain = Plain(messages, sink)
    plain.send(pools[0])  # warm-up, untimed
    rounds: list[dict[str, dict[str, float]]] = []
    last = warm
    for i in range(args.rounds):
        measured: dict[str, dict[str, float]] = {}
        for pool in pools:
            order = SIDES if i % 2 == 0 else SIDES[::-1]
            for side in order:
                if side == "pipeline":
                    last = pipeline.campaign(pool)
                    if last.measured.sent != len(messages):
                        raise RuntimeError(
                            f"campaign sent {last.measured.sent}, the warm-up {len(messages)}: "
                            f"{dict(last.by_status)}"
                        )
                    measured[_key(side, pool)] = last.measured.as_dict()
                else:
                    measured[_key(side, pool)] = plain.send(pool).as_dict()
        rounds.append(measured)
    child_result(
        {
            "rounds": rounds,
            "messages": len(messages),
            "message_bytes": size,
            "campaign": {
                "audience": last.audience,
                "batches": last.batches,
                "by_status": dict(last.by_status),
                "launch_seconds": last.launch_seconds,
            },
        }
    )


def profile(argv: list[str]) -> None:
    """Set up a var directory and a sink; print a cProfile of ``send_campaign`` over SMTP."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --profile")
    parser.add_argument("--customers", type=int, default=FULL_CUSTOMERS)
    parser.add_argument("--pool", type=int, default=1)
    parser.add_argument("--campaigns", type=int, default=2)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)

    from bench.bench_render import _prepare
    from bench.common import isolate_this_process

    isolate_this_process()
    ctx = BenchContext(quick=False)
    try:
        var_dir = _prepare(ctx, args.customers)
        work = ctx.fresh_dir("smtp-profile")
        with running_sink(env=isolated_environment(), cwd=str(PROJECT_ROOT)) as sink:
            pipeline = Pipeline(copy_var_dir(var_dir, work / "pristine"), work, sink)
            pipeline.campaign(args.pool)  # warm-up
            prof = cProfile.Profile()
            sent, seconds = 0, 0.0
            for _ in range(args.campaigns):
                m = pipeline.campaign(args.pool, profiler=prof).measured
                sent += m.sent
                seconds += m.seconds
        print(
            f"{args.campaigns} campaigns of {size_label(args.customers)} customers, P={args.pool}: "
            f"{sent} emails in {seconds:.2f}s under the profiler ({sent / seconds:,.0f}/s)",
            flush=True,
        )
        print_profile(prof, args.top)
    finally:
        ctx.close()


if __name__ == "__main__":
    module_main(
        MODULE, child, profile, "[--pool P] [--customers N] (use python -m bench.run --only smtp)"
    )
