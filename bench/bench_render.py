"""Rendering: messages per second for the full render, the floor and the stdlib path.

Target (this 2-core machine): the full render at least 50% of the floor's rate,
and at least 10 times the stdlib ``EmailMessage`` path's rate.

Setup (not timed, in the parent): a fresh SQLite var directory, N synthetic
customers (2,000; 500 with ``--quick``) written as JSONL and imported into the
vault, segments built from ``templates/segments.toml`` as of 2026-11-01. The
audience is the one a campaign's launch fans out to: active contacts subscribed
to the campaign's topic and not suppressed (``engine.campaigns.audience``),
about three in four of them.

The three measurements run in one child process (``python -m bench.bench_render
--child ...``), interleaved, so they share the interpreter, the machine's load
and its caches:

full
    What the campaign pipeline (``engine.campaigns.sender``) does per message
    once the gate has let the batch through, minus the transport and the
    bookkeeping: per batch of 500 (``settings.campaign_batch_size``) one
    connection, ``load_recipients``: ``vault.read`` (unwrap each data key,
    AES-GCM-open email and first name),
    ``segment_for_contacts``, the id/public-id/locale query, then per recipient
    ``Composer.compose`` (two signed link tokens, segment variants of the
    blocks, the brand frame, Message-ID, MIME bytes). Not timed: building the
    Composer (compiling templates, inlining CSS) and the audience query, which
    happen once per campaign. Recipients whose address cannot go into a header
    are skipped and not counted, as the pipeline does (``unsendable``).
floor
    One cached compiled Jinja template per part: the brand frame
    (``templates/brand/email.html.j2`` / ``email.txt.j2``) with the campaign's
    default blocks written into it (CSS inlined into the HTML blocks, as the
    renderer does), compiled in the renderer's own ``TactSandbox``
    environment. Per message: ``template.render(ctx)`` for HTML and text with a
    plain dict, then ``MessageTemplate.build``. Addresses, first names, the
    signed links and Message-IDs are computed in advance: no vault, no
    segments, no signing, no per-batch queries.
stdlib
    The floor's two renders, then the textbook ``email.message.EmailMessage``
    (``policy=email.policy.SMTP``, CRLF like ours): From, To, Subject, Date,
    Message-ID, Reply-To, List-Id, List-Unsubscribe, List-Unsubscribe-Post,
    Feedback-ID, ``set_content(text)``, ``add_alternative(html,
    subtype="html")``, ``as_bytes()``. A new message per recipient, as with
    ``smtplib.send_message``.

Each measurement repeats passes over the audience until at least 2 s have
passed (0.5 s with ``--quick``) and counts messages over the wall time
(``time.perf_counter``). Three rounds of (full, floor, stdlib); each path's
figure is its best round, and the ratios divide the best rates. One output of
each path is parsed with the stdlib parser before timing starts, to check that
all three produce a valid two-part message carrying the unsubscribe link.

The whole sending pipeline (fan-out, claim, gate, render, send, record) is
measured by ``bench.bench_pipeline`` (in-process) and ``bench.bench_distributed``
(on workers), not here.

For a profile of the full render: ``python -m bench.bench_render --profile``
(sets up its own temporary var directory, prints the cProfile top functions).
"""

from __future__ import annotations

import argparse
import cProfile
import email.policy
import gc
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any
from uuid import UUID

from bench.common import (
    BenchContext,
    Figure,
    child_result,
    module_main,
    print_profile,
    run_child,
    size_label,
)

BENCH = "render"
MODULE = "bench.bench_render"
SEED = 20_261_101
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
CAMPAIGN = "autumn-2026"

FULL_CUSTOMERS = 2_000
QUICK_CUSTOMERS = 500
FULL_SECONDS = 2.0
QUICK_SECONDS = 0.5
ROUNDS = 3

FLOOR_TARGET = ">= 0.5"
STDLIB_TARGET = ">= 10"

PATHS = ("full", "floor", "stdlib")


# ------------------------------------------------------------------- parent


