"""The ordered chain of rules (Mailman 3 rules and chains).

``RULES`` is both the program and the audit trail: rules run in this order and the
first that objects decides, so a suppressed contact who is also capped is reported
as suppressed. Every decision names the rule that made it.

Hard stops come first (the contact, the suppression list, consent, the deadline),
then what can wait (the customer's pause, quiet hours, frequency caps). A waiting
rule proposes ``defer_until``, its next free slot; ``finalize`` turns that into a
skip with the same reason when the campaign allows no deferral or the slot falls
after its deadline.

A transactional message (``ctx.transactional``, an explicit flag) skips only the
rules marked ``exempt_transactional`` (pause, quiet hours, caps) and is decided
``transactional-exempt`` so the audit shows the exemption was used.

``RULES`` is also the one definition of eligibility. A ``Chain`` over it derives
everything else from what each rule declares (``rule.Rule``): the facts to load,
the last look (the ``mid_send`` rules, in table order), its SQL mirror, and the
audience filter of a launch (the ``audience`` rules' SQL). ``DEFAULT`` is the chain
of ``RULES``; the gate, the last look and the audience take a ``chain=`` for a
table with more lines (a test's toy rule, ``Chain.with_rule``). Adding a rule is
its file plus its line below.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam

from engine.policy.active import ActiveContact
from engine.policy.consent import ConsentCurrent
from engine.policy.context import GateContext
from engine.policy.deadline import BeforeDeadline
from engine.policy.facts import ROW_FACTS, Fact, Facts, consent_state_t
from engine.policy.frequency import FrequencyCaps
from engine.policy.paused import NotPaused
from engine.policy.quiet_hours import OutsideQuietHours
from engine.policy.reasons import Action, Reason, Verdict
from engine.policy.rule import Rule
from engine.policy.suppression import NotSuppressed

RULES: tuple[Rule, ...] = (
    ActiveContact(),
    NotSuppressed(),
    ConsentCurrent(),
    BeforeDeadline(),
    NotPaused(),
    OutsideQuietHours(),
    FrequencyCaps(),
)

CHAIN = "chain"


class Chain:
    """An ordered table of rules and what it implies, worked out once at construction.

    Refuses (``ValueError``, a programming error) a table whose names repeat, whose
    rule needs a fact ``facts`` cannot load, whose mid-send or audience rule has no
    SQL mirror, or whose mid-send rule needs the send history (the last look reads
    one row per contact).
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names repeat in the chain: {names}")
        probe_topic = bindparam("topic", type_=consent_state_t.c.topic.type)
        probe_now = bindparam("o_now", type_=consent_state_t.c.expires_at.type)
        for rule in self.rules:
            unknown = set(rule.needs) - set(Fact)
            if unknown:
                raise ValueError(f"rule {rule.name!r} needs facts no loader knows: {unknown}")
            if (rule.mid_send or rule.audience) and rule.sql(probe_topic, probe_now) is None:
                raise ValueError(f"rule {rule.name!r} is mid-send or audience without SQL")
            if rule.mid_send and not set(rule.needs) <= ROW_FACTS:
                raise ValueError(f"mid-send rule {rule.name!r} needs more than row facts")
        #: What the gate loads: every fact some rule reads.
        self.needs: frozenset[Fact] = frozenset(f for rule in self.rules for f in rule.needs)
        #: What the customer can change while a batch is sending, in table order.
        self.last_look: tuple[Rule, ...] = tuple(r for r in self.rules if r.mid_send)
        #: Who a launch leaves out of the audience, in table order.
        self.audience: tuple[Rule, ...] = tuple(r for r in self.rules if r.audience)

    def with_rule(self, rule: Rule, *, after: str | None = None) -> Chain:
        """This table with one more line: after the rule named ``after``, else at the end."""
        if after is None:
            return Chain((*self.rules, rule))
        at = [r.name for r in self.rules].index(after) + 1
        return Chain((*self.rules[:at], rule, *self.rules[at:]))

    def last_look_sql(
        self, topic: ColumnElement[str], now: ColumnElement[datetime], *, transactional: bool
    ) -> list[ColumnElement[bool]]:
        """The SQL mirrors of the last look's rules (a transactional message skips the exempt)."""
        return [
            _sql(rule, topic, now)
            for rule in self.last_look
            if not (transactional and rule.exempt_transactional)
        ]

    def audience_sql(
        self, topic: ColumnElement[str], now: ColumnElement[datetime]
    ) -> list[ColumnElement[bool]]:
        """The SQL mirrors of the audience rules, over the row of ``contacts``."""
        return [_sql(rule, topic, now) for rule in self.audience]

    def evaluate(self, facts: Facts, ctx: GateContext) -> Verdict:
        return evaluate(facts, ctx, self.rules)

    def look(self, facts: Facts, ctx: GateContext) -> Verdict:
        """The last look's verdict: the mid-send rules only."""
        return evaluate(facts, ctx, self.last_look)


def _sql(
    rule: Rule, topic: ColumnElement[str], now: ColumnElement[datetime]
) -> ColumnElement[bool]:
    condition = rule.sql(topic, now)
    if condition is None:  # Chain checked this at construction
        raise ValueError(f"rule {rule.name!r} has no SQL form")
    return condition


def passed(ctx: GateContext) -> Verdict:
    reason = Reason.TRANSACTIONAL_EXEMPT if ctx.transactional else Reason.OK
    return Verdict(Action.SEND, reason, None, CHAIN)


def finalize(verdict: Verdict, ctx: GateContext) -> Verdict:
    """A deferral the campaign cannot take (no deferral, or past its deadline) is a skip."""
    if verdict.action is not Action.DEFER:
        return verdict
    until = verdict.defer_until
    if not ctx.allow_defer or until is None or (ctx.deadline is not None and until > ctx.deadline):
        return Verdict.skip(verdict.reason, verdict.rule)
    return verdict


def evaluate(facts: Facts, ctx: GateContext, rules: tuple[Rule, ...] = RULES) -> Verdict:
    for rule in rules:
        if ctx.transactional and rule.exempt_transactional:
            continue
        verdict = rule.check(facts, ctx)
        if verdict is not None:
            return finalize(verdict, ctx)
    return passed(ctx)


#: The chain of ``RULES``: what the gate, the last look and the audience use by default.
DEFAULT = Chain(RULES)
