"""What every use-case reached through a person's link shares: the link, the visitor, the contact.

A person reaches Tact's pages through signed links in emails (capabilities: the
token alone says who, and which list). Each use-case module opens the links
it accepts (``open_*_link``: which token kinds a page takes is the use-case's
decision, not the page's), then reads the contact behind it with
:func:`active_contact`, inside its own transaction. An erased or unknown contact
is ``ContactNotFound`` everywhere, so every face answers it the same way.

A :class:`Visitor` is what the ledger may record about who made a change (client
address, user agent), nothing more: use-cases build the ledger's ``Origin``
from it, with the source they stand for.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.consent.service import Origin
from engine.links.tokens import Token, TokenKind
from engine.people.lookup import Contact, active_contact
from engine.runtime import Runtime

#: Stored with a consent event; longer user agents are cut, they prove nothing more.
MAX_USER_AGENT = 512


@dataclass(frozen=True)
class Visitor:
    """Who made a request, as far as the consent ledger records it."""

    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, ip: str | None, user_agent: str | None) -> Visitor:
        """The visitor, with the user agent cut to what the ledger keeps."""
        return cls(ip, user_agent[:MAX_USER_AGENT] if user_agent else None)

    def origin(self, source: str, campaign: str | None = None) -> Origin:
        """How the ledger records a change this visitor made: source, IP, agent, campaign."""
        return Origin(source=source, ip=self.ip, user_agent=self.user_agent, campaign=campaign)


@dataclass(frozen=True)
class Link:
    """A verified link: its text (pages bind their forms to it) and what it stands for."""

    text: str
    token: Token

    @property
    def topic(self) -> str | None:
        return self.token.topic

    @property
    def campaign(self) -> str | None:
        return self.token.campaign


def open_link(rt: Runtime, text: str, kinds: set[TokenKind] | TokenKind) -> Link:
    """The link, or InvalidToken/ExpiredToken; for the ``open_*_link`` of each use-case."""
    return Link(text, rt.signer.verify(text, kinds))


def contact_behind(rt: Runtime, link: Link) -> Contact:
    """The contact a link belongs to, read only (a GET page that shows a button)."""
    with rt.engine.connect() as conn:
        return active_contact(conn, link.token.public_id)


def preferences_token(rt: Runtime, contact: Contact) -> str:
    """A fresh preference-center link for the contact (the pages link to it)."""
    return rt.signer.sign(Token(TokenKind.PREFERENCES, contact.public_id))
