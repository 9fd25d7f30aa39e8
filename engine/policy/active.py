"""Only active contacts are mailed (an erased or unknown contact has no address to use)."""

from __future__ import annotations

from engine.models import ContactStatus
from engine.policy.context import GateContext
from engine.policy.facts import Facts
from engine.policy.reasons import Reason, Verdict


class ActiveContact:
    name = "active"
    exempt_transactional = False

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if facts.status != ContactStatus.ACTIVE:
            return Verdict.skip(Reason.CONTACT_INACTIVE, self.name)
        return None
