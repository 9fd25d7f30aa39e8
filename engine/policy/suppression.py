"""The suppression list wins over everything else, transactional mail included."""

from __future__ import annotations

from engine.models import SuppressionReason
from engine.policy.context import GateContext
from engine.policy.facts import Facts
from engine.policy.reasons import Reason, Verdict

_REASONS: dict[str, Reason] = {
    SuppressionReason.UNSUBSCRIBED: Reason.SUPPRESSED_UNSUBSCRIBED,
    SuppressionReason.HARD_BOUNCE: Reason.SUPPRESSED_HARD_BOUNCE,
    SuppressionReason.COMPLAINT: Reason.SUPPRESSED_COMPLAINT,
    SuppressionReason.ERASED: Reason.SUPPRESSED_ERASED,
}


class NotSuppressed:
    name = "suppression"
    exempt_transactional = False

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        if facts.suppression is None:
            return None
        # An unknown reason still suppresses: fail closed, as the strongest.
        reason = _REASONS.get(facts.suppression, Reason.SUPPRESSED_ERASED)
        return Verdict.skip(reason, self.name)