def _prepare(ctx: BenchContext, customers: int) -> Path:
    """A var directory with ``customers`` imported and segments built; returns var_dir."""
    from engine.config import Settings
    from engine.db import engine_from_settings
    from engine.people.importer import import_file
    from engine.segments import BuildOptions, build, load_rules
    from engine.setup import initialize
    from engine.synthetic import generate_customers, write_jsonl
    from engine.vault import Vault

    def make(path: Path) -> None:
        with ctx.step(f"generating {size_label(customers)} customers (jsonl)"):
            written = write_jsonl(path, generate_customers(customers, seed=SEED))
        if written != customers:
            raise RuntimeError(f"generator wrote {written} rows, expected {customers}")

    source = ctx.cached_file(f"customers-{size_label(customers)}.jsonl", make)
    work = ctx.fresh_dir(f"render-{size_label(customers)}")
    settings = Settings(var_dir=work / "var")
    initialize(settings=settings)
    engine = engine_from_settings(settings)
    try:
        vault = Vault.from_settings(settings)
        with ctx.step(f"importing {size_label(customers)} customers"):
            report = import_file(engine, vault, settings, source)
        if report.inserted != customers or report.rejected:
            raise RuntimeError(f"unexpected import report: {report}")
        with ctx.step("building segments"):
            build(
                engine,
                load_rules(settings.templates_dir / "segments.toml"),
                BuildOptions(as_of=AS_OF),
            )
    finally:
        engine.dispose()
    return settings.var_dir


def run(ctx: BenchContext) -> list[Figure]:
    customers = QUICK_CUSTOMERS if ctx.quick else FULL_CUSTOMERS
    seconds = QUICK_SECONDS if ctx.quick else FULL_SECONDS
    var_dir = _prepare(ctx, customers)
    try:
        with ctx.step(f"measuring ({ROUNDS} rounds, >= {seconds:g}s per path per round)"):
            result = run_child(
                MODULE, ["--var-dir", str(var_dir), "--seconds", str(seconds)], timeout=900
            )
    finally:
        shutil.rmtree(var_dir.parent, ignore_errors=True)

    best: dict[str, float] = {p: max(r[p] for r in result["rounds"]) for p in PATHS}
    for i, r in enumerate(result["rounds"], 1):
        ctx.log(
            f"    round {i}: "
            + ", ".join(f"{p} {r[p]:,.0f}/s" for p in PATHS)
            + f" (full/floor {r['full'] / r['floor']:.2f})"
        )
    sizes = result["sizes"]
    ctx.log(
        f"    audience {result['audience']} of {customers} (unsendable {result['unsendable']}); "
        "message bytes: " + ", ".join(f"{p} {sizes[p]:,}" for p in ("full", "floor", "stdlib"))
    )
    common = f"{customers} customers, audience {result['audience']}; best of {ROUNDS} rounds"
    return [
        Figure(
            BENCH,
            "full render msgs/s",
            best["full"],
            "msgs/s",
            note=f"vault read + segments + compose, per batch of 500; {common}",
        ),
        Figure(
            BENCH,
            "floor msgs/s",
            best["floor"],
            "msgs/s",
            note=f"cached flattened template render (html, text) + MessageTemplate.build; {common}",
        ),
        Figure(
            BENCH,
            "stdlib EmailMessage msgs/s",
            best["stdlib"],
            "msgs/s",
            note=f"same cached renders + email.message.EmailMessage.as_bytes; {common}",
        ),
        Figure(
            BENCH,
            "render full/floor",
            best["full"] / best["floor"],
            "x",
            FLOOR_TARGET,
            note="best full rate over best floor rate, same run",
        ),
        Figure(
            BENCH,
            "render full/stdlib",
            best["full"] / best["stdlib"],
            "x",
            STDLIB_TARGET,
            note="best full rate over best stdlib rate, same run",
        ),
    ]


# -------------------------------------------------------------------- child


@dataclass(frozen=True)
class Person:
    contact_id: UUID
    to_addr: str
    first_name: str | None
    message_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    preferences_url: str


_HTML_LOOP = re.compile(r"\{% for block in blocks %\}\n(.*?)\{% endfor %\}\n", re.S)
_TEXT_LOOP = re.compile(r"\{% for block in text_blocks %\}\n(.*?)\{% endfor %\}\n", re.S)


