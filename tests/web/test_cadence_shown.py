"""The preference center shows the cadence the gate enforces, and a save stores it.

A contact subscribed before defaults were stored has no preference row: the page
shows each topic's default (which the gate now enforces for it), and saving the
form as shown stores those values, so the stored choice, the page and the gate
agree. Before, the save stored nothing and the gate applied no cadence at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, delete

from engine.config import Settings
from engine.consent.service import topic_preferences
from engine.consent.topics import cached_topics
from engine.db import writing
from engine.links.tokens import TokenKind
from engine.models import TopicPreference
from engine.policy import Action, GateContext, Limits, Reason, gate
from engine.vault import Keyring, Vault
from tests.web.support import TOPICS, add_people, asgi_client, form, person, sign

pytestmark = pytest.mark.anyio
topic_prefs_t = TopicPreference.__table__  # type: ignore[attr-defined]
DEFAULTS = {"news": "monthly", "offers": "weekly", "product-updates": "as-it-happens"}


def shown_cadences(html: str) -> dict[str, str]:
    """The selected option of each topic's cadence select."""
    found = {}
    for topic, body in re.findall(
        r'<select id="cadence-([a-z-]+)"[^>]*>(.*?)</select>', html, re.S
    ):
        (selected,) = re.findall(r'<option value="([a-z-]+)" selected>', body)
        found[topic] = selected
    return found


async def test_page_shows_the_enforced_default_and_saving_it_stores_it(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (ana,) = add_people(engine, vault, settings, [person("ana@example.net")])
    with writing(engine) as conn:  # subscribed before defaults were stored at subscription
        conn.execute(delete(topic_prefs_t).where(topic_prefs_t.c.contact_id == ana.contact_id))
    token = sign(keyring, settings, TokenKind.PREFERENCES, ana.public_id, "offers")
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        assert page.status_code == 200
        assert shown_cadences(page.text) == DEFAULTS
        main = form(page.text, f"/p/{token}?")
        fields = {f"cadence-{t}": c for t, c in shown_cadences(page.text).items()}
        fields.update({f"pause-{t}": "none" for t in TOPICS})
        saved = await client.post(
            main.action, data=main.data(topic=list(TOPICS), action="save", **fields)
        )
    assert saved.status_code == 200 and shown_cadences(saved.text) == DEFAULTS
    with engine.connect() as conn:
        stored = topic_preferences(conn, ana.contact_id)
    assert {t: p["cadence"] for t, p in stored.items()} == DEFAULTS
    # And the gate holds offers to the weekly shown: a second send within the week waits.
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    limits = Limits.from_settings(
        settings.model_copy(update={"cap_min_gap_hours": 0}),
        cached_topics(settings.resolved_topics_file),
    )
    verdicts = []
    for name, at in (("w1", now), ("w2", now + timedelta(hours=1))):
        ctx = GateContext(topic="offers", now=at, limits=limits, campaign=name)
        with writing(engine) as conn:
            verdicts.append(
                gate(conn, [ana.contact_id], ctx, message_key_for=lambda c, n=name: n)[
                    ana.contact_id
                ]
            )
    assert verdicts[0].action is Action.SEND
    assert (verdicts[1].action, verdicts[1].reason) == (Action.DEFER, Reason.CAP_CADENCE)
