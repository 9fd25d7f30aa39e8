"""The gate against a real database (SQLite and PostgreSQL): facts in batch, the durable
send ledger (check-and-reserve, idempotent, released on failure), transactional
exemption, concurrency, and every decision recorded with its reason."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from engine.consent import ledger
from engine.consent.suppression import suppress
from engine.db import writing
from engine.models import (
    ConsentEventType,
    GateDecision,
    SendReservation,
    SuppressionReason,
    TopicPreference,
)
from engine.policy import (
    Action,
    GateContext,
    Limits,
    Reason,
    Verdict,
    gate,
    last_decisions,
    load_facts,
    mark_sent,
    release,
    reserve,
)
from engine.vault import Vault
from engine.vault.vault import contacts

decisions_t = GateDecision.__table__  # type: ignore[attr-defined]
reservations_t = SendReservation.__table__  # type: ignore[attr-defined]
prefs_t = TopicPreference.__table__  # type: ignore[attr-defined]

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def add_contact(conn: Connection, *, timezone: str | None = "Europe/London") -> UUID:
    cid = uuid.uuid4()
    conn.execute(
        insert(contacts).values(
            id=cid,
            public_id=uuid.uuid4(),
            blind_index=os.urandom(32),
            status="active",
            key_version=1,
            attributes={},
            timezone=timezone,
            created_at=NOON - 400 * D,
            updated_at=NOON - 400 * D,
        )
    )
    return cid


def subscribe(
    conn: Connection,
    vault: Vault,
    cid: UUID,
    topic: str = "offers",
    *,
    regime: str = ledger.Regime.GDPR_CONSENT,
    expires_at: datetime | None = None,
) -> None:
    ledger.append(
        conn,
        vault,
        [
            ledger.NewEvent(
                contact_id=cid,
                topic=topic,
                event=ConsentEventType.GRANTED,
                source=ledger.Source.IMPORT,
                regime=regime,
                occurred_at=NOON - 300 * D,
                expires_at=expires_at,
            )
        ],
    )


def subscribed_contact(engine: Engine, vault: Vault, **kw: Any) -> UUID:
    with writing(engine) as conn:
        cid = add_contact(conn, **kw)
        subscribe(conn, vault, cid)
    return cid


def key_for(campaign: str) -> Callable[[UUID], str]:
    return lambda cid: f"{campaign}:{cid}"


def run_gate(engine: Engine, ids: list[UUID], ctx: GateContext) -> dict[UUID, Verdict]:
    with writing(engine) as conn:
        return gate(conn, ids, ctx, message_key_for=key_for(ctx.campaign))


def ctx(campaign: str, now: datetime = NOON, **kw: Any) -> GateContext:
    return GateContext(topic="offers", now=now, campaign=campaign, **kw)


def decisions(engine: Engine, cid: UUID) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                decisions_t.c.campaign,
                decisions_t.c.action,
                decisions_t.c.reason,
                decisions_t.c.rule,
            )
            .where(decisions_t.c.contact_id == cid)
            .order_by(decisions_t.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def counted(engine: Engine, cid: UUID) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    reservations_t.c.contact_id == cid,
                    reservations_t.c.state.in_(["reserved", "sent"]),
                )
            ).scalar_one()
        )


def test_gate_decides_each_recipient_from_the_database_and_records_why(
    engine: Engine, vault: Vault
) -> None:
    with writing(engine) as conn:
        ok = add_contact(conn)
        subscribe(conn, vault, ok)
        unsubscribed = add_contact(conn)
        subscribe(conn, vault, unsubscribed)
        bounced = add_contact(conn)
        subscribe(conn, vault, bounced)
        no_consent = add_contact(conn)
        paused = add_contact(conn)
        subscribe(conn, vault, paused)
        tokyo = add_contact(conn, timezone="Asia/Tokyo")
        subscribe(conn, vault, tokyo)
        hashes = dict(conn.execute(select(contacts.c.id, contacts.c.blind_index)).all())
        suppress(conn, hashes[unsubscribed], SuppressionReason.UNSUBSCRIBED)
        suppress(conn, hashes[bounced], SuppressionReason.HARD_BOUNCE)
        conn.execute(
            insert(prefs_t).values(
                contact_id=paused,
                topic="offers",
                cadence="as-it-happens",
                paused_until=NOON + 2 * D,
                updated_at=NOON,
            )
        )
    missing = uuid.uuid4()
    # 14:00 UTC: 23:00 in Tokyo, 14:00 in London.
    now = NOON + 2 * H
    everyone = [ok, unsubscribed, bounced, no_consent, paused, tokyo, missing]
    verdicts = run_gate(engine, everyone, ctx("spring", now))
    got = {cid: (v.action, v.reason) for cid, v in verdicts.items()}
    assert got == {
        ok: (Action.SEND, Reason.OK),
        unsubscribed: (Action.SKIP, Reason.SUPPRESSED_UNSUBSCRIBED),
        bounced: (Action.SKIP, Reason.SUPPRESSED_HARD_BOUNCE),
        no_consent: (Action.SKIP, Reason.NO_CONSENT),
        paused: (Action.DEFER, Reason.PAUSED_BY_CUSTOMER),
        tokyo: (Action.DEFER, Reason.QUIET_HOURS),
        missing: (Action.SKIP, Reason.CONTACT_INACTIVE),
    }
    assert verdicts[paused].defer_until == NOON + 2 * D
    assert verdicts[tokyo].defer_until == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    # Only the one sent holds a reservation; every decision is recorded with its reason.
    assert [counted(engine, c) for c in everyone] == [1, 0, 0, 0, 0, 0, 0]
    with engine.connect() as conn:
        rows = {
            r.contact_id: (r.campaign, r.action, r.reason, r.rule, r.defer_until)
            for r in conn.execute(select(decisions_t))
        }
        assert len(rows) == len(everyone)
        assert rows[ok] == ("spring", "send", "ok", "chain", None)
        assert rows[bounced] == ("spring", "skip", "suppressed-hard-bounce", "suppression", None)
        assert rows[tokyo] == (
            "spring",
            "defer",
            "quiet-hours",
            "quiet-hours",
            datetime(2026, 11, 24, 23, 0, tzinfo=UTC),
        )
        shown = last_decisions(conn, paused)
    assert [(d["action"], d["reason"], d["defer_until"]) for d in shown] == [
        ("defer", "paused-by-customer", NOON + 2 * D)
    ]


def test_casl_implied_consent_past_its_expiry_is_expired(engine: Engine, vault: Vault) -> None:
    with writing(engine) as conn:
        cid = add_contact(conn)
        subscribe(conn, vault, cid, regime=ledger.Regime.CASL_IMPLIED, expires_at=NOON + 10 * D)
    assert run_gate(engine, [cid], ctx("before", NOON))[cid].reason is Reason.OK
    verdict = run_gate(engine, [cid], ctx("after", NOON + 10 * D))[cid]
    assert (verdict.action, verdict.reason, verdict.rule) == (
        Action.SKIP,
        Reason.CONSENT_EXPIRED,
        "consent",
    )
    assert decisions(engine, cid)[-1] == ("after", "skip", "consent-expired", "consent")


def test_three_per_week_then_the_fourth_is_deferred_until_the_oldest_leaves(
    engine: Engine, vault: Vault
) -> None:
    cid = subscribed_contact(engine, vault)
    for day in range(3):
        verdict = run_gate(engine, [cid], ctx(f"c{day}", NOON + day * D))[cid]
        assert verdict.action is Action.SEND
    verdict = run_gate(engine, [cid], ctx("c3", NOON + 3 * D))[cid]
    assert (verdict.action, verdict.reason, verdict.defer_until) == (
        Action.DEFER,
        Reason.CAP_GLOBAL,
        NOON + 7 * D,
    )
    # No deferral allowed: skipped with the same reason. At the slot it goes out.
    verdict = run_gate(engine, [cid], ctx("c3", NOON + 3 * D, allow_defer=False))[cid]
    assert (verdict.action, verdict.reason) == (Action.SKIP, Reason.CAP_GLOBAL)
    assert run_gate(engine, [cid], ctx("c3", NOON + 7 * D))[cid].action is Action.SEND
    assert [d[1:3] for d in decisions(engine, cid)] == [
        ("send", "ok"),
        ("send", "ok"),
        ("send", "ok"),
        ("defer", "cap-global"),
        ("skip", "cap-global"),
        ("send", "ok"),
    ]


def test_min_gap_and_cadence_hold_at_reserve_time(engine: Engine, vault: Vault) -> None:
    cid = subscribed_contact(engine, vault)
    with writing(engine) as conn:
        conn.execute(
            insert(prefs_t).values(
                contact_id=cid, topic="offers", cadence="weekly", updated_at=NOON
            )
        )
        assert reserve(conn, cid, "a", "offers", ctx("a"), Limits()).action is Action.SEND
        gap = reserve(conn, cid, "b", "news", ctx("b", NOON + 19 * H), Limits())
        assert (gap.reason, gap.defer_until) == (Reason.CAP_MIN_GAP, NOON + 20 * H)
        cadence = reserve(conn, cid, "c", "offers", ctx("c", NOON + 2 * D), Limits())
        assert (cadence.reason, cadence.defer_until) == (Reason.CAP_CADENCE, NOON + 7 * D)
        other_topic = reserve(conn, cid, "d", "news", ctx("d", NOON + 2 * D), Limits())
        assert other_topic.action is Action.SEND


def test_reserve_is_idempotent_per_message_and_release_frees_the_slot(
    engine: Engine, vault: Vault
) -> None:
    cid = subscribed_contact(engine, vault)
    limits = Limits(global_count=1, min_gap=timedelta(0))
    with writing(engine) as conn:
        assert reserve(conn, cid, "k1", "offers", ctx("k1"), limits).action is Action.SEND
        # A retry of the same message is not counted twice, and is not capped by itself.
        again = reserve(conn, cid, "k1", "offers", ctx("k1", NOON + H), limits)
        assert (again.action, again.reason) == (Action.SEND, Reason.OK)
        assert reserve(conn, cid, "k2", "offers", ctx("k2"), limits).reason is Reason.CAP_GLOBAL
    assert counted(engine, cid) == 1
    # Through the gate too: a re-run of the batch still sends the reserved message.
    with writing(engine) as conn:
        rerun = gate(conn, [cid], ctx("k1", limits=limits), message_key_for=lambda _: "k1")
    assert rerun[cid].action is Action.SEND
    with writing(engine) as conn:
        assert release(conn, "k1:" + str(cid)) is False  # nothing under that key
        assert release(conn, "k1") is True
        assert release(conn, "k1") is False
        assert reserve(conn, cid, "k2", "offers", ctx("k2"), limits).action is Action.SEND
        assert mark_sent(conn, "k2") is True
        # A sent message still counts.
        assert reserve(conn, cid, "k3", "offers", ctx("k3"), limits).reason is Reason.CAP_GLOBAL
        # A released message that is tried again takes a slot again (here: none free).
        assert reserve(conn, cid, "k1", "offers", ctx("k1"), limits).reason is Reason.CAP_GLOBAL
    assert counted(engine, cid) == 1


def test_transactional_is_exempt_only_by_the_flag_and_recorded(
    engine: Engine, vault: Vault
) -> None:
    cid = subscribed_contact(engine, vault)
    limits = Limits(global_count=1)
    assert run_gate(engine, [cid], ctx("promo", limits=limits))[cid].action is Action.SEND
    capped = run_gate(engine, [cid], ctx("receipt", NOON + H, limits=limits))[cid]
    assert capped.reason is Reason.CAP_GLOBAL  # the strictest: 7 days beats the 20 h gap
    verdict = run_gate(engine, [cid], ctx("receipt", NOON + H, limits=limits, transactional=True))[
        cid
    ]
    assert (verdict.action, verdict.reason) == (Action.SEND, Reason.TRANSACTIONAL_EXEMPT)
    with engine.connect() as conn:
        flags = dict(
            conn.execute(select(reservations_t.c.message_key, reservations_t.c.transactional)).all()
        )
        detail = conn.execute(
            select(decisions_t.c.detail).where(decisions_t.c.reason == "transactional-exempt")
        ).scalar_one()
    assert flags == {f"promo:{cid}": False, f"receipt:{cid}": True}
    assert detail == {"topic": "offers", "transactional": True}
    # The transactional send does not use up a marketing slot.
    later = run_gate(engine, [cid], ctx("next", NOON + 8 * D, limits=limits))[cid]
    assert later.action is Action.SEND


def test_load_facts_batches_many_contacts(engine: Engine, vault: Vault) -> None:
    with writing(engine) as conn:
        ids = [add_contact(conn) for _ in range(1203)]
        for cid in ids[::100]:
            subscribe(conn, vault, cid)
        facts = load_facts(conn, ids, "offers", NOON)
    assert len(facts) == 1203
    assert {c for c, f in facts.items() if f.consent_state == "subscribed"} == set(ids[::100])


def test_two_workers_racing_for_the_last_slot_exactly_one_wins(
    engine: Engine, vault: Vault
) -> None:
    cid = subscribed_contact(engine, vault)
    limits = Limits(global_count=1, min_gap=timedelta(0))
    barrier = threading.Barrier(2, timeout=10)
    results: dict[str, Verdict] = {}
    errors: list[BaseException] = []

    def worker(campaign: str) -> None:
        try:
            with writing(engine) as conn:
                # Both transactions are open and have read nothing yet when they race.
                conn.execute(select(1))
                barrier.wait()
                results[campaign] = gate(
                    conn, [cid], ctx(campaign, limits=limits), message_key_for=key_for(campaign)
                )[cid]
        except BaseException as exc:  # reported below
            errors.append(exc)

    if engine.dialect.name == "sqlite":
        # One process's SQLite writers queue on writing()'s lock: the barrier would wait
        # forever inside it, so race them to the lock instead.
        def worker_sqlite(campaign: str) -> None:
            try:
                barrier.wait()
                with writing(engine) as conn:
                    results[campaign] = gate(
                        conn,
                        [cid],
                        ctx(campaign, limits=limits),
                        message_key_for=key_for(campaign),
                    )[cid]
            except BaseException as exc:  # reported below
                errors.append(exc)

        target: Callable[[str], None] = worker_sqlite
    else:
        target = worker
    threads = [threading.Thread(target=target, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    outcomes = sorted((v.action, v.reason) for v in results.values())
    assert outcomes == [(Action.DEFER, Reason.CAP_GLOBAL), (Action.SEND, Reason.OK)]
    assert counted(engine, cid) == 1
    assert sorted(d[2] for d in decisions(engine, cid)) == ["cap-global", "ok"]


@pytest.mark.parametrize("transactional", [False, True])
def test_a_suppressed_contact_is_never_reserved(
    engine: Engine, vault: Vault, transactional: bool
) -> None:
    with writing(engine) as conn:
        cid = add_contact(conn)
        subscribe(conn, vault, cid)
        blind = conn.execute(
            select(contacts.c.blind_index).where(contacts.c.id == cid)
        ).scalar_one()
        suppress(conn, blind, SuppressionReason.COMPLAINT)
    verdict = run_gate(engine, [cid], ctx("x", transactional=transactional))[cid]
    assert (verdict.action, verdict.reason) == (Action.SKIP, Reason.SUPPRESSED_COMPLAINT)
    assert counted(engine, cid) == 0