def _flatten(frame: str, loop: re.Pattern[str], blocks: list[str], where: str) -> str:
    """The brand frame with its block loop replaced by the blocks' sources, in order."""
    match = loop.search(frame)
    if match is None:
        raise RuntimeError(f"{where}: no block loop to flatten (did the brand base change?)")
    body = match.group(1)
    if "{{ block }}" not in body:
        raise RuntimeError(f"{where}: the block loop has no '{{{{ block }}}}'")
    inlined = "".join(body.replace("{{ block }}", source) for source in blocks)
    return frame[: match.start()] + inlined + frame[match.end() :]


def flat_sources(composer: Any) -> tuple[str, str]:
    """The brand frame (HTML, text) with the campaign's default blocks written into it.

    CSS is inlined into the HTML blocks, as the renderer does. The floor compiles
    these sources; the textbook design keeps them as template files on disk.
    """
    import css_inline

    from engine.render.template import STANDARD

    spec = composer.spec
    brand_dir = composer.settings.templates_dir / "brand"
    css_path = brand_dir / "email.css"
    css = css_path.read_text("utf-8") if css_path.exists() else ""
    html_blocks: list[str] = []
    text_blocks: list[str] = []
    for block in spec.blocks:
        html = spec.variants(block, "html")[STANDARD].read_text("utf-8")
        html_blocks.append(css_inline.inline_fragment(html, css) if css else html)
        text_blocks.append(spec.variants(block, "txt")[STANDARD].read_text("utf-8").strip("\n"))
    html_frame = (brand_dir / "email.html.j2").read_text("utf-8")
    text_frame = (brand_dir / "email.txt.j2").read_text("utf-8")
    return (
        _flatten(html_frame, _HTML_LOOP, html_blocks, "email.html.j2"),
        _flatten(text_frame, _TEXT_LOOP, text_blocks, "email.txt.j2"),
    )


def floor_person(
    settings: Any, composer: Any, contact_id: Any, read: Any, public_id: Any
) -> Person:
    """One recipient with everything precomputed: address, name, Message-ID, signed links."""
    from engine.links.urls import links_for

    links = links_for(
        settings,
        composer.signer,
        public_id,
        topic=composer.topic.name,
        campaign=composer.spec.name,
    )
    return Person(
        contact_id=contact_id,
        to_addr=read.email,
        first_name=read.first_name,
        message_id=composer.message_id(contact_id),
        unsubscribe_url=links.unsubscribe_url,
        unsubscribe_mailto=links.unsubscribe_mailto,
        preferences_url=links.preferences_url,
    )


class Floor:
    """The floor: one compiled template per part, a plain dict, MessageTemplate.build."""

    def __init__(self, composer: Any) -> None:
        from engine.render.mime import MessageTemplate
        from engine.render.sandbox import compile_template
        from engine.render.template import STANDARD, plain_text

        renderer = composer.renderer
        spec = composer.spec
        html_source, text_source = flat_sources(composer)
        text_source = plain_text(text_source)
        env = renderer.env  # the renderer's TactSandbox
        self.html = compile_template(env, "floor.html.j2", html_source)
        self.text = compile_template(env, "floor.txt.j2", text_source, plain=True)
        brand = renderer.brand
        self.brand = brand
        self.brand_ctx = brand.as_context()
        self.subject = spec.subjects[STANDARD]
        self.preheader = spec.preheader
        words = renderer.words_in(spec.language)
        self.words = {
            "unsubscribe": words.unsubscribe,
            "preferences": words.preferences,
            "colon": words.colon,
        }
        self.why = words.why_line(topic=composer.topic.title_in("en"), brand=brand.name)
        self.feedback_id = f"{spec.name}:{composer.topic.name}:{_slug(brand.name)}"
        self.list_id = composer.list_id
        self.template = MessageTemplate(
            from_addr=brand.sender_address,
            from_name=brand.sender_name,
            reply_to=brand.reply_to,
            list_id=self.list_id,
            feedback_id=self.feedback_id,
        )

    def render(self, p: Person) -> tuple[str, str]:
        context = {
            "brand": self.brand_ctx,
            "lang": "en",
            "subject": self.subject,
            "preheader": self.preheader,
            "first_name": p.first_name,
            "why": self.why,
            "words": self.words,
            "unsubscribe_url": p.unsubscribe_url,
            "preferences_url": p.preferences_url,
        }
        return self.html.render(context), self.text.render(context)

    def message(self, p: Person, date: datetime) -> bytes:
        html, text = self.render(p)
        return self.template.build(
            to_addr=p.to_addr,
            to_name=None,
            subject=self.subject,
            date=date,
            message_id=p.message_id,
            text=text,
            html=html,
            unsubscribe_https=p.unsubscribe_url,
            unsubscribe_mailto=p.unsubscribe_mailto,
        )

    def stdlib_message(self, p: Person, date: datetime) -> bytes:
        html, text = self.render(p)
        brand = self.brand
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = formataddr((brand.sender_name, brand.sender_address))
        msg["To"] = p.to_addr
        msg["Subject"] = self.subject
        msg["Date"] = format_datetime(date)
        msg["Message-ID"] = p.message_id
        msg["Reply-To"] = brand.reply_to
        msg["List-Id"] = self.list_id
        msg["List-Unsubscribe"] = f"<{p.unsubscribe_url}>, <{p.unsubscribe_mailto}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["Feedback-ID"] = self.feedback_id
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return msg.as_bytes()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "brand"


