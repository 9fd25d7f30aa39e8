"""The demo's outbox: well-formed MIME, one message per contact, nothing doubled on a re-run."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from engine.config import Settings
from engine.delivery.base import DeliveryStatus
from engine.demo import run_demo
from engine.synthetic import generate_customers
from engine.vault import normalize_address

CUSTOMERS = 100
SEED = 21
BAD_ROWS = 12  # run_demo's default


def eligible_addresses() -> set[str]:
    """The demo's campaign goes to the customers subscribed to its topic (offers)."""
    return {
        normalize_address(r["email"])
        for r in generate_customers(CUSTOMERS, seed=SEED)
        if "offers" in r.get("topics", [])
    }


def parse(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        message = email.parser.BytesParser(policy=email.policy.default).parse(fh)
    assert isinstance(message, EmailMessage)
    return message


def outbox_digest(new: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in new.iterdir()}


def test_demo_outbox_is_well_formed_and_a_rerun_adds_nothing(settings: Settings) -> None:
    first = run_demo(settings, customers=CUSTOMERS, seed=SEED, bad_rows=BAD_ROWS)
    assert first.imported.inserted == CUSTOMERS
    assert first.imported.updated == 0
    assert first.imported.rejected == BAD_ROWS
    expected_to = eligible_addresses()
    eligible = len(expected_to)
    assert 0 < eligible < CUSTOMERS
    assert first.job.audience == eligible
    assert first.job.by_status == {DeliveryStatus.SENT: eligible}

    new = first.outbox / "new"
    assert first.outbox == settings.resolved_outbox_dir
    files = sorted(new.iterdir())
    assert len(files) == eligible
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
        assert parsedate_to_datetime(str(msg["Date"])).tzinfo is not None
        mid = str(msg["Message-ID"])
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", mid), mid
        assert msg["From"].addresses and msg["From"].addresses[0].addr_spec
        (to,) = msg["To"].addresses
        assert msg["List-Unsubscribe"].startswith("<https://"), path.name
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"], path.name
        message_ids.append(mid)
        recipients.append(to.addr_spec)
    assert len(set(message_ids)) == eligible
    assert sorted(recipients) == sorted(expected_to)
    before = outbox_digest(new)

    second = run_demo(settings, customers=CUSTOMERS, seed=SEED, bad_rows=BAD_ROWS)
    assert second.imported.inserted == 0
    assert second.imported.updated == CUSTOMERS
    assert second.imported.rejected == BAD_ROWS
    assert second.job.audience == eligible
    assert second.job.by_status == {DeliveryStatus.DUPLICATE: eligible}
    assert second.job.delivered == 0
    # Not a message added, none rewritten (a rewrite would carry a new Date).
    assert outbox_digest(new) == before
    assert not list((second.outbox / "tmp").iterdir())
