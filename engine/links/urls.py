"""The links every email carries: one-click unsubscribe, mailto, preference center."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from engine.config import Settings
from engine.links.tokens import Token, TokenKind, TokenSigner


@dataclass(frozen=True)
class Links:
    unsubscribe_url: str  # https (RFC 8058 one-click target); opens a confirmation page on GET
    #: mailto:unsubscribe@domain?subject=unsubscribe%20TOKEN (a token is too long for a local part)
    unsubscribe_mailto: str
    preferences_url: str


def links_for(
    settings: Settings,
    signer: TokenSigner,
    public_id: UUID,
    *,
    topic: str | None,
    campaign: str | None,
) -> Links:
    base = settings.public_base_url.rstrip("/")
    unsub = signer.sign(Token(TokenKind.UNSUBSCRIBE, public_id, topic, campaign))
    prefs = signer.sign(Token(TokenKind.PREFERENCES, public_id, topic, campaign))
    return Links(
        unsubscribe_url=f"{base}/u/{unsub}",
        unsubscribe_mailto=f"mailto:{settings.unsubscribe_mailbox}?subject=unsubscribe%20{unsub}",
        preferences_url=f"{base}/p/{prefs}",
    )


def url_for(settings: Settings, signer: TokenSigner, token: Token, path: str) -> str:
    """``{public_base_url}/{path}/{signed token}`` for confirmation, export and erasure links."""
    return f"{settings.public_base_url.rstrip('/')}/{path}/{signer.sign(token)}"
