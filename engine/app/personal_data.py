"""A person's own data (GDPR Art. 20) and its erasure (Art. 17), from the preference center.

The preference link lives for months and may sit in a forwarded email, so it
does not open the data itself: :func:`request_data_link` emails a fresh,
short-lived EXPORT or ERASE link to the contact's own address (never to one
given in the request). Whoever holds that link controls the mailbox, which is
the proof needed; the answer never shows the address.

Opening such a link changes nothing (:func:`~engine.app.visits.contact_behind`
for its page: mail scanners follow links); :func:`download` and :func:`erase`
act, each in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from engine.app.languages import Asked
from engine.app.preferences import PAGE_KINDS
from engine.app.visits import Link, open_link
from engine.db import writing
from engine.links.tokens import TokenKind
from engine.notices.optin import send_data_link
from engine.people.erasure import erase_contact_id
from engine.people.export import export_by_id
from engine.people.lookup import Contact, active_contact
from engine.runtime import Runtime
from engine.vault.vault import contacts

log = logging.getLogger(__name__)


class DataLink(StrEnum):
    """The short-lived links a person may ask for."""

    EXPORT = "export"
    ERASE = "erase"


_KINDS = {DataLink.EXPORT: TokenKind.EXPORT, DataLink.ERASE: TokenKind.ERASE}


def open_export_link(rt: Runtime, text: str) -> Link:
    """A download link (``/x/...``); InvalidToken/ExpiredToken otherwise."""
    return open_link(rt, text, TokenKind.EXPORT)


def open_erase_link(rt: Runtime, text: str) -> Link:
    """An erasure link (``/e/...``); InvalidToken/ExpiredToken otherwise."""
    return open_link(rt, text, TokenKind.ERASE)


def open_asking_link(rt: Runtime, text: str) -> Link:
    """A link that may ask for a data link: the preference center's own."""
    return open_link(rt, text, PAGE_KINDS)


@dataclass(frozen=True)
class LinkSent:
    """The link went to the contact's own address; it works this many minutes."""

    contact: Contact
    what: DataLink
    minutes: int


def request_data_link(rt: Runtime, link: Link, what: DataLink) -> LinkSent:
    """Email the contact a short-lived ``what`` link.

    RateLimited (with ``retry_after``) past the per-address limit; NoticeNotSent
    when the transport refused the email; nothing is committed in either case.
    """
    with writing(rt.engine) as conn:
        contact = active_contact(conn, link.token.public_id)
        send_data_link(
            conn, rt.vault, rt.settings, contact.public_id, _KINDS[what], transport=rt.transport
        )
    log.info("%s link sent: contact %s", what, contact.id)
    return LinkSent(contact, what, rt.settings.sensitive_token_minutes)


@dataclass(frozen=True)
class Export:
    """Everything held about the contact, decrypted, as one JSON-ready document."""

    contact: Contact
    document: Mapping[str, Any]


def download(rt: Runtime, link: Link) -> Export:
    """The export behind a download link; the export writes its audit event, hence a write."""
    with writing(rt.engine) as conn:
        contact = active_contact(conn, link.token.public_id)
        row = conn.execute(select(contacts).where(contacts.c.id == contact.id)).one()
        document = export_by_id(conn, rt.vault, rt.settings, row, actor="web")
    log.info("export downloaded: contact %s", contact.id)
    return Export(contact, document)


@dataclass(frozen=True)
class Erased:
    """The contact is gone; ``lang`` was chosen before its locale was erased too."""

    lang: str
    outbox_files_removed: int


def erase(rt: Runtime, link: Link, asked: Asked) -> Erased:
    """Erase the contact behind an erasure link (and its messages in the Maildir outbox)."""
    with writing(rt.engine) as conn:
        contact = active_contact(conn, link.token.public_id)
        lang = asked.choose(contact.locale)  # before the locale is erased too
        result = erase_contact_id(
            conn, rt.vault, contact.id, actor="web", outbox_dir=rt.settings.resolved_outbox_dir
        )
    return Erased(lang, result.outbox_files_removed)
