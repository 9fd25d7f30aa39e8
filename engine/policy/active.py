"""Only active contacts are mailed (an erased or unknown contact has no address to use)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement

from engine.models import ContactStatus
from engine.policy.context import GateContext
from engine.policy.facts import Fact, Facts
from engine.policy.reasons import Reason, Verdict
from engine.policy.rule import RuleBase
from engine.vault.vault import contacts


class ActiveContact(RuleBase):
    name = "active"
    needs = frozenset({Fact.CONTACT})
    mid_send = True  # an erasure while the batch is sending
    audience = True

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if facts.status != ContactStatus.ACTIVE:
            return Verdict.skip(Reason.CONTACT_INACTIVE, self.name)
        return None

    def sql(self, topic: ColumnElement[str], now: ColumnElement[datetime]) -> ColumnElement[bool]:
        active: ColumnElement[bool] = contacts.c.status == ContactStatus.ACTIVE.value
        return active
