"""One definition of eligibility: the rules table drives the gate, the last look and the audience.

On SQLite and PostgreSQL (the ``engine`` fixture runs each test on both):

- a toy rule, written here as a rule file would be and installed as one more line
  of the table (``Chain.with_rule``), changes the gate, the last look (both its
  batch form and the one-statement SQL of the SMTP handover) and the audience
  count alike, and is checked mid-send because it says so;
- on a population with every case each rule's SQL mirror agrees with its Python
  check, and so do the derived conditions: ``eligible`` and ``last_look`` with the
  last-look rules, the audience with the audience rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

import pytest
from sqlalchemy import ColumnElement, Connection, Engine, bindparam, insert, or_, select, update

from engine.campaigns.audience import audience
from engine.consent.suppression import suppress
from engine.db import writing
from engine.models import (
    ConsentState,
    ConsentStateRow,
    ContactStatus,
    SuppressionReason,
    TopicPreference,
)
from engine.policy import RULES, Action, Facts, GateContext, Limits, Verdict, gate, last_look
from engine.policy.chain import DEFAULT, Chain, evaluate
from engine.policy.facts import Fact, load_facts
from engine.policy.lastlook import LAST_LOOK, eligible, last_look_one
from engine.policy.rule import Rule, RuleBase
from engine.vault import Vault
from engine.vault.vault import contacts
from tests.test_policy_gate import NOON, add_contact, key_for, subscribed_contact

consent_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
prefs_t = TopicPreference.__table__  # type: ignore[attr-defined]

H = timedelta(hours=1)
D = timedelta(days=1)
TOPIC = "offers"
ZONE = "Pacific/Chatham"


# -- the toy rule: what a new rule file holds ------------------------------------------------


class ZoneReason(StrEnum):
    ZONE_REFUSED = "zone-refused"


class ZoneRefused(RuleBase):
    """Contacts whose time zone is ``ZONE`` are refused (a toy: one file, one table line)."""

    name = "zone"
    needs = frozenset({Fact.CONTACT})
    mid_send = True
    audience = True

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if facts.timezone == ZONE:
            return Verdict.skip(ZoneReason.ZONE_REFUSED, self.name)
        return None

    def sql(self, topic: ColumnElement[str], now: ColumnElement[datetime]) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = or_(
            contacts.c.timezone.is_(None), contacts.c.timezone != ZONE
        )
        return condition


#: The table with the toy rule's line, among the hard stops (after consent).
TOY = DEFAULT.with_rule(ZoneRefused(), after="consent")

#: Everyone sendable at any hour: no quiet hours, no caps in the way.
OPEN = Limits(quiet_start=0, quiet_end=0, min_gap=timedelta(0), global_count=100)


def gate_ctx(campaign: str, *, transactional: bool = False) -> GateContext:
    return GateContext(
        topic=TOPIC, now=NOON, campaign=campaign, limits=OPEN, transactional=transactional
    )


def eligible_now(conn: Connection, cid: UUID, chain: Chain, *, transactional: bool) -> bool:
    """The handover's one-statement condition, asked alone."""
    return bool(
        conn.execute(
            select(eligible(transactional=transactional, chain=chain)),
            {"cid": cid, "topic": TOPIC, "o_now": NOON},
        ).scalar()
    )


def test_the_table_is_what_the_last_look_and_the_audience_are_made_of() -> None:
    assert Chain(RULES).last_look == LAST_LOOK == DEFAULT.last_look
    assert [r.name for r in LAST_LOOK] == ["active", "suppression", "consent", "paused"]
    assert [r.name for r in DEFAULT.audience] == ["active", "suppression", "consent"]
    assert [r.name for r in TOY.rules][:5] == [
        "active",
        "suppression",
        "consent",
        "zone",
        "deadline",
    ]
    assert [r.name for r in TOY.last_look] == ["active", "suppression", "consent", "zone", "paused"]
    assert [r.name for r in TOY.audience] == ["active", "suppression", "consent", "zone"]
    assert len(TOY.rules) == len(RULES) + 1  # one line more, nothing else changed
    assert DEFAULT.rules == RULES


def test_a_table_the_derivations_cannot_serve_is_refused() -> None:
    class NoMirror(RuleBase):
        name = "no-mirror"
        mid_send = True

        def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
            return None

    class WantsHistory(ZoneRefused):
        name = "history"
        needs = frozenset({Fact.SENDS})

    with pytest.raises(ValueError, match="without SQL"):
        DEFAULT.with_rule(NoMirror())
    with pytest.raises(ValueError, match="row facts"):
        DEFAULT.with_rule(WantsHistory())
    with pytest.raises(ValueError, match="repeat"):
        TOY.with_rule(ZoneRefused())


