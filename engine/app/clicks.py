"""A click on a tracked link (``/c/TOKEN``): where it goes, recorded in one insert.

The use-case behind the public click endpoint. The token is checked and its
destination read from the campaign's link table (``engine.engagement.clicks``):
never from the request, so no token, altered or forged, can send anyone to a
place the campaign did not link to. What is recorded in the ``aggregate`` mode is
one event row with the campaign, variant, segment, language, link index, the
per-message key and a machine flag, and no contact id. A GET that records an
engagement event changes no one's consent, preferences or contact row
(Invariant 7 is about those).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.engagement.clicks import Clicks
from engine.runtime import Runtime


@dataclass(frozen=True)
class Redirect:
    """Where to send the browser; ``machine`` says why the click looked automated."""

    location: str
    recorded: bool
    machine: str | None


def follow(rt: Runtime, token: str, *, head: bool = False, now: datetime | None = None) -> Redirect:
    """The destination of a click token; ``InvalidToken`` when it has none."""
    # Cheap to build (a few HMACs derive its keys): one per request, nothing kept.
    click = Clicks(rt.engine, rt.settings, rt.vault.keyring).follow(token, head=head, now=now)
    return Redirect(
        click.destination, click.recorded, click.machine.value if click.machine else None
    )
