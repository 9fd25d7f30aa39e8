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
"""

from __future__ import annotations

from engine.policy.active import ActiveContact
from engine.policy.consent import ConsentCurrent
from engine.policy.context import GateContext
from engine.policy.deadline import BeforeDeadline
from engine.policy.facts import Facts
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
