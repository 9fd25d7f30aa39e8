"""A campaign past its deadline sends nothing more (deferred recipients included)."""

from __future__ import annotations

from engine.policy.context import GateContext
from engine.policy.facts import Facts
from engine.policy.reasons import Reason, Verdict
from engine.policy.rule import RuleBase


class BeforeDeadline(RuleBase):
    """Reads only the campaign (``ctx``): no facts, no SQL form; not an audience rule."""

    name = "deadline"

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if ctx.deadline is not None and ctx.now > ctx.deadline:
            return Verdict.skip(Reason.DEADLINE_PASSED, self.name)
        return None
