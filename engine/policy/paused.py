"""The customer paused this topic in the preference center: wait until the pause ends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists

from engine.policy.context import GateContext
from engine.policy.facts import Fact, Facts, topic_prefs_t
from engine.policy.reasons import Reason, Verdict
from engine.policy.rule import RuleBase
from engine.vault.vault import contacts


class NotPaused(RuleBase):
    """Mid-send (a pause set while the batch sends); not an audience rule: a paused
    contact is a candidate still, deferred by the gate until the pause ends."""

    name = "paused"
    exempt_transactional = True
    needs = frozenset({Fact.PREFERENCE})
    mid_send = True

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if facts.paused_until is not None and facts.paused_until > ctx.now:
            return Verdict.defer(Reason.PAUSED_BY_CUSTOMER, facts.paused_until, self.name)
        return None

    def sql(self, topic: ColumnElement[str], now: ColumnElement[datetime]) -> ColumnElement[bool]:
        tp = topic_prefs_t.c
        return ~exists().where(
            tp.contact_id == contacts.c.id, tp.topic == topic, tp.paused_until > now
        )
