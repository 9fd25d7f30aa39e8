"""Bounces (RFC 3464 DSN) and complaints (RFC 5965 ARF): parse, suppress, never print an address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select

from engine.config import Settings
from engine.consent.suppression import reason_for
from engine.db import writing
from engine.events.bounces import (
    BounceKind,
    ReportType,
    apply_bounce,
    parse_bounce,
)
from engine.models import AuditEvent, EventType
from engine.vault import Vault
from tests.helpers import import_rows, people

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]


def _block(**fields: str) -> Message:
    block = Message()
    for name, value in fields.items():
        block[name.replace("_", "-")] = value
    return block


def _report(report_type: str, machine_part: Message, original: Message | None) -> bytes:
    msg = MIMEMultipart("report")
    msg.set_param("report-type", report_type)
    msg["From"] = "MAILER-DAEMON@mx.example.net"
    msg["To"] = "bounces@northwind.example"
    msg["Subject"] = "Delivery Status Notification"
    msg.attach(MIMEText("This is a report about a message you sent.\n"))
    msg.attach(machine_part)
    if original is not None:
        msg.attach(original)
    return msg.as_bytes()


def _original(to: str) -> Message:
    inner = Message()
    inner["From"] = "news@northwind.example"
    inner["To"] = to
    inner["Subject"] = "Spring offers"
    inner["Message-ID"] = "<c1.p1@northwind.example>"
    inner.set_payload("Hello.\n")
    return MIMEMessage(inner)


def dsn(*recipients: dict[str, str]) -> bytes:
    """A delivery status notification with one block per recipient (RFC 3464 §2)."""
    status = Message()
    status["Content-Type"] = "message/delivery-status"
    blocks = [_block(Reporting_MTA="dns; mx.example.net", Arrival_Date="Mon, 1 Jun 2026")]
    blocks += [_block(**r) for r in recipients]
    status.set_payload(blocks)  # type: ignore[arg-type]
    return _report("delivery-status", status, _original("someone@example.org"))


def arf(feedback_type: str = "abuse", rcpt_to: str | None = None, to: str = "x@y.z") -> bytes:
    """A complaint in the Abuse Reporting Format (RFC 5965 §2)."""
    fields = {"Feedback_Type": feedback_type, "User_Agent": "FBL/1.0", "Version": "1"}
    if rcpt_to is not None:
        fields["Original_Rcpt_To"] = f"<{rcpt_to}>"
    report = Message()
    report["Content-Type"] = "message/feedback-report"
    report.set_payload([_block(**fields)])  # type: ignore[arg-type]
    return _report("feedback-report", report, _original(to))


HARD = "person0@example.com"
UNKNOWN = "never.imported@example.org"


def sample_dsn() -> bytes:
    return dsn(
        {"Final_Recipient": f"rfc822; {HARD}", "Action": "failed", "Status": "5.1.1",
         "Diagnostic_Code": f"smtp; 550 5.1.1 <{HARD}>: user unknown"},
        {"Final_Recipient": "rfc822; slow@example.com", "Action": "delayed", "Status": "4.4.7"},
        {"Final_Recipient": "rfc822; full@example.com", "Action": "failed", "Status": "5.2.2"},
        {"Final_Recipient": "rfc822; fine@example.com", "Action": "delivered", "Status": "2.0.0"},
        {"Original_Recipient": f"rfc822;{UNKNOWN}", "Final_Recipient": f"RFC822; <{UNKNOWN}>",
         "Action": "failed", "Status": "5.1.10 (no such domain)"},
        {"Action": "failed", "Status": "5.0.0"},
    )  # fmt: skip


# -- parsing ---------------------------------------------------------------------------------


def test_a_dsn_reports_hard_and_soft_bounces_per_recipient() -> None:
    report = parse_bounce(sample_dsn())
    assert report.report_type is ReportType.DELIVERY_STATUS
    assert [(e.address, e.kind, e.status) for e in report.entries] == [
        (HARD, BounceKind.HARD_BOUNCE, "5.1.1"),
        ("slow@example.com", BounceKind.SOFT_BOUNCE, "4.4.7"),
        ("full@example.com", BounceKind.SOFT_BOUNCE, "5.2.2"),  # mailbox full (RFC 3463)
        (UNKNOWN, BounceKind.HARD_BOUNCE, "5.1.10"),
    ]
    assert report.unidentified == 1  # a failure without Final-Recipient
    assert "@" not in repr(report)


def test_an_arf_complaint_names_the_original_recipient() -> None:
    report = parse_bounce(arf("abuse", rcpt_to=UNKNOWN, to="list@northwind.example"))
    assert report.report_type is ReportType.FEEDBACK_REPORT
    assert [(e.address, e.kind, e.status) for e in report.entries] == [
        (UNKNOWN, BounceKind.COMPLAINT, "abuse")
    ]


def test_an_arf_without_original_rcpt_to_falls_back_to_the_original_to() -> None:
    report = parse_bounce(arf("fraud", to=f"Person Zero <{HARD}>"))
    assert [(e.address, e.kind) for e in report.entries] == [(HARD, BounceKind.COMPLAINT)]


def test_not_spam_and_redacted_reports_suppress_nobody() -> None:
    assert parse_bounce(arf("not-spam", rcpt_to=HARD)).entries == ()
    redacted = parse_bounce(arf("abuse", to="redacted"))
    assert (redacted.entries, redacted.unidentified) == ((), 1)


def test_an_ordinary_message_is_not_a_report() -> None:
    plain = MIMEText("unsubscribe me")
    plain["To"] = "bounces@northwind.example"
    assert parse_bounce(plain.as_bytes()).report_type is ReportType.NOT_A_REPORT
    assert parse_bounce(b"\x00\xff garbage").report_type is ReportType.NOT_A_REPORT


# -- applying --------------------------------------------------------------------------------


def test_hard_bounces_and_complaints_are_suppressed_by_blind_index(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_rows(engine, vault, settings, people(2))
    with writing(engine) as conn:
        counts = apply_bounce(conn, vault, parse_bounce(sample_dsn()))
    assert counts.as_dict() == {
        "hard_bounces": 2,
        "soft_bounces": 2,
        "complaints": 0,
        "suppressed": 2,
        "already_suppressed": 0,
        "invalid": 0,
        "unidentified": 1,
    }
    with writing(engine) as conn:
        complaint = apply_bounce(conn, vault, parse_bounce(arf("abuse", rcpt_to=HARD)))
        again = apply_bounce(conn, vault, parse_bounce(sample_dsn()))
    assert (complaint.complaints, complaint.suppressed) == (1, 1)  # stronger than hard-bounce
    assert (again.suppressed, again.already_suppressed) == (0, 2)
    with engine.connect() as conn:
        assert reason_for(conn, vault.index_for(HARD)) == "complaint"
        assert reason_for(conn, vault.index_for(UNKNOWN)) == "hard-bounce"  # not held: still
        assert reason_for(conn, vault.index_for("slow@example.com")) is None
        assert reason_for(conn, vault.index_for("full@example.com")) is None
        known = vault.find(conn, HARD).id
        events = conn.execute(
            select(audit_t.c.contact_id, audit_t.c.detail)
            .where(audit_t.c.action == EventType.SUPPRESSION_ADDED)
            .order_by(audit_t.c.id)
        ).all()
    assert [(e.contact_id, e.detail["reason"]) for e in events] == [
        (known, "hard-bounce"),
        (None, "hard-bounce"),
        (known, "complaint"),
    ]
    assert "@" not in json.dumps([e.detail for e in events])


# -- the command -----------------------------------------------------------------------------


def _tact(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_")}
    env |= {
        "TACT_CONFIG": str(root / "no-such.toml"),
        "TACT_VAR_DIR": str(root / "var"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args],
        cwd=root,
        env=env,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tact_inbound_bounce_prints_counts_and_no_address(tmp_path: Path) -> None:
    assert _tact(tmp_path, "init").returncode == 0
    (tmp_path / "dsn.eml").write_bytes(sample_dsn())
    (tmp_path / "arf.eml").write_bytes(arf("abuse", rcpt_to="fbl.person@example.net"))
    (tmp_path / "plain.eml").write_bytes(MIMEText("hello").as_bytes())

    result = _tact(tmp_path, "inbound", "bounce", str(tmp_path / "dsn.eml"))
    assert result.returncode == 0, result.stderr
    assert "2 hard bounce(s)" in result.stdout and "2 suppressed" in result.stdout
    as_json = _tact(tmp_path, "inbound", "bounce", "--json", str(tmp_path / "arf.eml"))
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) | {"report_type": "feedback-report"} == json.loads(
        as_json.stdout
    )
    assert json.loads(as_json.stdout)["complaints"] == 1
    refused = _tact(tmp_path, "inbound", "bounce", str(tmp_path / "plain.eml"))
    assert refused.returncode == 1 and "not-a-report" in refused.stdout
    hook = _tact(tmp_path, "inbound", "bounce", "--exit-zero", str(tmp_path / "plain.eml"))
    assert hook.returncode == 0
    piped = _tact(tmp_path, "inbound", "bounce", "--json", "-", stdin=sample_dsn())
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["already_suppressed"] == 2
    for run in (result, as_json, refused, hook, piped):
        assert "@" not in run.stdout + run.stderr

    settings = Settings(var_dir=tmp_path / "var")
    vault = Vault.from_settings(settings)
    db = create_engine(settings.resolved_database_url)
    try:
        with db.connect() as conn:
            assert reason_for(conn, vault.index_for(HARD)) == "hard-bounce"
            assert reason_for(conn, vault.index_for("fbl.person@example.net")) == "complaint"
    finally:
        db.dispose()
    log = (tmp_path / "var" / "log" / "tact.log").read_text()
    assert HARD not in log and "fbl.person" not in log


@pytest.mark.parametrize("field", ["Final_Recipient", "Original_Recipient"])
def test_a_non_rfc822_address_type_is_not_used(field: str) -> None:
    report = parse_bounce(dsn({field: "x400; /C=US/", "Action": "failed", "Status": "5.1.1"}))
    assert (report.entries, report.unidentified) == ((), 1)
