"""``tact campaigns test``: marked copies to the marketer's own addresses, outside the
campaign's bookkeeping.

Real subprocesses on the embedded default (Maildir outbox); the cap test runs on both
databases. A test copy arrives addressed to each address given, marked as a test
(``[TEST] `` subject, ``X-Tact-Test: 1``), with a fresh Message-ID each time; it leaves
the campaign's outbox, the cap ledger and the consent ledger untouched; its audit event
names the campaign, the version and the contact it rendered as, never an address; a
configured test-recipient list limits whom it may reach, and a suppressed address is
refused while the others still go.
"""

from __future__ import annotations

import email
import json
import sqlite3
from email import policy
from pathlib import Path

from engine.render.preview import SAMPLE_PUBLIC
from tests.helpers import people, write_jsonl
from tests.test_cli import assert_plain_failure, tact

TO = "marketer.test@example.org"
QA = ("qa.one@example.org", "qa.two@example.org")
NO_QUIET = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0"}


def _messages(tmp_path: Path) -> list[email.message.EmailMessage]:
    new = tmp_path / "var" / "outbox" / "new"
    return (
        [
            email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(new.iterdir())
        ]
        if new.exists()
        else []
    )


def _clear_outbox(tmp_path: Path) -> None:
    for path in (tmp_path / "var" / "outbox" / "new").iterdir():
        path.unlink()


def _install(
    tmp_path: Path, rows: list[dict[str, object]], env: dict[str, str] | None = None
) -> None:
    assert (run := tact(tmp_path, "init", env=env)).code == 0, str(run)
    write_jsonl(tmp_path / "in.jsonl", [{**p, "topics": ["offers"]} for p in rows])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl", env=env)).code == 0, str(run)
    created = tact(tmp_path, "campaigns", "create", "promo", "-t", "autumn-2026", env=env)
    assert created.code == 0, str(created)


def _audit(tmp_path: Path) -> list[tuple[str | None, str]]:
    db = sqlite3.connect(tmp_path / "var" / "tact.db")
    try:
        return db.execute(
            "select contact_id, detail from audit_events where action = 'campaign.test_sent' "
            "order by id"
        ).fetchall()
    finally:
        db.close()


def test_a_test_send_goes_marked_to_each_address_and_touches_no_campaign_state(
    tmp_path: Path,
) -> None:
    _install(tmp_path, people(2))
    other = "second.marketer@example.net"
    first = tact(tmp_path, "campaigns", "test", "promo", "--to", f"{TO}, {other}", "--json")
    assert first.code == 0, str(first)
    sent = json.loads(first.out)
    assert (sent["campaign"], sent["version"], sent["sent"]) == ("promo", "standard", 2)
    assert [(c["position"], c["status"]) for c in sent["copies"]] == [(1, "sent"), (2, "sent")]
    assert sent["as_contact"] is None and sent["language"] == "en"
    second = tact(
        tmp_path, "campaigns", "test", "promo", "--to", TO, "--segment", "win-back", "--json"
    )
    assert second.code == 0, str(second)
    assert json.loads(second.out)["version"] == "win-back"

    messages = _messages(tmp_path)
    assert sorted(m["To"] for m in messages) == sorted([TO, TO, other])
    assert len({m["Message-ID"] for m in messages}) == 3
    assert {c["message_id"] for c in sent["copies"]} <= {m["Message-ID"] for m in messages}
    assert all(m["X-Tact-Test"] == "1" for m in messages)
    subjects = {str(m["Subject"]) for m in messages}
    assert "[TEST] The autumn collection is here" in subjects  # the standard subject
    assert "[TEST] It has been a while: see what is new this autumn" in subjects  # win-back's
    assert all(m["List-Unsubscribe"] for m in messages)

    plain = tact(tmp_path, "campaigns", "test", "promo", "--to", TO)
    assert plain.code == 0, str(plain)
    assert "#1: sent" in plain.out and "1 of 1 sent" in plain.flat
    assert TO not in plain.text  # copies are named by position, never by address

    db = sqlite3.connect(tmp_path / "var" / "tact.db")
    try:
        assert db.execute("select count(*) from outbox").fetchone() == (0,)
        assert db.execute("select count(*) from send_reservations").fetchone() == (0,)
        assert db.execute("select count(*) from gate_decisions").fetchone() == (0,)
    finally:
        db.close()
    audit = _audit(tmp_path)
    assert len(audit) == 3
    assert all(cid is None for cid, _ in audit)
    assert all(TO not in text and other not in text and "marketer" not in text for _, text in audit)
    copies = [json.loads(text)["copies"] for _, text in audit]
    assert [len(c) for c in copies] == [2, 1, 1]
    status = json.loads(tact(tmp_path, "campaigns", "status", "promo", "--json").out)
    assert status["status"] == "draft"


