"""The cadence: stored at subscription, and the gate's default where a contact has none.

On SQLite and PostgreSQL. Two halves of one rule (what ``contacts show`` and the
preference center display is what the gate enforces):

- every subscription path that goes through the consent service (sign-up,
  preference center, CLI, double opt-in request and confirmation) stores the
  topic's default cadence as the contact's, and never overwrites a choice;
- a contact without a row (subscribed before defaults were stored, or by an
  import) is held to the topic's default, which is what it is shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from sqlalchemy import Engine, delete

from engine.config import Settings
from engine.consent.ledger import Source
from engine.consent.service import (
    Origin,
    consent_summary,
    set_cadence,
    subscribe,
    topic_preferences,
    withdraw,
)
from engine.consent.topics import cached_topics
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.models import Cadence, TopicPreference
from engine.notices.optin import confirm_subscription, request_subscription
from engine.policy import Action, GateContext, Limits, Reason, gate
from engine.vault import Vault
from tests.helpers import contact_ids, import_rows, people

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ADMIN = Origin(source=Source.ADMIN)
topic_prefs_t = TopicPreference.__table__  # type: ignore[attr-defined]


def cadences(engine: Engine, contact_id: UUID) -> dict[str, str]:
    with engine.connect() as conn:
        return {t: str(p["cadence"]) for t, p in topic_preferences(conn, contact_id).items()}


def test_subscribing_stores_the_topic_default_and_keeps_a_choice(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_rows(engine, vault, settings, people(1))
    (cid,) = contact_ids(engine)
    topics = cached_topics(settings.resolved_topics_file)
    assert cadences(engine, cid) == {}
    with writing(engine) as conn:
        subscribe(conn, vault, topics, cid, "product-updates", ADMIN)
        subscribe(conn, vault, topics, cid, "news", ADMIN)  # double opt-in: pending
    assert cadences(engine, cid) == {"product-updates": "as-it-happens", "news": "monthly"}
    # A choice survives an unsubscribe and a resubscribe.
    with writing(engine) as conn:
        set_cadence(conn, cid, "news", Cadence.WEEKLY)
        withdraw(conn, vault, cid, "news", ADMIN)
        subscribe(conn, vault, topics, cid, "news", ADMIN, confirmed=True)
    assert cadences(engine, cid)["news"] == "weekly"


def test_double_opt_in_request_and_confirmation_store_the_default(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    outbox = MaildirTransport(tmp_path / "outbox")
    with writing(engine) as conn:
        result = request_subscription(
            conn, vault, settings, "new@example.org", "offers", ADMIN, transport=outbox
        )
    assert cadences(engine, result.contact_id) == {"offers": "weekly"}
    # A request pending from before defaults were stored: the confirmation stores it.
    with writing(engine) as conn:
        conn.execute(delete(topic_prefs_t).where(topic_prefs_t.c.contact_id == result.contact_id))
    token = TokenSigner(vault.keyring, settings).sign(
        Token(TokenKind.CONFIRM, result.public_id, "offers")
    )
    with writing(engine) as conn:
        confirm_subscription(conn, vault, settings, token)
    assert cadences(engine, result.contact_id) == {"offers": "weekly"}


def _gate(engine: Engine, settings: Settings, ids: list[UUID], name: str, now: datetime) -> dict:
    topics = cached_topics(settings.resolved_topics_file)
    ctx = GateContext(
        topic="offers",
        now=now,
        limits=Limits.from_settings(settings, topics),
        campaign=name,
    )
    with writing(engine) as conn:
        return gate(conn, ids, ctx, message_key_for=lambda cid: f"{name}:{cid}")


def test_without_a_row_the_gate_holds_the_default_the_contact_is_shown(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    settings = settings.model_copy(update={"cap_min_gap_hours": 0, "cap_global_count": 3})
    import_rows(engine, vault, settings, [{**p, "topics": ["offers"]} for p in people(3)])
    legacy, chose_more, fresh = contact_ids(engine)
    topics = cached_topics(settings.resolved_topics_file)
    with writing(engine) as conn:
        # As before the fix: subscribed, and no preference row at all.
        conn.execute(delete(topic_prefs_t).where(topic_prefs_t.c.contact_id == legacy))
        set_cadence(conn, chose_more, "offers", Cadence.AS_IT_HAPPENS, now=NOW)
    with engine.connect() as conn:
        shown = consent_summary(conn, topics, legacy)["topics"]["offers"]
    assert (shown["state"], shown["cadence"]) == ("subscribed", "weekly")
    ids = [legacy, chose_more, fresh]
    first = _gate(engine, settings, ids, "wave1", NOW)
    assert {v.action for v in first.values()} == {Action.SEND}
    second = _gate(engine, settings, ids, "wave2", NOW + timedelta(minutes=1))
    for cid in (legacy, fresh):
        assert second[cid].action is Action.DEFER
        assert second[cid].reason is Reason.CAP_CADENCE
        assert second[cid].defer_until == NOW + timedelta(days=7)
    assert second[chose_more].action is Action.SEND  # its own choice, shown and enforced
    with engine.connect() as conn:
        assert consent_summary(conn, topics, chose_more)["topics"]["offers"]["cadence"] == (
            "as-it-happens"
        )
