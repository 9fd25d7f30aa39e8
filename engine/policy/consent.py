"""Consent for the campaign's topic is current, read at send time (withdrawn a second ago wins).

CASL implied consent carries ``expires_at`` (2 years after a purchase, 6 months after
an inquiry): at or past it the consent is expired, whatever the cached state says.
"""

from __future__ import annotations

from engine.models import ConsentState
from engine.policy.context import GateContext
from engine.policy.facts import Facts
from engine.policy.reasons import Reason, Verdict

_REASONS: dict[str, Reason] = {
    ConsentState.PENDING: Reason.CONSENT_PENDING,
    ConsentState.WITHDRAWN: Reason.CONSENT_WITHDRAWN,
    ConsentState.EXPIRED: Reason.CONSENT_EXPIRED,
}


class ConsentCurrent:
    name = "consent"
    exempt_transactional = False

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        state = facts.consent_state
        if state == ConsentState.SUBSCRIBED:
            if facts.consent_expires_at is not None and facts.consent_expires_at <= ctx.now:
                return Verdict.skip(Reason.CONSENT_EXPIRED, self.name)
            return None
        return Verdict.skip(_REASONS.get(state or "", Reason.NO_CONSENT), self.name)