def test_a_test_send_refuses_a_bad_address_an_unknown_segment_and_a_missing_to(
    tmp_path: Path,
) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    created = tact(tmp_path, "campaigns", "create", "promo", "--template", "autumn-2026")
    assert created.code == 0, str(created)
    assert_plain_failure(tact(tmp_path, "campaigns", "test", "promo", "--to", "not an address"), 1)
    unknown = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, "--segment", "nope")
    assert_plain_failure(unknown, 1)
    assert "no version for segment 'nope'" in unknown.flat
    missing = tact(tmp_path, "campaigns", "test", "promo")
    assert_plain_failure(missing, 1)
    assert "--to is required" in missing.flat and "TACT_TEST_RECIPIENTS" in missing.flat
    both = tact(
        tmp_path, "campaigns", "test", "promo", "--to", TO, "--as", str(SAMPLE_PUBLIC),
        "--segment", "win-back", "--json",
    )  # fmt: skip
    assert both.code == 1, str(both)
    assert json.loads(both.out)["error"]["code"] == "bad-option"
    assert _messages(tmp_path) == []


def test_a_configured_test_list_is_the_default_and_the_only_addresses_allowed(
    tmp_path: Path,
) -> None:
    env = {"TACT_TEST_RECIPIENTS": ",".join(QA)}
    _install(tmp_path, people(1), env)
    whole = tact(tmp_path, "campaigns", "test", "promo", "--json", env=env)
    assert whole.code == 0, str(whole)
    assert json.loads(whole.out)["sent"] == 2
    assert sorted(m["To"] for m in _messages(tmp_path)) == sorted(QA)
    _clear_outbox(tmp_path)

    named = tact(tmp_path, "campaigns", "test", "promo", "--to", QA[1], env=env)
    assert named.code == 0, str(named)
    assert QA[1] in [m["To"] for m in _messages(tmp_path)]
    _clear_outbox(tmp_path)

    outside = tact(tmp_path, "campaigns", "test", "promo", "--to", f"{QA[0]},{TO}", env=env)
    assert_plain_failure(outside, 1)
    assert "address #2 is not on the test-recipient list" in outside.flat
    assert "nothing was sent" in outside.flat and TO not in outside.text
    as_json = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, "--json", env=env)
    assert json.loads(as_json.out)["error"]["code"] == "test-recipient-refused"
    assert _messages(tmp_path) == []


def test_a_suppressed_address_is_refused_and_the_others_still_go(tmp_path: Path) -> None:
    rows = people(2)
    _install(tmp_path, rows)
    gone = str(rows[0]["email"])
    erased = tact(tmp_path, "contacts", "erase", gone, "--yes")
    assert erased.code == 0, str(erased)

    run = tact(tmp_path, "campaigns", "test", "promo", "--to", f"{gone},{TO}", "--json")
    assert run.code == 1, str(run)
    copies = json.loads(run.out)["copies"]
    assert [(c["position"], c["status"]) for c in copies] == [(1, "refused"), (2, "sent")]
    assert "suppressed" in copies[0]["detail"] and copies[0]["message_id"] is None
    assert gone not in run.text
    assert [m["To"] for m in _messages(tmp_path)] == [TO]

    plain = tact(tmp_path, "campaigns", "test", "promo", "--to", gone)
    assert plain.code == 1, str(plain)
    assert "#1: refused" in plain.out and "suppressed" in plain.flat and gone not in plain.text
    assert [m["To"] for m in _messages(tmp_path)] == [TO]
    assert all(gone not in text for _, text in _audit(tmp_path))


