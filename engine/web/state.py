"""What every request handler needs, built once per app: the pieces and a few shared steps.

Handlers are plain functions of (request, state); nothing here is global, so
several apps (tests, a second port) can live in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, select
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.config import Settings
from engine.consent.ledger import Source
from engine.consent.service import Origin
from engine.consent.topics import Topics
from engine.delivery.base import Transport
from engine.errors import ContactNotFound
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.models import ContactStatus
from engine.vault.vault import Vault, contacts
from engine.web import i18n
from engine.web.csrf import Csrf
from engine.web.pages import Pages

#: Stored with a consent event; longer user agents are cut, they prove nothing more.
MAX_USER_AGENT = 512


@dataclass(frozen=True)
class Contact:
    """The few non-personal facts about a contact that the pages need."""

    id: UUID
    public_id: UUID
    locale: str | None
    timezone: str | None


@dataclass
class WebState:
    settings: Settings
    engine: Engine
    vault: Vault
    signer: TokenSigner
    topics: Topics
    transport: Transport
    pages: Pages
    csrf: Csrf

    # -- tokens and contacts ------------------------------------------------------------------

    def verify(self, token_text: str, kinds: set[TokenKind] | TokenKind) -> Token:
        """The token, or InvalidToken/ExpiredToken (answered as 404/410 by the app)."""
        return self.signer.verify(token_text, kinds)

    def contact(self, conn: Connection, public_id: UUID) -> Contact:
        """The active contact behind a token; ContactNotFound (404) if erased or unknown."""
        row = conn.execute(
            select(
                contacts.c.id,
                contacts.c.public_id,
                contacts.c.locale,
                contacts.c.timezone,
                contacts.c.status,
            ).where(contacts.c.public_id == public_id)
        ).first()
        if row is None or row.status != ContactStatus.ACTIVE:
            raise ContactNotFound("no such subscriber")
        return Contact(row.id, row.public_id, row.locale, row.timezone)

    def sign(self, kind: TokenKind, public_id: UUID, topic: str | None = None) -> str:
        return self.signer.sign(Token(kind, public_id, topic))

    # -- requests -----------------------------------------------------------------------------

    @staticmethod
    def lang(request: Request, stored_locale: str | None = None) -> str:
        """``?lang=``, then the contact's stored locale, then Accept-Language, then English."""
        return i18n.choose(
            [request.query_params.get("lang"), stored_locale],
            request.headers.get("accept-language"),
        )

    @staticmethod
    def origin(
        request: Request, source: str = Source.PREFERENCE_CENTER, campaign: str | None = None
    ) -> Origin:
        """How the ledger records this request: source, client IP, user agent, campaign."""
        agent = request.headers.get("user-agent")
        return Origin(
            source=source,
            ip=request.client.host if request.client else None,
            user_agent=agent[:MAX_USER_AGENT] if agent else None,
            campaign=campaign,
        )

    def page(
        self, name: str, lang: str, here: str | None, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        html = self.pages.render(name, lang, here, **context)
        return HTMLResponse(html, status_code=status)

    def title(self, topic: str | None, lang: str) -> str | None:
        """A topic's title in ``lang``; the bare name for a topic no longer defined."""
        if topic is None:
            return None
        spec = self.topics.by_name.get(topic)
        return spec.title_in(i18n.topic_language(lang)) if spec else topic
