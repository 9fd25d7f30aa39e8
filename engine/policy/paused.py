"""The customer paused this topic in the preference center: wait until the pause ends."""

from __future__ import annotations

from engine.policy.context import GateContext
from engine.policy.facts import Facts
from engine.policy.reasons import Reason, Verdict


class NotPaused:
    name = "paused"
    exempt_transactional = True

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if facts.paused_until is not None and facts.paused_until > ctx.now:
            return Verdict.defer(Reason.PAUSED_BY_CUSTOMER, facts.paused_until, self.name)
        return None
