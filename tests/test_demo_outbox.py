"""The demo through the real campaign pipeline: the outbox, the gate, re-runs and what it prints.

The clock is pinned: ``run_demo(now=...)`` is the campaign's clock, and quiet hours
are turned off through the settings (start == end) where a test needs everyone
sendable at once. The CLI test runs ``tact demo`` as a subprocess with quiet hours
off in its environment.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from sqlalchemy import select

from engine.app.demo import CAMPAIGN, DEMO_ADMIN, DemoReport, Start, run_demo
from engine.campaigns.lifecycle import message_domain, message_id
from engine.cli.demo_cmd import where_to_look
from engine.cli.tables import deferred_table
from engine.config import Settings
from engine.db import engine_from_settings
from engine.links.tokens import TokenKind, TokenSigner
from engine.models import OutboxStatus
from engine.synthetic import generate_customers
from engine.vault import normalize_address
from engine.vault.keyring import load_keyring
from engine.vault.vault import contacts
from tests.test_privacy import find_needles, personal_needles

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 100
SEED = 21
BAD_ROWS = 12  # run_demo's default
AS_OF = date(2026, 11, 1)  # run_demo's default
#: The campaign's clock. At 12:00 UTC it is night in the Americas and East Asia / Oceania
#: (quiet hours 21-8 local), day in Europe: some recipients wait, others do not.
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OS = OutboxStatus


def no_quiet_hours(settings: Settings) -> Settings:
    return settings.model_copy(update={"quiet_hours_start": 0, "quiet_hours_end": 0})


def eligible() -> list[dict[str, Any]]:
    """The demo's campaign goes to the customers subscribed to its topic (offers)."""
    return [
        r
        for r in generate_customers(CUSTOMERS, seed=SEED, as_of=AS_OF)
        if "offers" in r.get("topics", [])
    ]


def addresses(records: list[dict[str, Any]]) -> set[str]:
    return {normalize_address(r["email"]) for r in records}


def quiet(record: dict[str, Any], at: datetime) -> bool:
    """Is it 21:00-08:00 (the default quiet hours) where this customer lives?"""
    hour = at.astimezone(ZoneInfo(record.get("timezone") or "UTC")).hour
    return hour >= 21 or hour < 8


def quiet_ends(record: dict[str, Any], at: datetime) -> datetime:
    """The next 08:00 local after ``at`` (in UTC): when a quiet-hour recipient is due."""
    local = at.astimezone(ZoneInfo(record.get("timezone") or "UTC"))
    day = local.date() + timedelta(days=1 if local.hour >= 21 else 0)
    return datetime.combine(day, time(8), tzinfo=local.tzinfo).astimezone(UTC)


