"""Transactional notices: the double opt-in confirmation, the export link, the erasure link.

Each is a short email in the contact's language (``templates/notices/strings.toml``;
English and Simplified Chinese so far), rendered from ``templates/notices/`` on top
of the brand base in the same sandbox as every other email, so it carries the
brand and its postal address. They answer a request the person made: no
``List-Unsubscribe``, no tracking, no personalization.

Volume is low (one message per request), so the message is built with the
stdlib ``EmailMessage``; the fast MIME builder of the campaign path is not
needed here. Each notice goes to the transport as a batch of one (``open``,
``send``, ``flush``, ``close``), so callers hand over an unopened transport such
as ``transport_from_settings(settings)``.

Logs name the contact by id; the address exists only inside the message.

Given the caller's connection, each notice handed over is recorded as a
``notice.sent`` audit event with its Message-ID (random, no personal data): it
shows in the contact's export, and erasure finds the notice's file in the
Maildir outbox by it (``engine.delivery.outbox_erasure``).
"""

from __future__ import annotations

import logging
import re
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import UUID

from jinja2 import Template
from markupsafe import Markup
from sqlalchemy import Connection, insert

from engine.config import Settings
from engine.delivery.base import DeliveryResult, DeliveryStatus, OutgoingMessage, Transport
from engine.errors import (
    RenderError,
)
from engine.models import AuditEvent
from engine.people.sent_notices import NOTICE_SENT
from engine.render.brand import MAX_RENDERED_CHARS, Brand, sandbox

log = logging.getLogger(__name__)
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

DEFAULT_LANGUAGE = "en"
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[_-]([A-Za-z]{4}))?(?:[_-]([A-Za-z]{2}|\d{3}))?$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_PARTS = ("subject", "heading", "intro", "detail", "action", "note")


class NoticeKind(StrEnum):
    CONFIRM = "confirm"
    EXPORT = "export"
    ERASE = "erase"


@dataclass(frozen=True)
class RenderedNotice:
    kind: NoticeKind
    language: str
    subject: str
    text: str
    html: str


