"""The consent ledger: append, current state, tamper detection, and consent from imports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, delete, func, select, update

from engine.config import Settings
from engine.consent import ledger, service
from engine.consent.ledger import NewEvent, Regime, Source
from engine.consent.service import Origin
from engine.consent.topics import cached_topics
from engine.db import writing
from engine.models import ConsentEventType, ConsentState
from engine.vault import Vault
from engine.vault.vault import contacts
from tests.helpers import import_rows, people, write_jsonl

events_t = ledger.events_t
heads_t = ledger.heads_t
state_t = ledger.state_t


def _ids_by_email(engine: Engine, vault: Vault) -> dict[str, UUID]:
    with engine.connect() as conn:
        ids = list(conn.execute(select(contacts.c.id)).scalars())
        read = vault.read(conn, ids, ["email"], purpose="test")
    return {str(p.email): cid for cid, p in read.items()}


def _event_count(engine: Engine, contact_id: UUID | None = None) -> int:
    query = select(func.count()).select_from(events_t)
    if contact_id is not None:
        query = query.where(events_t.c.contact_id == contact_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.fixture
def busy_ledger(engine: Engine, vault: Vault, settings: Settings) -> list[UUID]:
    """Five contacts with varied histories: imports, withdrawals, double opt-in, objections."""
    rows = people(5)
    for row in rows:
        row["topics"] = ["news", "product-updates"]
        row["consent_at"] = "2025-06-01T09:00:00Z"
    import_rows(engine, vault, settings, rows)
    ids = _ids_by_email(engine, vault)
    ordered = [ids[str(r["email"])] for r in rows]
    topics = cached_topics(settings.resolved_topics_file)
    with engine.begin() as conn:
        service.withdraw(conn, vault, ordered[0], "news", Origin(Source.ONE_CLICK, campaign="c1"))
        service.subscribe(
            conn, vault, topics, ordered[1], "offers", Origin(Source.FORM, "192.0.2.7")
        )
        service.confirm(conn, vault, ordered[1], "offers", Origin(Source.CONFIRMATION))
        service.set_personalization(conn, vault, ordered[2], True, Origin(Source.PREFERENCE_CENTER))
        service.withdraw(conn, vault, ordered[3], None, Origin(Source.MAILTO))
        service.subscribe(conn, vault, topics, ordered[4], "offers", Origin(Source.ADMIN))
    return ordered


def _problems(engine: Engine, vault: Vault) -> list[ledger.ChainProblem]:
    with engine.connect() as conn:
        _, problems = ledger.verify(conn, vault.keyring.ledger_key)
    return problems


def _seqs(engine: Engine, contact_id: UUID) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(events_t.c.seq)
                .where(events_t.c.contact_id == contact_id)
                .order_by(events_t.c.seq)
            ).scalars()
        )


# --- append and current state ----------------------------------------------------------------


def test_append_chains_events_and_keeps_the_current_state(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_rows(engine, vault, settings, people(1))
    (cid,) = _ids_by_email(engine, vault).values()
    earlier = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as conn:
        stored = ledger.append(
            conn,
            vault,
            [
                NewEvent(cid, "news", ConsentEventType.GRANTED, Source.FORM, occurred_at=earlier),
                NewEvent(
                    cid,
                    "offers",
                    ConsentEventType.GRANTED,
                    Source.FORM,
                    ip="198.51.100.4",
                    user_agent="Mozilla/5.0",
                    detail={"needs_confirmation": True},
                ),
            ],
        )
        ledger.append(
            conn, vault, [NewEvent(cid, "news", ConsentEventType.WITHDRAWN, Source.MAILTO)]
        )
    assert [r["seq"] for r in stored] == [1, 2]
    assert stored[0]["prev_hash"] == ledger.GENESIS
    assert stored[1]["prev_hash"] == stored[0]["hash"]
    assert stored[1]["ip_ct"] is not None and b"198.51.100.4" not in stored[1]["ip_ct"]
    with engine.connect() as conn:
        states = ledger.current_states(conn, cid)
        history = ledger.history(conn, cid)
        head = conn.execute(select(heads_t).where(heads_t.c.contact_id == cid)).one()
    assert states["news"]["state"] == ConsentState.WITHDRAWN
    assert states["news"]["source"] == Source.MAILTO
    assert states["offers"]["state"] == ConsentState.PENDING
    assert [(e["seq"], e["topic"], e["event"]) for e in history] == [
        (1, "news", "granted"),
        (2, "offers", "granted"),
        (3, "news", "withdrawn"),
    ]
    assert history[0]["at"] == earlier
    assert head.seq == 3
    assert _problems(engine, vault) == []


def test_verify_finds_nothing_on_a_clean_ledger_of_several_contacts(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    with engine.connect() as conn:
        checked, problems = ledger.verify(conn, vault.keyring.ledger_key)
        some, none_found = ledger.verify(conn, vault.keyring.ledger_key, busy_ledger[:2])
    assert problems == []
    assert checked == _event_count(engine) >= 5 * 2 + 5
    assert none_found == [] and 0 < some < checked


# --- tampering, each on its own ----------------------------------------------------------------


def test_verify_catches_an_edited_event(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    victim = busy_ledger[0]  # 1 news granted, 2 product-updates granted, 3 news withdrawn
    with engine.begin() as conn:
        conn.execute(
            update(events_t)
            .where(events_t.c.contact_id == victim, events_t.c.seq == 2)
            .values(source="form")
        )
    problems = _problems(engine, vault)
    assert [(p.contact_id, p.seq) for p in problems] == [(victim, 2)]
    assert "altered" in problems[0].problem


def test_verify_catches_an_edited_timestamp(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    victim = busy_ledger[0]
    with engine.begin() as conn:
        conn.execute(
            update(events_t)
            .where(events_t.c.contact_id == victim, events_t.c.seq == 1)
            .values(occurred_at=datetime(2020, 1, 1, tzinfo=UTC))
        )
    problems = _problems(engine, vault)
    assert [(p.contact_id, p.seq) for p in problems] == [(victim, 1)]


def test_verify_catches_a_deleted_middle_event(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    victim = busy_ledger[0]
    assert _seqs(engine, victim) == [1, 2, 3]
    with engine.begin() as conn:
        conn.execute(delete(events_t).where(events_t.c.contact_id == victim, events_t.c.seq == 2))
    problems = _problems(engine, vault)
    assert {p.contact_id for p in problems} == {victim}
    assert any(p.seq == 2 and "deleted" in p.problem for p in problems)
    assert any(p.seq == 3 and "chain broken" in p.problem for p in problems)


def test_verify_catches_a_deleted_newest_event(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    victim = busy_ledger[1]  # ..., offers granted (pending), offers confirmed
    newest = _seqs(engine, victim)[-1]
    with engine.begin() as conn:
        conn.execute(
            delete(events_t).where(events_t.c.contact_id == victim, events_t.c.seq == newest)
        )
    problems = _problems(engine, vault)
    assert {p.contact_id for p in problems} == {victim}
    assert any(p.seq == newest and "newest" in p.problem for p in problems)


def test_verify_catches_a_reordered_pair(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    victim = busy_ledger[0]
    with engine.begin() as conn:
        where = events_t.c.contact_id == victim
        conn.execute(update(events_t).where(where, events_t.c.seq == 2).values(seq=-1))
        conn.execute(update(events_t).where(where, events_t.c.seq == 3).values(seq=2))
        conn.execute(update(events_t).where(where, events_t.c.seq == -1).values(seq=3))
    problems = _problems(engine, vault)
    assert {p.contact_id for p in problems} == {victim}
    assert {p.seq for p in problems} >= {2, 3}


def test_verify_catches_a_cache_that_disagrees(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    victim = busy_ledger[0]  # news withdrawn at seq 3
    with engine.begin() as conn:
        conn.execute(
            update(state_t)
            .where(state_t.c.contact_id == victim, state_t.c.topic == "news")
            .values(state="subscribed")
        )
    problems = _problems(engine, vault)
    assert [(p.contact_id, p.seq) for p in problems] == [(victim, 3)]
    assert "news" in problems[0].problem and "cached state" in problems[0].problem


def test_verify_catches_a_missing_cache_row(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    victim = busy_ledger[3]  # withdrew everything
    with engine.begin() as conn:
        conn.execute(
            delete(state_t).where(state_t.c.contact_id == victim, state_t.c.topic == "news")
        )
    problems = _problems(engine, vault)
    assert [p.contact_id for p in problems] == [victim]
    assert "missing" in problems[0].problem


def test_verify_catches_events_forged_without_the_ledger_key(
    engine: Engine, vault: Vault, busy_ledger: list[UUID]
) -> None:
    """Re-chaining with another key (all hashes consistent with each other) is still caught."""
    victim = busy_ledger[0]
    forged_vault = Vault(vault.keyring)
    forged_vault.keyring = type(vault.keyring).generate()  # a different ledger key
    with engine.begin() as conn:
        conn.execute(delete(events_t).where(events_t.c.contact_id == victim))
        conn.execute(delete(heads_t).where(heads_t.c.contact_id == victim))
        ledger.append(
            conn,
            forged_vault,
            [NewEvent(victim, "news", ConsentEventType.GRANTED, Source.FORM)],
        )
    problems = _problems(engine, vault)
    assert {p.contact_id for p in problems} == {victim}
    assert any(p.seq == 1 and "altered" in p.problem for p in problems)


# --- consent from imports ------------------------------------------------------------------


def _import_rows_with_topics() -> list[dict[str, Any]]:
    rows = people(3)
    for row in rows:
        row["topics"] = ["news", "offers"]
        row["consent_at"] = "2025-09-01T12:00:00Z"
        row["consent_source"] = "checkout"
    return rows


def test_import_with_topics_creates_granted_events(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_rows(engine, vault, settings, _import_rows_with_topics())
    ids = _ids_by_email(engine, vault)
    with engine.connect() as conn:
        for cid in ids.values():
            history = ledger.history(conn, cid)
            assert [(e["topic"], e["event"], e["source"]) for e in history] == [
                ("news", "granted", Source.IMPORT),
                ("offers", "granted", Source.IMPORT),
            ]
            assert history[0]["at"] == datetime(2025, 9, 1, 12, tzinfo=UTC)
            assert history[0]["regime"] == Regime.GDPR_CONSENT
            states = ledger.current_states(conn, cid)
            assert {t: s["state"] for t, s in states.items()} == {
                "news": ConsentState.SUBSCRIBED,
                "offers": ConsentState.SUBSCRIBED,
            }
    assert _problems(engine, vault) == []


def test_reimporting_the_same_file_adds_no_events(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    path = write_jsonl(settings.var_dir.parent / "consent.jsonl", _import_rows_with_topics())
    from engine.people.importer import import_file

    import_file(engine, vault, settings, path)
    before = _event_count(engine)
    assert before == 6
    report = import_file(engine, vault, settings, path)
    assert report.updated == 3
    assert _event_count(engine) == before
    assert _problems(engine, vault) == []


def test_reimport_after_a_withdrawal_does_not_resubscribe(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    from engine.people.importer import import_file

    rows = _import_rows_with_topics()
    path = write_jsonl(settings.var_dir.parent / "consent.jsonl", rows)
    import_file(engine, vault, settings, path)
    cid = _ids_by_email(engine, vault)[str(rows[0]["email"])]
    with engine.begin() as conn:
        assert service.withdraw(conn, vault, cid, "news", Origin(Source.ONE_CLICK)) == ["news"]
    before = _event_count(engine, cid)
    import_file(engine, vault, settings, path)
    assert _event_count(engine, cid) == before
    with engine.connect() as conn:
        states = ledger.current_states(conn, cid)
    assert states["news"]["state"] == ConsentState.WITHDRAWN
    assert states["offers"]["state"] == ConsentState.SUBSCRIBED


def test_casl_implied_consent_three_years_old_shows_as_expired(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    three_years_ago = datetime.now(UTC) - timedelta(days=3 * 365)
    recent = datetime.now(UTC) - timedelta(days=30)
    rows = people(2)
    rows[0] |= {
        "topics": ["offers"],
        "consent_regime": "casl-implied",
        "consent_at": three_years_ago.isoformat(),
    }
    rows[1] |= {
        "topics": ["offers"],
        "consent_regime": "casl-implied",
        "consent_at": recent.isoformat(),
    }
    import_rows(engine, vault, settings, rows)
    ids = _ids_by_email(engine, vault)
    with engine.connect() as conn:
        old = ledger.current_states(conn, ids[str(rows[0]["email"])])["offers"]
        new = ledger.current_states(conn, ids[str(rows[1]["email"])])["offers"]
    assert old["state"] == ConsentState.EXPIRED
    assert old["regime"] == Regime.CASL_IMPLIED
    assert old["expires_at"] < datetime.now(UTC)
    assert new["state"] == ConsentState.SUBSCRIBED
    assert new["expires_at"] > datetime.now(UTC)
    # The ledger itself records a grant; expiry is read from it, so verify still agrees.
    assert _problems(engine, vault) == []


def test_the_ledger_records_the_hash_of_the_wording_shown_in_the_persons_language(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_rows(engine, vault, settings, people(2))
    topics = cached_topics(settings.resolved_topics_file)
    spec = topics.get("product-updates")
    assert spec.consent_text_in("zh") != spec.consent_text_in("en")
    with engine.connect() as conn:
        first, second = conn.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars()
    with writing(engine) as conn:
        service.subscribe(conn, vault, topics, first, "product-updates", Origin("form"), lang="zh")
        service.subscribe(conn, vault, topics, second, "product-updates", Origin("form"))
    with engine.connect() as conn:
        (zh,) = [e for e in ledger.history(conn, first) if e["topic"] == "product-updates"]
        (en,) = [e for e in ledger.history(conn, second) if e["topic"] == "product-updates"]
    assert zh["text_hash"] == ledger.text_hash(spec.consent_text_in("zh"))
    assert en["text_hash"] == ledger.text_hash(spec.consent_text_in("en"))