def test_one_extra_line_changes_the_gate_the_last_look_and_the_audience_alike(
    engine: Engine, vault: Vault
) -> None:
    plain = [subscribed_contact(engine, vault, timezone="Europe/London") for _ in range(4)]
    zoned = [subscribed_contact(engine, vault, timezone=ZONE) for _ in range(3)]
    everyone = sorted(plain + zoned)

    # Without the line: everyone is a candidate and passes.
    assert sorted(audience(engine, TOPIC, at=NOON)) == everyone
    with writing(engine) as conn:
        before = gate(conn, everyone, gate_ctx("before"), message_key_for=key_for("before"))
        looked = last_look(conn, everyone, gate_ctx("before"))
    assert {v.action for v in before.values()} == {Action.SEND}
    assert {v.action for v in looked.values()} == {Action.SEND}

    # With it: the same three refused by each of them, for the same reason.
    assert sorted(audience(engine, TOPIC, at=NOON, chain=TOY)) == sorted(plain)
    with writing(engine) as conn:
        gated = gate(conn, everyone, gate_ctx("toy"), message_key_for=key_for("toy"), chain=TOY)
        looked = last_look(conn, everyone, gate_ctx("toy"), chain=TOY)
        one = {cid: last_look_one(conn, cid, gate_ctx("toy"), chain=TOY) for cid in everyone}
        fast = {cid: eligible_now(conn, cid, TOY, transactional=False) for cid in everyone}
    for verdicts in (gated, looked, one):
        refused = {cid: v for cid, v in verdicts.items() if v.action is not Action.SEND}
        assert sorted(refused) == sorted(zoned)
        assert {(v.action, v.reason, v.rule) for v in refused.values()} == {
            (Action.SKIP, ZoneReason.ZONE_REFUSED, "zone")
        }
    assert {cid for cid, ok in fast.items() if not ok} == set(zoned)

    # Mid-send: a contact who moves into the zone after the gate let them through
    # is stopped by the last look (the toy rule says mid_send), not by the default.
    mover = plain[0]
    with writing(engine) as conn:
        conn.execute(update(contacts).where(contacts.c.id == mover).values(timezone=ZONE))
        assert last_look(conn, [mover], gate_ctx("toy"), chain=TOY)[mover].rule == "zone"
        assert last_look_one(conn, mover, gate_ctx("toy"), chain=TOY).rule == "zone"
        assert not eligible_now(conn, mover, TOY, transactional=False)
        assert last_look(conn, [mover], gate_ctx("toy"))[mover].action is Action.SEND
        assert eligible_now(conn, mover, DEFAULT, transactional=False)
    assert len(audience(engine, TOPIC, at=NOON, chain=TOY)) == len(plain) - 1
    assert len(audience(engine, TOPIC, at=NOON)) == len(everyone)


# -- every rule's SQL mirror agrees with its check ------------------------------------------


def _consent(
    conn: Connection,
    cid: UUID,
    state: str,
    *,
    expires_at: datetime | None = None,
    topic: str = TOPIC,
) -> None:
    conn.execute(
        insert(consent_t).values(
            contact_id=cid,
            topic=topic,
            state=state,
            since=NOON - 100 * D,
            source="import",
            regime="gdpr-consent",
            expires_at=expires_at,
        )
    )


def _pause(conn: Connection, cid: UUID, until: datetime | None) -> None:
    conn.execute(
        insert(prefs_t).values(
            contact_id=cid,
            topic=TOPIC,
            cadence="as-it-happens",
            paused_until=until,
            updated_at=NOON - D,
        )
    )