def normalize_locale(value: str | None) -> str | None:
    """``zh-hans-cn`` → ``zh_Hans_CN``; None for anything that is not a plain locale code.

    Callers may pass what a browser sent; a malformed value is ignored rather than stored.
    """
    if not value:
        return None
    match = _LOCALE.match(value.strip())
    if not match:
        return None
    lang, script, region = match.groups()
    parts = [lang.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "_".join(parts)


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` placeholders; plain substitution, no format-string mini-language."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class NoticeRenderer:
    """Templates and wording loaded once per templates directory."""

    def __init__(self, templates_dir: Path) -> None:
        self.brand = Brand.load(templates_dir / "brand")
        env = sandbox([templates_dir / "notices", templates_dir / "brand"])
        self._html: Template = env.get_template("notice.html.j2")
        self._text: Template = env.get_template("notice.txt.j2")
        with (templates_dir / "notices" / "strings.toml").open("rb") as fh:
            self._strings: dict[str, Any] = tomllib.load(fh)
        if DEFAULT_LANGUAGE not in self._strings:
            raise RenderError(f"notices: strings.toml has no [{DEFAULT_LANGUAGE}] table")

    @property
    def languages(self) -> list[str]:
        return list(self._strings)

    def language_for(self, locale: str | None) -> str:
        """The strings table for a locale: exact, then by language, then English."""
        normalized = normalize_locale(locale)
        if not normalized:
            return DEFAULT_LANGUAGE
        if normalized in self._strings:
            return normalized
        lang = normalized.split("_", 1)[0]
        if lang in self._strings:
            return lang
        for key in self._strings:
            if key.split("_", 1)[0] == lang:
                return key
        return DEFAULT_LANGUAGE

    def render(
        self,
        kind: NoticeKind,
        locale: str | None,
        *,
        link: str,
        values: dict[str, str],
        purpose: str | None = None,
    ) -> RenderedNotice:
        language = self.language_for(locale)
        table = self._strings[language]
        fallback = self._strings[DEFAULT_LANGUAGE]
        words = {**fallback[str(kind)], **table.get(str(kind), {})}
        filled = {name: _fill(str(words.get(name, "")), values) for name in _PARTS}
        subject = " ".join(filled["subject"].split())
        context = {
            **filled,
            "subject": subject,
            "purpose": purpose,
            "link": link,
            "link_hint": table.get("link_hint", fallback["link_hint"]),
            "why": table.get("why", fallback["why"]),
            "brand": self.brand.as_context(),
            "lang": language.replace("_", "-"),
            "unsubscribe_url": None,
            "preferences_url": None,
        }
        html = self._html.render(context)
        # The sandbox autoescapes every template; a text/plain part must not show "&amp;".
        text = self._text.render(_verbatim(context))
        if len(html) > MAX_RENDERED_CHARS or len(text) > MAX_RENDERED_CHARS:
            raise RenderError(f"notice {kind}: rendered output exceeds the size cap")
        return RenderedNotice(kind, language, subject, text, html)


def _verbatim(value: Any) -> Any:
    """The same context with every string marked safe, for the plain-text template only."""
    if isinstance(value, str):
        return Markup(value)  # noqa: S704  (text/plain output: there is no markup to inject)
    if isinstance(value, dict):
        return {k: _verbatim(v) for k, v in value.items()}
    return value


@lru_cache(maxsize=4)
def renderer_for(templates_dir: Path) -> NoticeRenderer:
    return NoticeRenderer(templates_dir)


def build_message(brand: Brand, notice: RenderedNotice, recipient: str) -> tuple[str, bytes]:
    """(Message-ID, RFC 5322 bytes): multipart/alternative, text then HTML, UTF-8 in QP."""
    domain = brand.sender_address.rpartition("@")[2]
    message_id = f"<{uuid.uuid4().hex}.{notice.kind}@{domain}>"
    msg = EmailMessage()
    msg["From"] = Address(brand.sender_name, addr_spec=brand.sender_address)
    msg["To"] = recipient
    msg["Reply-To"] = brand.reply_to
    msg["Subject"] = notice.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id
    # RFC 3834: an automatic message; out-of-office responders must not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(notice.text, cte="quoted-printable")
    msg.add_alternative(notice.html, subtype="html", cte="quoted-printable")
    msg["Content-Language"] = notice.language.replace("_", "-")  # after set_content clears it
    # An address with a non-ASCII local part cannot be written as an encoded word:
    # such messages need SMTPUTF8 (RFC 6531) end to end.
    chosen = policy.default if recipient.isascii() else policy.SMTPUTF8.clone(linesep="\n")
    return message_id, msg.as_bytes(policy=chosen)


def send_notice(
    settings: Settings,
    transport: Transport,
    kind: NoticeKind,
    *,
    contact_id: UUID,
    address: str,
    locale: str | None,
    link: str,
    values: dict[str, str] | None = None,
    purpose: str | None = None,
    conn: Connection | None = None,
) -> DeliveryResult:
    """Render, build and hand one notice to the transport (a batch of one).

    With ``conn``, a notice that left is recorded (``NOTICE_SENT``) in that transaction.
    """
    renderer = renderer_for(settings.templates_dir)
    brand = renderer.brand
    words = {
        "brand": brand.name,
        "days": str(settings.confirm_token_days),
        "minutes": str(settings.sensitive_token_minutes),
        **(values or {}),
    }
    notice = renderer.render(kind, locale, link=link, values=words, purpose=purpose)
    message_id, data = build_message(brand, notice, address)
    transport.open()
    try:
        result = transport.send(OutgoingMessage(message_id, brand.sender_address, address, data))
        transport.flush()
    finally:
        transport.close()
    # Not result.detail: a server's reply may quote the recipient's address.
    log.info("notice %s (%s) for contact %s: %s", kind, notice.language, contact_id, result.status)
    if conn is not None and result.status in (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE):
        conn.execute(
            insert(audit_t).values(
                occurred_at=datetime.now(UTC),
                action=NOTICE_SENT,
                actor="system",
                contact_id=contact_id,
                detail={"kind": str(kind), "message_id": message_id},
            )
        )
    return result


def delivered(result: DeliveryResult) -> bool:
    return result.status == DeliveryStatus.SENT