def parse(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        message = email.parser.BytesParser(policy=email.policy.default).parse(fh)
    assert isinstance(message, EmailMessage)
    return message


def outbox_digest(new: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in new.iterdir()}


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def check_sample(report: DemoReport, settings: Settings) -> None:
    """The printed preference link is a real signed link for that recipient's public id."""
    sample = report.sample
    assert sample is not None
    base = settings.public_base_url.rstrip("/")
    assert sample.preferences_url.startswith(f"{base}/p/")
    token = sample.preferences_url.rsplit("/", 1)[1]
    assert sample.local_url == f"http://{settings.web_host}:{settings.web_port}/p/{token}"
    signer = TokenSigner(load_keyring(settings), settings)
    opened = signer.verify(token, TokenKind.PREFERENCES)
    assert opened.public_id == sample.public_id
    assert (opened.topic, opened.campaign) == ("offers", CAMPAIGN)
    engine = engine_from_settings(settings)
    try:
        with engine.connect() as conn:
            public = conn.execute(
                select(contacts.c.public_id).where(contacts.c.id == sample.contact_id)
            ).scalar_one()
    finally:
        engine.dispose()
    assert public == sample.public_id
    # The sample was sent the email: its own message links the same preference center.
    assert sample.status == OS.SENT
    mid = message_id(report.name, sample.contact_id, message_domain(settings))
    (path,) = [p for p in (report.outbox / "new").iterdir() if parse(p)["Message-ID"] == mid]
    links = re.findall(re.escape(base) + r"/p/([A-Za-z0-9_-]+)", html_of(parse(path)))
    assert links
    assert {signer.verify(t, TokenKind.PREFERENCES).public_id for t in links} == {public}


def test_demo_sends_through_the_pipeline_and_a_rerun_sends_nothing(settings: Settings) -> None:
    settings = no_quiet_hours(settings)
    first = run_demo(settings, customers=CUSTOMERS, seed=SEED, bad_rows=BAD_ROWS, now=NOW)
    assert first.imported.inserted == CUSTOMERS
    assert first.imported.updated == 0
    assert first.imported.rejected == BAD_ROWS
    expected_to = addresses(eligible())
    n = len(expected_to)
    assert 0 < n < CUSTOMERS
    assert first.start is Start.CREATED
    assert first.contacts == CUSTOMERS
    camp = first.campaign
    assert (camp.name, camp.template, camp.topic) == (CAMPAIGN, CAMPAIGN, "offers")
    assert camp.recipients == n
    assert first.by_status == {OS.SENT: n}
    assert camp.status == "sent"  # nothing left: finished by send_campaign
    assert first.this_run == {OS.SENT: n}
    assert first.deferred == []
    assert camp.decisions == {"send:ok": n}
    # Per segment, what was sent adds up to everyone, in the segments of this build.
    per_segment = {seg: rows[OS.SENT] for seg, rows in camp.by_segment.items()}
    assert sum(per_segment.values()) == n
    built = {name for name, _, _ in first.segments.rules} | set(first.segments.learned)
    assert set(per_segment) <= built | {"standard"}
    assert len(per_segment) >= 3

    new = first.outbox / "new"
    assert first.outbox == settings.resolved_outbox_dir
    files = sorted(new.iterdir())
    assert len(files) == first.outbox_files == n
    assert not list((first.outbox / "tmp").iterdir())  # nothing left half-written

    message_ids: list[str] = []
    recipients: list[str] = []
    for path in files:
        msg = parse(path)
        assert not msg.defects, (path.name, msg.defects)
        for header in ("From", "To", "Subject", "Date", "Message-ID"):
            assert msg[header], f"{path.name}: no {header}"
        assert msg.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"], parts
        plain = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        assert plain is not None and html is not None
        assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
        assert plain.get_content().strip()
        assert "<html" in html.get_content().lower()
        assert parsedate_to_datetime(str(msg["Date"])) == NOW  # the campaign's clock
        mid = str(msg["Message-ID"])
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", mid), mid
        assert msg["From"].addresses and msg["From"].addresses[0].addr_spec
        (to,) = msg["To"].addresses
        assert msg["List-Unsubscribe"].startswith("<https://"), path.name
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"], path.name
        message_ids.append(mid)
        recipients.append(to.addr_spec)
    assert len(set(message_ids)) == n
    assert sorted(recipients) == sorted(expected_to)
    check_sample(first, settings)
    before = outbox_digest(new)

    # Again, a day later: the import upserts, the campaign is found sent, nothing goes out.
    later = NOW + timedelta(days=1)
    second = run_demo(settings, customers=CUSTOMERS, seed=SEED, bad_rows=BAD_ROWS, now=later)
    assert second.imported.inserted == 0
    assert second.imported.updated == CUSTOMERS
    assert second.imported.rejected == BAD_ROWS
    assert second.start is Start.FINISHED
    assert second.this_run == {}
    assert second.by_status == {OS.SENT: n}
    assert second.campaign.id == first.campaign.id
    assert second.campaign.decisions == {"send:ok": n}  # the gate was not asked again
    # Not a message added, none rewritten (a rewrite would carry a new Date).
    assert outbox_digest(new) == before
    assert second.outbox_files == n
    assert not list((second.outbox / "tmp").iterdir())


def test_quiet_hours_defer_and_a_later_run_delivers_them(settings: Settings) -> None:
    """Quiet hours on (the default): the night side waits, a later run sends it, once."""
    records = eligible()
    waiting = [r for r in records if quiet(r, NOW)]
    assert 0 < len(waiting) < len(records), "the pinned clock should split the audience"

    first = run_demo(settings, customers=CUSTOMERS, seed=SEED, bad_rows=BAD_ROWS, now=NOW)
    assert first.start is Start.CREATED
    assert first.campaign.status == "sending"  # deferred rows are still open
    assert first.this_run == {OS.SENT: len(records) - len(waiting), OS.DEFERRED: len(waiting)}
    assert first.by_status == first.this_run
    (deferred,) = first.deferred
    assert (deferred.reason, deferred.count) == ("quiet-hours", len(waiting))
    # Each one is due at 08:00 in its own zone, after the pinned now.
    due = {quiet_ends(r, NOW) for r in waiting}
    assert (deferred.first, deferred.last) == (min(due), max(due))
    assert NOW < deferred.first
    assert first.outbox_files == len(records) - len(waiting)
    assert first.campaign.decisions == {
        "send:ok": len(records) - len(waiting),
        "defer:quiet-hours": len(waiting),
    }
    assert first.by_status_reason == {
        (OS.SENT, "ok"): len(records) - len(waiting),
        (OS.DEFERRED, "quiet-hours"): len(waiting),
    }
    sent_first = {str(parse(p)["To"]).lower() for p in (first.outbox / "new").iterdir()}
    assert sent_first == addresses([r for r in records if not quiet(r, NOW)])

    # What the CLI prints of it: the reason, when, and who delivers them.
    console = Console(record=True, width=200)
    console.print(deferred_table(first.campaign.deferred))
    for line in where_to_look(first):
        console.print(line)
    shown = console.export_text()
    assert "quiet-hours" in shown
    assert deferred.first.strftime("%Y-%m-%d %H:%M UTC") in shown
    assert f"tact campaigns send {CAMPAIGN}" in shown
    assert f"{len(waiting):,} recipients wait for their slot" in shown
    before = outbox_digest(first.outbox / "new")

    # At the last one's slot, the demo again: only the due batches run.
    at = deferred.last
    still = [r for r in waiting if quiet(r, at)]
    second = run_demo(settings, customers=CUSTOMERS, seed=SEED, bad_rows=BAD_ROWS, now=at)
    assert second.start is Start.RESUMED
    assert second.this_run[OS.SENT] == len(waiting) - len(still) > 0
    assert second.by_status.get(OS.SENT) == len(records) - len(still)
    assert second.by_status.get(OS.DEFERRED, 0) == len(still)
    assert second.campaign.status == ("sending" if still else "sent")
    new = second.outbox / "new"
    # The first run's messages untouched, the new ones added, nobody twice.
    assert {k: v for k, v in outbox_digest(new).items() if k in before} == before
    to = [str(parse(p)["To"]).lower() for p in new.iterdir()]
    assert len(to) == len(set(to)) == second.outbox_files == len(records) - len(still)
    assert set(to) == addresses([r for r in records if r not in still])


def test_tact_demo_prints_the_report_and_nothing_personal(tmp_path: Path) -> None:
    """``tact demo`` end to end as a subprocess: every section, ids only, a working link."""
    customers = 60
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_")}
    env.update(
        {
            "TACT_CONFIG": str(tmp_path / "no-such-tact.toml"),
            "TACT_VAR_DIR": str(tmp_path / "var"),
            "TACT_QUIET_HOURS_START": "0",  # off: the test must not depend on the time of day
            "TACT_QUIET_HOURS_END": "0",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
            "PYTHONIOENCODING": "utf-8",
            "COLUMNS": "200",
        }
    )
    command = [sys.executable, "-m", "engine.cli.main", "demo", "--customers", str(customers)]
    done = subprocess.run(
        [*command, "--seed", str(SEED)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    n = len(
        [
            r
            for r in generate_customers(customers, seed=SEED, as_of=AS_OF)
            if "offers" in r["topics"]
        ]
    )
    for section in (
        "import #1",
        f"campaign {CAMPAIGN}: created, scheduled and launched",
        f"campaign {CAMPAIGN}, topic offers: sent",
        "deferred: none",
        "not sent: none",
        "per segment",
        "gate decisions",
        f"send:ok {n:,}",
        "where to look",
        f"outbox: {tmp_path / 'var' / 'outbox'}/new  ({n:,} messages",
        f"tact preview {CAMPAIGN} --out var/preview",
        f"tact campaigns report {CAMPAIGN}",
    ):
        assert section in text, (section, text)
    assert re.search(rf"│ +sent +│ +{n:,} │", text), text
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == n
    prefs = re.search(r"its preference center, as its email links it: (\S+)", text)
    local = re.search(r"to open it here: tact serve, then (\S+)", text)
    assert prefs and local, text
    token = prefs.group(1).rsplit("/p/", 1)[1]
    assert prefs.group(1) == f"https://prefs.northwind.example/p/{token}"
    assert local.group(1) == f"http://127.0.0.1:8000/p/{token}"
    keyring_settings = Settings(var_dir=tmp_path / "var")
    opened = TokenSigner(load_keyring(keyring_settings), keyring_settings).verify(
        token, TokenKind.PREFERENCES
    )
    assert f"public id {opened.public_id}" in text

    # Privacy: no address, name or phone number of any generated customer, in either stream.
    records = list(generate_customers(customers, seed=SEED, as_of=AS_OF, bad_rows=BAD_ROWS))
    needles = personal_needles(records)
    assert len(needles) > 2 * customers
    printed = (done.stdout + done.stderr).encode("utf-8")
    assert find_needles(printed, needles) == []
    # The one address it prints is the demo's own fictional admin login (sealed at rest).
    assert "@" not in (done.stdout + done.stderr).replace(DEMO_ADMIN, "")


# -- the language of each message ----------------------------------------------------------

#: A sample with several Simplified Chinese customers among the offers subscribers.
LOCALE_CUSTOMERS, LOCALE_SEED = 60, 34
#: Han, kana and Hangul: a Chinese (or Japanese, Korean) word in the text.
CJK = re.compile("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_zh_contacts_get_the_whole_email_in_chinese_and_everyone_else_in_english(
    settings: Settings,
) -> None:
    """The demo's Chinese-speaking customers get Chinese emails: ``<html lang>``, subject,
    body, footer and the text part agree; everyone else's email is English throughout."""
    settings = no_quiet_hours(settings)
    report = run_demo(
        settings, customers=LOCALE_CUSTOMERS, seed=LOCALE_SEED, bad_rows=BAD_ROWS, now=NOW
    )
    people = {
        normalize_address(r["email"]): r
        for r in generate_customers(LOCALE_CUSTOMERS, seed=LOCALE_SEED, as_of=AS_OF)
        if "offers" in r.get("topics", [])
    }
    seen: dict[str, int] = {"zh-Hans": 0, "en": 0}
    for path in (report.outbox / "new").iterdir():
        msg = parse(path)
        (to,) = msg["To"].addresses
        person = people[normalize_address(to.addr_spec)]
        html, text, subject = html_of(msg), text_of(msg), str(msg["Subject"])
        (lang,) = re.findall(r'<html lang="([^"]+)">', html)
        if person["locale"].startswith("zh"):
            assert lang == "zh-Hans", path.name
            assert CJK.search(subject), subject
            assert not re.search(r"[A-Za-z]{3,}", subject), subject
            for words in ("退订", "邮件偏好设置", "您收到此邮件", "“优惠”", "感谢您的惠顾"):
                assert words in html and words in text, (words, path.name)
            for english in ("Unsubscribe", "Email preferences", "You are receiving", "Thank you"):
                assert english not in html and english not in text, (english, path.name)
            # The name as Chinese writes it: family name first, no space.
            full = f"{person['last_name']}{person['first_name']}"
            assert full in html and full in text, path.name
            assert f"{person['first_name']}," not in subject + html + text
        else:
            # Only English and Simplified Chinese content exist: everyone else reads English.
            assert lang == "en", (person["locale"], path.name)
            for words in ("Unsubscribe", "Email preferences", "You are receiving", "Thank you"):
                assert words in html and words in text, (words, path.name)
            for chinese in ("退订", "邮件偏好设置", "您收到此邮件", "感谢"):
                assert chinese not in html and chinese not in text, (chinese, path.name)
            assert not CJK.search(subject.replace(person["first_name"], "")), subject
        seen[lang] += 1
    assert seen["zh-Hans"] >= 5 and seen["en"] >= 30, seen
    assert sum(seen.values()) == len(people)