def test_as_a_contact_renders_its_fields_and_locale_but_signs_links_for_nobody(
    tmp_path: Path,
) -> None:
    mei = {
        "email": "mei.wang@example.com",
        "first_name": "Mei",
        "last_name": "Wang",
        "locale": "zh-CN",
        "timezone": "Asia/Shanghai",
    }
    _install(tmp_path, [*people(1), mei])
    shown = json.loads(tact(tmp_path, "contacts", "show", str(mei["email"]), "--json").out)
    for ref in (shown["public_id"], shown["id"]):
        run = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, "--as", ref, "--json")
        assert run.code == 0, str(run)
        doc = json.loads(run.out)
        assert (doc["as_contact"], doc["version"], doc["language"]) == (
            shown["id"],
            "standard",
            "zh-Hans",
        )
        assert str(mei["email"]) not in run.text and "Mei" not in run.text
    english = tact(
        tmp_path, "campaigns", "test", "promo", "--to", TO, "--as", shown["id"], "--locale", "en"
    )
    assert english.code == 0, str(english)
    zh, _, en = _by_language(_messages(tmp_path))
    html = zh.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'lang="zh' in html and "秋季" in str(zh["Subject"])
    assert "Mei" in en.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for message in (zh, en):
        raw = message.as_string()
        assert shown["public_id"] not in raw and shown["id"] not in raw
        assert str(mei["email"]) not in raw and message["To"] == TO

    _clear_outbox(tmp_path)
    sample_zh = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, "--locale", "zh-CN")
    assert sample_zh.code == 0 and "language zh-Hans, sample fields" in sample_zh.flat
    [copy] = _messages(tmp_path)
    assert str(copy["Subject"]) == "[TEST] 秋季系列上新了"

    audit = _audit(tmp_path)[:3]
    assert [cid.replace("-", "") if cid else None for cid, _ in audit] == [
        shown["id"].replace("-", "")
    ] * 3
    assert all(str(mei["email"]) not in text and "Mei" not in text for _, text in audit)
    unknown = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, "--as", str(SAMPLE_PUBLIC))
    assert_plain_failure(unknown, 1)
    assert "no active contact" in unknown.flat


def _by_language(
    messages: list[email.message.EmailMessage],
) -> tuple[email.message.EmailMessage, email.message.EmailMessage, email.message.EmailMessage]:
    """The two Chinese copies and the English one (Maildir names are not in send order)."""
    zh = [m for m in messages if "秋季" in str(m["Subject"])]
    en = [m for m in messages if "秋季" not in str(m["Subject"])]
    assert (len(zh), len(en)) == (2, 1), [str(m["Subject"]) for m in messages]
    return zh[0], zh[1], en[0]


def test_a_test_send_never_counts_against_a_cap(tmp_path: Path, db_url: str) -> None:
    """A cap of one message a week, a test copy to the contact's own address first:
    the real send still goes (on SQLite and PostgreSQL)."""
    env = {**NO_QUIET, "TACT_CAP_GLOBAL_COUNT": "1", "TACT_DATABASE_URL": db_url}
    rows = people(1)
    _install(tmp_path, rows, env)
    own = str(rows[0]["email"])
    test = tact(tmp_path, "campaigns", "test", "promo", "--to", f"{own},{TO}", env=env)
    assert test.code == 0, str(test)
    assert len(_messages(tmp_path)) == 2
    sent = tact(tmp_path, "campaigns", "send", "promo", "--now", "--json", env=env)
    assert sent.code == 0, str(sent)
    assert json.loads(sent.out)["this_run"] == {"sent": 1}
    to = [m["To"] for m in _messages(tmp_path)]
    assert sorted(to) == sorted([own, own, TO])


def test_a_test_copy_is_dkim_signed_like_a_real_send(tmp_path: Path) -> None:
    """With DKIM configured, the copy carries a signature that verifies, covering the
    subject with its [TEST] prefix and the test header."""
    import dkim
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tests.test_dkim import DOMAIN, SELECTOR, dns_for, pem, txt_record

    key = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem(key))
    key_file.chmod(0o600)
    env = {
        "TACT_DKIM_SELECTOR": SELECTOR,
        "TACT_DKIM_DOMAIN": DOMAIN,
        "TACT_DKIM_PRIVATE_KEY_FILE": str(key_file),
        "TACT_DKIM_ALGORITHM": "ed25519-sha256",
    }
    _install(tmp_path, people(1), env)
    run = tact(tmp_path, "campaigns", "test", "promo", "--to", TO, env=env)
    assert run.code == 0, str(run)
    (path,) = (tmp_path / "var" / "outbox" / "new").iterdir()
    raw = path.read_bytes()
    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=dns_for(txt_record(key)))
    (message,) = _messages(tmp_path)
    assert str(message["Subject"]).startswith("[TEST] ") and message["X-Tact-Test"] == "1"
