"""A click: the token checked, its destination read from the link table, one event row.

The destination comes only from ``tracking_links`` (campaign, variant key, link
index), never from the request: a token that does not verify, or that names no
stored link (an index out of range, a deleted campaign), has no destination, so
the endpoint cannot send anyone elsewhere. One select by primary key and one
insert, in one transaction.

Machine flags (the event is kept, flagged, so rates can exclude it): ``head`` for a
HEAD request (link checkers, previews), ``too-soon`` for a click within
``click_too_soon_seconds`` of the message's composing time (a scanner that follows
every link on delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, insert, select

from engine.config import Settings
from engine.db import writing
from engine.engagement.tokens import ClickSigner
from engine.errors import InvalidToken
from engine.models import TrackingEvent, TrackingLink
from engine.vault.keyring import Keyring

links_t = TrackingLink.__table__  # type: ignore[attr-defined]
events_t = TrackingEvent.__table__  # type: ignore[attr-defined]

CLICK = "click"


class Machine(StrEnum):
    HEAD = "head"
    TOO_SOON = "too-soon"


@dataclass(frozen=True)
class Click:
    """Where a click goes, and whether it was recorded (and flagged)."""

    destination: str
    recorded: bool
    machine: Machine | None


class Clicks:
    """Resolves and records clicks; one per process (or per request: it is cheap)."""

    def __init__(self, engine: Engine, settings: Settings, keyring: Keyring) -> None:
        self.engine = engine
        self.settings = settings
        self.signer = ClickSigner(keyring)
        self.too_soon = timedelta(seconds=settings.click_too_soon_seconds)

    def follow(self, text: str, *, head: bool = False, now: datetime | None = None) -> Click:
        """The click's destination; ``InvalidToken`` when there is none to go to.

        Recorded unless ``tracking_mode`` is off (a mail sent while tracking was on
        still redirects; nothing is written).
        """
        token = self.signer.verify(text)
        now = now or datetime.now(UTC)
        machine = (
            Machine.HEAD
            if head
            else Machine.TOO_SOON
            if now - token.composed_at < self.too_soon
            else None
        )
        record = self.settings.tracking_mode != "off"
        where = (
            links_t.c.campaign_id == token.campaign_id,
            links_t.c.variant_key == token.variant_key,
            links_t.c.link_index == token.link_index,
        )
        columns = (links_t.c.url, links_t.c.variant, links_t.c.segment, links_t.c.locale)
        with writing(self.engine) as conn:
            link = conn.execute(select(*columns).where(*where)).first()
            if link is None:
                raise InvalidToken("not a valid link")
            if record:
                conn.execute(
                    insert(events_t).values(
                        kind=CLICK,
                        campaign_id=token.campaign_id,
                        variant=link.variant,
                        segment=link.segment,
                        locale=link.locale,
                        link_index=token.link_index,
                        message_key=token.message_key,
                        occurred_at=now,
                        machine=machine.value if machine else None,
                    )
                )
        return Click(link.url, record, machine)
