"""Double opt-in end to end into a Maildir outbox, the rate limit, and the emailed data links."""

from __future__ import annotations

import logging
import re
import shutil
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import Connection, Engine, func, select

from engine.config import PROJECT_ROOT, Settings
from engine.consent import ledger
from engine.consent.ledger import Source
from engine.consent.service import Origin, withdraw
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.errors import (
    ContactErased,
    ContactNotFound,
    InvalidAddress,
    InvalidToken,
    RateLimited,
    UnknownTopic,
)
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.logs import redact
from engine.models import ConsentState, OptInRequest
from engine.notices.messages import NoticeKind, send_notice
from engine.notices.optin import (
    OptInResult,
    confirm_subscription,
    request_subscription,
    send_data_link,
)
from engine.people.erasure import erase_contact
from engine.vault import Vault
from tests.helpers import import_rows, people

ADDRESS = "Mei.Wang@Example.NET"
NORMALIZED = "Mei.Wang@example.net"
optin_t = OptInRequest.__table__  # type: ignore[attr-defined]
FORM = Origin(source=Source.FORM, ip="203.0.113.9", user_agent="Mozilla/5.0 (test)")


@pytest.fixture
def outbox(tmp_path: Path) -> MaildirTransport:
    return MaildirTransport(tmp_path / "outbox")


def _messages(outbox: MaildirTransport) -> list[EmailMessage]:
    folder = outbox.root / "new"
    if not folder.exists():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def _parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def _link(msg: EmailMessage, path: str) -> str:
    text, html = _parts(msg)
    match = re.search(rf"https?://[^\s\"<>]+/{path}/([A-Za-z0-9_-]+)", text)
    assert match is not None, f"no /{path}/ link in the text part"
    assert f"/{path}/{match.group(1)}" in html
    return match.group(1)


def _request(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    outbox: MaildirTransport,
    topic: str,
    address: str = ADDRESS,
    locale: str | None = None,
) -> OptInResult:
    with writing(engine) as conn:
        return request_subscription(
            conn, vault, settings, address, topic, FORM, transport=outbox, locale=locale
        )