def population(engine: Engine) -> dict[str, UUID]:
    """One contact per case each rule distinguishes (and a few that combine them)."""
    cases: dict[str, UUID] = {}
    with writing(engine) as conn:

        def subscribed(name: str, **kw: object) -> UUID:
            cid = add_contact(conn, **kw)  # type: ignore[arg-type]
            _consent(conn, cid, ConsentState.SUBSCRIBED)
            cases[name] = cid
            return cid

        subscribed("plain")
        subscribed("no-zone", timezone=None)
        subscribed("toy-zone", timezone=ZONE)
        erased = subscribed("erased")
        conn.execute(
            update(contacts)
            .where(contacts.c.id == erased)
            .values(status=ContactStatus.ERASED.value, blind_index=None)
        )
        erased_listed = subscribed("erased-still-indexed")
        conn.execute(
            update(contacts)
            .where(contacts.c.id == erased_listed)
            .values(status=ContactStatus.ERASED.value)
        )
        for reason in SuppressionReason:
            cid = subscribed(f"suppressed-{reason.value}")
            index = conn.execute(
                select(contacts.c.blind_index).where(contacts.c.id == cid)
            ).scalar_one()
            suppress(conn, index, reason)
        no_index = subscribed("no-blind-index")
        conn.execute(update(contacts).where(contacts.c.id == no_index).values(blind_index=None))
        for state in (ConsentState.PENDING, ConsentState.WITHDRAWN, ConsentState.EXPIRED):
            cid = add_contact(conn)
            _consent(conn, cid, state)
            cases[f"consent-{state.value}"] = cid
        for name, expires in (("past", NOON - H), ("now", NOON), ("future", NOON + H)):
            cid = add_contact(conn)
            _consent(conn, cid, ConsentState.SUBSCRIBED, expires_at=expires)
            cases[f"expires-{name}"] = cid
        cases["no-consent-row"] = add_contact(conn)
        other = add_contact(conn)
        _consent(conn, other, ConsentState.SUBSCRIBED, topic="news")
        cases["other-topic-only"] = other
        for name, until in (
            ("future", NOON + D),
            ("now", NOON),
            ("past", NOON - D),
            ("none", None),
        ):
            _pause(conn, subscribed(f"paused-{name}"), until)
        both = subscribed("suppressed-and-paused", timezone=ZONE)
        _pause(conn, both, NOON + D)
        index = conn.execute(
            select(contacts.c.blind_index).where(contacts.c.id == both)
        ).scalar_one()
        suppress(conn, index, SuppressionReason.COMPLAINT)
    return cases


def test_every_rules_sql_mirror_agrees_with_its_check(engine: Engine) -> None:
    cases = population(engine)
    names = {cid: name for name, cid in cases.items()}
    ids = sorted(cases.values())
    ctx = gate_ctx("mirror")
    with engine.connect() as conn:
        facts = load_facts(conn, ids, TOPIC, NOON)
        mirrored: list[Rule] = [
            r for r in TOY.rules if r.sql(bindparam("t"), bindparam("n")) is not None
        ]
        assert {r.name for r in mirrored} == {"active", "suppression", "consent", "zone", "paused"}
        for rule in mirrored:
            condition = rule.sql(
                bindparam("topic", TOPIC, type_=consent_t.c.topic.type),
                bindparam("o_now", NOON, type_=consent_t.c.expires_at.type),
            )
            assert condition is not None
            by_sql = set(
                conn.execute(select(contacts.c.id).where(contacts.c.id.in_(ids), condition))
                .scalars()
                .all()
            )
            by_check = {cid for cid in ids if rule.check(facts[cid], ctx) is None}
            assert {names[c] for c in by_sql} == {names[c] for c in by_check}, rule.name
            # The population has a case on each side of every rule.
            assert by_check and by_check != set(ids), rule.name


@pytest.mark.parametrize("transactional", [False, True], ids=["marketing", "transactional"])
def test_the_derived_last_look_and_audience_agree_with_the_rules(
    engine: Engine, transactional: bool
) -> None:
    cases = population(engine)
    names = {cid: name for name, cid in cases.items()}
    ids = sorted(cases.values())
    unknown = uuid.uuid4()  # no such contact: refused by every form
    ctx = gate_ctx("derived", transactional=transactional)
    for chain in (DEFAULT, TOY):
        with writing(engine) as conn:
            facts = load_facts(conn, [*ids, unknown], TOPIC, NOON)
            want = {
                cid
                for cid in [*ids, unknown]
                if evaluate(facts[cid], ctx, chain.last_look).action is Action.SEND
            }
            fast = {
                cid
                for cid in [*ids, unknown]
                if eligible_now(conn, cid, chain, transactional=transactional)
            }
            # The batch form asks only about rows that exist (outbox rows reference
            # contacts by foreign key), so the unknown id is left to the other forms.
            looked = last_look(conn, ids, ctx, chain=chain)
            one = {cid: last_look_one(conn, cid, ctx, chain=chain) for cid in [*ids, unknown]}
        label = sorted(names.get(c, "unknown") for c in want)
        assert sorted(names.get(c, "unknown") for c in fast) == label
        assert unknown not in want and unknown not in fast
        assert sorted(names[c] for c, v in looked.items() if v.action is Action.SEND) == label
        for cid in ids:
            assert looked[cid] == one[cid] == evaluate(facts[cid], ctx, chain.last_look)
        assert one[unknown] == evaluate(facts[unknown], ctx, chain.last_look)
        assert one[unknown].action is Action.SKIP
        audience_want = {
            cid
            for cid in ids
            if evaluate(facts[cid], gate_ctx("derived"), chain.audience).action is Action.SEND
        }
        got = set(audience(engine, TOPIC, at=NOON, chain=chain))
        assert {names[c] for c in got} == {names[c] for c in audience_want}
        # The audience leaves out no one for a pause: the gate defers those instead.
        assert cases["paused-future"] in got
        assert (cases["toy-zone"] in got) is (chain is DEFAULT)