class Job:
    """Everything the child measures, built once (the untimed per-campaign setup)."""

    def __init__(self, var_dir: Path) -> None:
        from engine.campaigns.audience import audience
        from engine.config import Settings
        from engine.db import engine_from_settings
        from engine.errors import HeaderError
        from engine.links.tokens import TokenSigner
        from engine.render.compose import Composer
        from engine.vault import Vault

        self.settings = Settings(var_dir=var_dir)
        self.engine = engine_from_settings(self.settings)
        self.vault = Vault.from_settings(self.settings)
        self.composer = Composer(
            self.settings, CAMPAIGN, TokenSigner(self.vault.keyring, self.settings)
        )
        self.fields = ["email", *self.composer.spec.vault_fields]
        self.batch = self.settings.campaign_batch_size
        self.ids = audience(self.engine, self.composer.topic.name)
        self.header_error = HeaderError
        self.floor = Floor(self.composer)
        # The floor's and the stdlib path's inputs, decrypted and signed in advance.
        people: list[Person] = []
        self.unsendable = 0
        with self.engine.connect() as conn:
            from sqlalchemy import select

            from engine.vault.vault import contacts

            read = self.vault.read(conn, self.ids, self.fields, purpose="bench")
            public: dict[UUID, UUID] = dict(
                conn.execute(
                    select(contacts.c.id, contacts.c.public_id).where(contacts.c.id.in_(self.ids))
                ).all()
            )
        for cid in self.ids:
            person = read.get(cid)
            if person is None or not person.email:
                continue
            try:
                self.floor.template.build(  # same refusal as compose: skip unsendable
                    to_addr=person.email,
                    to_name=None,
                    subject="x",
                    date=AS_OF,
                    message_id=self.composer.message_id(cid),
                    text="",
                    html="",
                    unsubscribe_https="https://x.example/u",
                )
            except HeaderError:
                self.unsendable += 1
                continue
            people.append(floor_person(self.settings, self.composer, cid, person, public[cid]))
        self.people = people

    # -- the three paths; each returns (messages, one message's bytes)

    def full_pass(self, keep: list[bytes] | None = None) -> int:
        """One pass of the pipeline's per-batch read and render over the audience."""
        from engine.campaigns.recipients import load_recipients

        composer = self.composer
        spec_fields = composer.spec.vault_fields
        ids = self.ids
        done = 0
        for start in range(0, len(ids), self.batch):
            chunk = ids[start : start + self.batch]
            with self.engine.connect() as conn:
                batch = load_recipients(
                    conn, self.vault, chunk, self.fields, purpose=f"campaign:{CAMPAIGN}"
                )
            people, segments, meta = batch.people, batch.segments, batch.meta
            now = datetime.now(UTC)
            for contact_id in chunk:
                person = people.get(contact_id)
                if person is None or not person.email:
                    continue
                try:
                    composed = composer.compose(
                        contact_id=contact_id,
                        public_id=meta[contact_id].public_id,
                        to_addr=person.email,
                        fields={f: getattr(person, f) for f in spec_fields},
                        segment=segments.get(contact_id),
                        locale=meta[contact_id].locale,
                        date=now,
                    )
                except self.header_error:
                    continue
                if keep is not None and not keep:
                    keep.append(composed.data)
                done += 1
        return done

    def floor_pass(self, keep: list[bytes] | None = None) -> int:
        build = self.floor.message
        now = datetime.now(UTC)
        for p in self.people:
            data = build(p, now)
            if keep is not None and not keep:
                keep.append(data)
        return len(self.people)

    def stdlib_pass(self, keep: list[bytes] | None = None) -> int:
        build = self.floor.stdlib_message
        now = datetime.now(UTC)
        for p in self.people:
            data = build(p, now)
            if keep is not None and not keep:
                keep.append(data)
        return len(self.people)

    def check(self) -> dict[str, int]:
        """One message of each path through the stdlib parser; their sizes."""
        sizes: dict[str, int] = {}
        for name, fn in (
            ("full", self.full_pass),
            ("floor", self.floor_pass),
            ("stdlib", self.stdlib_pass),
        ):
            keep: list[bytes] = []
            fn(keep)
            data = keep[0]
            msg = BytesParser(policy=email.policy.default).parsebytes(data)
            if msg.get_content_type() != "multipart/alternative":
                raise RuntimeError(f"{name}: not multipart/alternative")
            parts = [p.get_content_type() for p in msg.iter_parts()]
            if parts != ["text/plain", "text/html"]:
                raise RuntimeError(f"{name}: parts {parts}")
            unsubscribe = str(msg["List-Unsubscribe"])
            url = unsubscribe.split(">", 1)[0].lstrip("<")
            for part in msg.iter_parts():
                if url not in part.get_content():
                    raise RuntimeError(
                        f"{name}: {part.get_content_type()} lacks the unsubscribe link"
                    )
            if msg["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click":
                raise RuntimeError(f"{name}: no List-Unsubscribe-Post")
            sizes[name] = len(data)
        return sizes

    def close(self) -> None:
        self.engine.dispose()


def _rate(fn: Callable[[], int], seconds: float) -> float:
    """Messages per second over whole passes, repeated until ``seconds`` have passed."""
    done = 0
    started = time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --child")
    parser.add_argument("--var-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=FULL_SECONDS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)

    job = Job(args.var_dir)
    try:
        sizes = job.check()
        passes: dict[str, Callable[[], int]] = {
            "full": job.full_pass,
            "floor": job.floor_pass,
            "stdlib": job.stdlib_pass,
        }
        for fn in passes.values():  # warm-up: one pass each
            fn()
        rounds: list[dict[str, float]] = []
        for _ in range(args.rounds):
            rates: dict[str, float] = {}
            for name, fn in passes.items():
                gc.collect()
                rates[name] = _rate(fn, args.seconds)
            rounds.append(rates)
    finally:
        job.close()
    child_result(
        {
            "audience": len(job.ids),
            "people": len(job.people),
            "unsendable": job.unsendable,
            "sizes": sizes,
            "rounds": rounds,
        }
    )


def profile(argv: list[str]) -> None:
    """Set up a temporary var directory and print a cProfile of full-render passes."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --profile")
    parser.add_argument("--customers", type=int, default=FULL_CUSTOMERS)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--path", choices=("full", "floor"), default="full")
    args = parser.parse_args(argv)

    from bench.common import isolate_this_process

    isolate_this_process()
    ctx = BenchContext(quick=False)
    try:
        var_dir = _prepare(ctx, args.customers)
        job = Job(var_dir)
        try:
            fn = job.full_pass if args.path == "full" else job.floor_pass
            fn()
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.passes):
                fn()
            prof.disable()
        finally:
            job.close()
        print_profile(prof, args.top)
    finally:
        ctx.close()


if __name__ == "__main__":
    module_main(MODULE, child, profile, "[--customers N] (use python -m bench.run --only render)")
