"""The suppression list wins over everything else, transactional mail included."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, select

from engine.consent.suppression import suppressions
from engine.models import SuppressionReason
from engine.policy.context import GateContext
from engine.policy.facts import Fact, Facts
from engine.policy.reasons import Reason, Verdict
from engine.policy.rule import RuleBase
from engine.vault.vault import contacts

_REASONS: dict[str, Reason] = {
    SuppressionReason.UNSUBSCRIBED: Reason.SUPPRESSED_UNSUBSCRIBED,
    SuppressionReason.HARD_BOUNCE: Reason.SUPPRESSED_HARD_BOUNCE,
    SuppressionReason.COMPLAINT: Reason.SUPPRESSED_COMPLAINT,
    SuppressionReason.ERASED: Reason.SUPPRESSED_ERASED,
}


class NotSuppressed(RuleBase):
    name = "suppression"
    needs = frozenset({Fact.SUPPRESSION})
    mid_send = True  # an unsubscribe, a bounce or a complaint while the batch is sending
    audience = True

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if facts.suppression is None:
            return None
        # An unknown reason still suppresses: fail closed, as the strongest.
        reason = _REASONS.get(facts.suppression, Reason.SUPPRESSED_ERASED)
        return Verdict.skip(reason, self.name)

    def sql(self, topic: ColumnElement[str], now: ColumnElement[datetime]) -> ColumnElement[bool]:
        # the key column alone: SQLite answers from the primary-key index
        hashes = select(suppressions.c.address_hash)
        return ~exists(hashes.where(suppressions.c.address_hash == contacts.c.blind_index))