def test_double_opt_in_end_to_end(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    result = _request(engine, vault, settings, outbox, "news")
    assert result.state == ConsentState.PENDING and result.email_sent
    with engine.connect() as conn:
        assert ledger.current_states(conn, result.contact_id)["news"]["state"] == "pending"

    (msg,) = _messages(outbox)
    assert msg["To"] == NORMALIZED
    assert msg["From"].addresses[0].addr_spec == "hello@northwind.example"
    for header in ("Subject", "Date", "Message-ID"):
        assert msg[header]
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "List-Unsubscribe" not in msg
    text, html = _parts(msg)
    postal = "12 Harbour Street"
    assert postal in text and postal in html
    assert "News and stories" in msg["Subject"]
    assert "<script" not in html

    token_text = _link(msg, "confirm")
    token = TokenSigner(vault.keyring, settings).verify(token_text, TokenKind.CONFIRM)
    assert (token.public_id, token.topic) == (result.public_id, "news")

    with writing(engine) as conn:
        assert confirm_subscription(conn, vault, settings, token_text, ip="203.0.113.9") == (
            result.contact_id,
            "news",
        )
    with engine.connect() as conn:
        states = ledger.current_states(conn, result.contact_id)
        history = ledger.history(conn, result.contact_id)
        checked, problems = ledger.verify(conn, vault.keyring.ledger_key)
    assert states["news"]["state"] == ConsentState.SUBSCRIBED
    assert [(e["event"], e["source"]) for e in history] == [
        ("granted", Source.FORM),
        ("confirmed", Source.CONFIRMATION),
    ]
    assert history[0]["text_hash"]  # what they were shown, by hash
    assert problems == [] and checked == 2

    # Following the link again is harmless; no further email.
    with writing(engine) as conn:
        assert confirm_subscription(conn, vault, settings, token_text)[1] == "news"
    assert len(_messages(outbox)) == 1


def test_confirmation_email_in_the_contacts_language(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    _request(engine, vault, settings, outbox, "offers", locale="zh-Hans-CN")
    (msg,) = _messages(outbox)
    text, html = _parts(msg)
    assert "优惠" in msg["Subject"]  # the topic's Chinese title
    assert "确认" in text and "确认" in html
    assert 'lang="zh-CN"' in html
    assert msg["Content-Language"] == "zh-CN"
    assert "Bristol" in text  # the postal address stays as the brand writes it


def test_a_locale_we_do_not_speak_falls_back_to_english(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    _request(engine, vault, settings, outbox, "news", locale="fr_FR")
    (msg,) = _messages(outbox)
    assert msg["Subject"].startswith("Please confirm")


def test_a_topic_without_double_opt_in_subscribes_at_once_without_email(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    result = _request(engine, vault, settings, outbox, "product-updates")
    assert result.state == ConsentState.SUBSCRIBED and not result.email_sent
    assert _messages(outbox) == []
    with engine.connect() as conn:
        assert ledger.current_states(conn, result.contact_id)["product-updates"]["state"] == (
            ConsentState.SUBSCRIBED
        )
        assert conn.execute(select(func.count()).select_from(optin_t)).scalar_one() == 0


def test_requests_beyond_the_daily_limit_are_refused_and_send_nothing(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    limit = settings.optin_requests_per_day
    for _ in range(limit):
        result = _request(engine, vault, settings, outbox, "news")
        assert result.state == ConsentState.PENDING and result.email_sent
    assert len(_messages(outbox)) == limit  # each request while pending re-sends

    # The same address, spelled differently, and another double opt-in topic: same budget.
    for spelling, topic in ((ADDRESS, "news"), (ADDRESS.lower(), "offers")):
        with pytest.raises(RateLimited) as info:
            _request(engine, vault, settings, outbox, topic, address=spelling)
        assert "@" not in str(info.value)
        assert "mei" not in str(info.value).lower()
        assert info.value.retry_after.total_seconds() > 0
    assert len(_messages(outbox)) == limit
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(optin_t)).scalar_one() == limit

    # Another address is not affected.
    other = _request(engine, vault, settings, outbox, "news", address="someone@example.org")
    assert other.email_sent
    assert len(_messages(outbox)) == limit + 1


def test_already_subscribed_requests_send_nothing(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    rows = people(1)
    rows[0]["topics"] = ["news"]
    import_rows(engine, vault, settings, rows)
    for _ in range(settings.optin_requests_per_day + 2):
        result = _request(engine, vault, settings, outbox, "news", address=str(rows[0]["email"]))
        assert result.state == ConsentState.SUBSCRIBED and not result.email_sent
    assert _messages(outbox) == []


def test_an_erased_address_cannot_be_subscribed(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    rows = people(1)
    import_rows(engine, vault, settings, rows)
    with engine.begin() as conn:
        erase_contact(conn, vault, str(rows[0]["email"]), actor="test")
    with pytest.raises(ContactErased) as info:
        _request(engine, vault, settings, outbox, "news", address=str(rows[0]["email"]))
    assert "@" not in str(info.value)
    assert _messages(outbox) == []


def test_bad_address_and_unknown_topic_are_refused(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    with pytest.raises(InvalidAddress):
        _request(engine, vault, settings, outbox, "news", address="Mei <mei@example.com>")
    with pytest.raises(InvalidAddress):
        _request(engine, vault, settings, outbox, "news", address="mei@example.com\r\nBcc: x@y.z")
    with pytest.raises(UnknownTopic):
        _request(engine, vault, settings, outbox, "no-such-topic")
    assert _messages(outbox) == []


def test_confirmation_refuses_other_kinds_and_stale_links(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    result = _request(engine, vault, settings, outbox, "news")
    (msg,) = _messages(outbox)
    token_text = _link(msg, "confirm")
    signer = TokenSigner(vault.keyring, settings)
    unsubscribe = signer.sign(Token(TokenKind.UNSUBSCRIBE, result.public_id, "news"))
    with writing(engine) as conn, pytest.raises(InvalidToken):
        confirm_subscription(conn, vault, settings, unsubscribe)
    with writing(engine) as conn, pytest.raises(InvalidToken):
        confirm_subscription(conn, vault, settings, token_text[:-2])

    # Withdrawn while pending: the old confirmation link no longer subscribes anyone.
    with writing(engine) as conn:
        withdraw(conn, vault, result.contact_id, "news", Origin(Source.PREFERENCE_CENTER))
    with writing(engine) as conn, pytest.raises(InvalidToken):
        confirm_subscription(conn, vault, settings, token_text)
    with engine.connect() as conn:
        assert ledger.current_states(conn, result.contact_id)["news"]["state"] == "withdrawn"


@pytest.mark.parametrize(("kind", "path"), [(TokenKind.EXPORT, "x"), (TokenKind.ERASE, "e")])
def test_send_data_link_emails_a_short_lived_link_to_the_contacts_own_address(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    outbox: MaildirTransport,
    kind: TokenKind,
    path: str,
) -> None:
    rows = people(2)
    rows[0]["locale"] = "zh_CN"
    import_rows(engine, vault, settings, rows)
    with engine.connect() as conn:
        public_id = _public_id(conn, vault, str(rows[0]["email"]))
    with writing(engine) as conn:
        send_data_link(conn, vault, settings, public_id, kind, transport=outbox)
    (msg,) = _messages(outbox)
    assert msg["To"] == rows[0]["email"]
    token_text = _link(msg, path)
    token = TokenSigner(vault.keyring, settings).verify(token_text, kind)
    assert token.public_id == public_id and token.kind == kind
    text, _ = _parts(msg)
    assert str(settings.sensitive_token_minutes) in text
    assert "数据" in msg["Subject"]  # the contact's language, zh_CN


def test_send_data_link_refuses_other_kinds_and_unknown_contacts(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    rows = people(1)
    import_rows(engine, vault, settings, rows)
    with engine.connect() as conn:
        public_id = _public_id(conn, vault, str(rows[0]["email"]))
    with writing(engine) as conn, pytest.raises(ValueError):
        send_data_link(conn, vault, settings, public_id, TokenKind.UNSUBSCRIBE, transport=outbox)
    with writing(engine) as conn, pytest.raises(ContactNotFound):
        send_data_link(
            conn,
            vault,
            settings,
            UUID("00000000-0000-4000-8000-000000000000"),
            TokenKind.EXPORT,
            transport=outbox,
        )
    with engine.begin() as conn:
        erase_contact(conn, vault, str(rows[0]["email"]), actor="test")
    with writing(engine) as conn, pytest.raises(ContactNotFound):
        send_data_link(conn, vault, settings, public_id, TokenKind.EXPORT, transport=outbox)
    assert _messages(outbox) == []


def test_no_address_in_the_logs(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    outbox: MaildirTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    result = _request(engine, vault, settings, outbox, "news")
    with writing(engine) as conn:
        send_data_link(conn, vault, settings, result.public_id, TokenKind.EXPORT, transport=outbox)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(result.contact_id) in logged
    assert "mei.wang" not in logged.lower()
    assert redact(logged) == logged  # nothing address-shaped at all


def _public_id(conn: Connection, vault: Vault, address: str) -> UUID:
    return UUID(str(vault.find(conn, address).public_id))


def test_notice_parts_are_escaped_for_html_only(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    brand_file = templates / "brand" / "brand.toml"
    brand_file.write_text(
        brand_file.read_text(encoding="utf-8").replace(
            'name = "Northwind Outfitters"', 'name = "Smith & Sons <Est. 1901>"'
        ),
        encoding="utf-8",
    )
    settings = Settings(var_dir=tmp_path / "var", templates_dir=templates)
    outbox = MaildirTransport(tmp_path / "outbox")
    result = send_notice(
        settings,
        outbox,
        NoticeKind.EXPORT,
        contact_id=UUID(int=1),
        address="用户@例子.example",  # an internationalized address needs SMTPUTF8
        locale=None,
        link="https://northwind.example/x/TOKEN",
    )
    assert result.status == "sent"
    (msg,) = _messages(outbox)
    assert msg["To"] == "用户@例子.example"
    text, html = _parts(msg)
    assert "Smith & Sons <Est. 1901>" in text and "&amp;" not in text
    assert "Smith &amp; Sons &lt;Est. 1901&gt;" in html and "<Est." not in html
    assert msg["Subject"] == "Your data from Smith & Sons <Est. 1901>"


def test_data_links_share_the_daily_budget_so_a_forwarded_link_cannot_flood(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    rows = people(1)
    import_rows(engine, vault, settings, rows)
    with engine.connect() as conn:
        public_id = _public_id(conn, vault, str(rows[0]["email"]))
    for _ in range(settings.optin_requests_per_day):
        with writing(engine) as conn:
            send_data_link(conn, vault, settings, public_id, TokenKind.EXPORT, transport=outbox)
    with pytest.raises(RateLimited), writing(engine) as conn:
        send_data_link(conn, vault, settings, public_id, TokenKind.ERASE, transport=outbox)
    assert len(_messages(outbox)) == settings.optin_requests_per_day


def test_a_bounced_or_complaining_address_gets_no_confirmation(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    from engine.consent.suppression import suppress
    from engine.models import SuppressionReason

    with writing(engine) as conn:
        suppress(conn, vault.index_for(ADDRESS), SuppressionReason.HARD_BOUNCE)
    result = _request(engine, vault, settings, outbox, "news")
    assert not result.email_sent and result.state == ConsentState.WITHDRAWN
    assert _messages(outbox) == []
    with engine.connect() as conn:
        assert ledger.current_states(conn, result.contact_id) == {}


def test_erasure_forgets_the_rate_limit_rows(
    engine: Engine, vault: Vault, settings: Settings, outbox: MaildirTransport
) -> None:
    _request(engine, vault, settings, outbox, "news")
    with writing(engine) as conn:
        erase_contact(conn, vault, ADDRESS, actor="test")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(optin_t)).scalar_one() == 0
