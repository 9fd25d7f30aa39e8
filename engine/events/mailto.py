"""The ``mailto:`` unsubscribe (RFC 2369): a message sent to the unsubscribe mailbox.

Every marketing email offers ``<mailto:unsubscribe@…?subject=unsubscribe%20TOKEN>``
in ``List-Unsubscribe``. A mail client that uses it sends a message whose Subject
is ``unsubscribe TOKEN``. The signed token alone says who and which topic, exactly
as for the one-click URL; the sender's address is not trusted and not needed
(forwarding, aliases).

The token is looked for in the Subject, then in the text of the body (some
clients move or quote it there, and a forwarded link carries it as ``/u/TOKEN``),
then in a ``unsubscribe+TOKEN@`` recipient. A message without a valid token
changes nothing; the outcome says why. This is the function a mail hook calls
(``tact inbound unsubscribe FILE.eml``); it runs in the caller's transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from enum import StrEnum
from uuid import UUID

from sqlalchemy import Connection

from engine.config import Settings
from engine.consent import service
from engine.consent.ledger import Source
from engine.consent.service import Origin
from engine.consent.suppression import reason_for
from engine.errors import ContactNotFound, ExpiredToken, InvalidToken
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.vault.vault import Vault

log = logging.getLogger(__name__)

#: A token is base64url; the shortest (no topic, no campaign) is 59 characters.
_TOKEN_TEXT = r"[A-Za-z0-9_-]{40,1024}"  # noqa: S105 (a pattern, not a secret)
_SUBJECT = re.compile(rf"\bunsubscribe\s+({_TOKEN_TEXT})", re.IGNORECASE)
_BODY = re.compile(rf"(?:\bunsubscribe(?:\s+|%20)|/u/)({_TOKEN_TEXT})", re.IGNORECASE)
_BARE = re.compile(rf"(?<![A-Za-z0-9_-])({_TOKEN_TEXT})(?![A-Za-z0-9_-])")
#: Bounds on what an incoming message can make us do.
MAX_BODY_CHARS = 256 * 1024
MAX_CANDIDATES = 20
_RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")


class InboundStatus(StrEnum):
    WITHDRAWN = "withdrawn"  # consent withdrawn (and, for "everything", the address suppressed)
    NOTHING_TO_WITHDRAW = "nothing-to-withdraw"  # a valid token, already unsubscribed
    NO_TOKEN = "no-token"  # noqa: S105 (a status, not a secret)
    INVALID_TOKEN = "invalid-token"  # noqa: S105  forged, altered, of another kind, unknown key
    EXPIRED_TOKEN = "expired-token"  # noqa: S105
    UNKNOWN_SUBSCRIBER = "unknown-subscriber"  # a genuine token for an erased contact


@dataclass(frozen=True)
class UnsubscribeOutcome:
    status: InboundStatus
    reason: str
    contact_id: UUID | None = None
    #: The topic the token names; None with a contact id means "every topic".
    topic: str | None = None
    withdrawn: tuple[str, ...] = ()
    #: Where the token was found: "subject", "body" or "recipient".
    found_in: str | None = None

    @property
    def changed(self) -> bool:
        return self.status == InboundStatus.WITHDRAWN


def handle_unsubscribe_email(
    conn: Connection, vault: Vault, settings: Settings, raw: bytes
) -> UnsubscribeOutcome:
    """Withdraw what the token in this message names; never raises for a bad message."""
    msg = message_from_bytes(raw, policy=policy.default)
    signer = TokenSigner(vault.keyring, settings)
    token: Token | None = None
    found_in: str | None = None
    failures: list[InvalidToken] = []
    seen: set[str] = set()
    for where, candidate in _candidates(msg, settings):
        if candidate in seen:
            continue
        seen.add(candidate)
        if len(seen) > MAX_CANDIDATES:
            break
        try:
            token = signer.verify(candidate, TokenKind.UNSUBSCRIBE)
        except InvalidToken as exc:
            failures.append(exc)
            continue
        found_in = where
        break
    if token is None:
        return _without_token(failures)
    try:
        row = service.contact_by_public_id(conn, token.public_id)
    except ContactNotFound:
        log.info("mailto unsubscribe: token for an unknown or erased contact")
        return UnsubscribeOutcome(
            InboundStatus.UNKNOWN_SUBSCRIBER,
            "the token is genuine but its subscriber no longer exists (erased)",
            topic=token.topic,
            found_in=found_in,
        )
    suppressed_before = reason_for(conn, row.blind_index) is not None
    withdrawn = service.withdraw(
        conn,
        vault,
        row.id,
        token.topic,
        Origin(source=Source.MAILTO, campaign=token.campaign),
    )
    newly_suppressed = (
        token.topic is None
        and not suppressed_before
        and reason_for(conn, row.blind_index) is not None
    )
    scope = f"topic {token.topic}" if token.topic else "every topic"
    log.info(
        "mailto unsubscribe: contact %s, %s, withdrew %s",
        row.id,
        scope,
        ", ".join(withdrawn) or "nothing",
    )
    if withdrawn or newly_suppressed:
        return UnsubscribeOutcome(
            InboundStatus.WITHDRAWN,
            f"unsubscribed from {scope}",
            row.id,
            token.topic,
            tuple(withdrawn),
            found_in,
        )
    return UnsubscribeOutcome(
        InboundStatus.NOTHING_TO_WITHDRAW,
        f"already unsubscribed from {scope}",
        row.id,
        token.topic,
        (),
        found_in,
    )


def _without_token(failures: list[InvalidToken]) -> UnsubscribeOutcome:
    if not failures:
        return UnsubscribeOutcome(
            InboundStatus.NO_TOKEN,
            "no unsubscribe token in the subject, the body or the recipient address",
        )
    if any(isinstance(exc, ExpiredToken) for exc in failures):
        return UnsubscribeOutcome(
            InboundStatus.EXPIRED_TOKEN,
            "the unsubscribe token has expired; use the link in a recent email",
        )
    return UnsubscribeOutcome(
        InboundStatus.INVALID_TOKEN,
        "the message carries no valid unsubscribe token (forged, altered or of another kind)",
    )


def _candidates(msg: Message, settings: Settings) -> Iterator[tuple[str, str]]:
    """(where, token text) in order of trust: Subject, body, ``+TOKEN`` recipient."""
    for match in _SUBJECT.finditer(_header_text(msg, "Subject")):
        yield "subject", match.group(1)
    body = _body_text(msg)
    for match in _BODY.finditer(body):
        yield "body", match.group(1)
    for match in _BARE.finditer(body):
        yield "body", match.group(1)
    mailbox = settings.unsubscribe_mailbox.rpartition("@")[0].lower()
    for header in _RECIPIENT_HEADERS:
        for local in _local_parts(msg, header):
            base, plus, tag = local.partition("+")
            if plus and base.lower() == mailbox and tag:
                yield "recipient", tag


def _header_text(msg: Message, name: str) -> str:
    try:
        return str(msg.get(name, "") or "")
    except Exception:  # the stdlib header parser has raised odd errors on hostile input
        log.info("mailto unsubscribe: unreadable %s header", name)
        return ""


def _local_parts(msg: Message, header: str) -> Iterator[str]:
    try:
        values = list(msg.get_all(header, []) or [])
        parsed = [getattr(value, "addresses", None) for value in values]
    except Exception:  # as above: a hostile header is skipped, not fatal
        log.info("mailto unsubscribe: unreadable %s header", header)
        return
    for value, addresses in zip(values, parsed, strict=True):
        if addresses:
            for address in addresses:
                if isinstance(address, Address):
                    yield address.username
            continue
        text = str(value).strip().strip("<>")  # Delivered-To and friends: bare addresses
        if "@" in text:
            yield text.rpartition("@")[0]


def _body_text(msg: Message) -> str:
    """The text of the message's text parts (HTML included: it may hold the link), bounded."""
    chunks: list[str] = []
    size = 0
    for part in msg.walk():
        if not isinstance(part, EmailMessage):
            continue
        if part.get_content_maintype() != "text" or part.is_attachment():
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            continue  # an unknown charset or a broken part: skip it, keep looking
        if not isinstance(content, str):
            continue
        chunks.append(content[: MAX_BODY_CHARS - size])
        size += len(chunks[-1])
        if size >= MAX_BODY_CHARS:
            break
    return "\n".join(chunks)
