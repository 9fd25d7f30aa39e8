"""An import that grants a topic stores the topic's default cadence as the contact's."""

from __future__ import annotations

from sqlalchemy import Engine

from engine.config import Settings
from engine.consent.service import set_cadence, topic_preferences
from engine.db import writing
from engine.models import Cadence
from engine.vault import Vault
from tests.helpers import contact_ids, import_rows, people


def test_import_stores_each_granted_topics_default_cadence(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    rows = [{**p, "topics": ["offers", "news"]} for p in people(2)]
    import_rows(engine, vault, settings, rows)
    first, second = contact_ids(engine)
    with engine.connect() as conn:
        for cid in (first, second):
            stored = topic_preferences(conn, cid)
            assert {t: p["cadence"] for t, p in stored.items()} == {
                "offers": "weekly",
                "news": "monthly",
            }
    with writing(engine) as conn:  # a choice made since is kept by a re-import
        set_cadence(conn, first, "offers", Cadence.AS_IT_HAPPENS)
    import_rows(engine, vault, settings, rows, name="again")
    with engine.connect() as conn:
        assert topic_preferences(conn, first)["offers"]["cadence"] == "as-it-happens"
