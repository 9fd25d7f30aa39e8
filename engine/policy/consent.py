"""Consent for the campaign's topic is current, read at send time (withdrawn a second ago wins).

CASL implied consent carries ``expires_at`` (2 years after a purchase, 6 months after
an inquiry): at or past it the consent is expired, whatever the cached state says.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, or_

from engine.models import ConsentState
from engine.policy.context import GateContext
from engine.policy.facts import Fact, Facts, consent_state_t
from engine.policy.reasons import Reason, Verdict
from engine.policy.rule import RuleBase
from engine.vault.vault import contacts

_REASONS: dict[str, Reason] = {
    ConsentState.PENDING: Reason.CONSENT_PENDING,
    ConsentState.WITHDRAWN: Reason.CONSENT_WITHDRAWN,
    ConsentState.EXPIRED: Reason.CONSENT_EXPIRED,
}


class ConsentCurrent(RuleBase):
    name = "consent"
    needs = frozenset({Fact.CONSENT})
    mid_send = True  # withdrawn a second ago wins
    audience = True

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        state = facts.consent_state
        if state == ConsentState.SUBSCRIBED:
            if facts.consent_expires_at is not None and facts.consent_expires_at <= ctx.now:
                return Verdict.skip(Reason.CONSENT_EXPIRED, self.name)
            return None
        return Verdict.skip(_REASONS.get(state or "", Reason.NO_CONSENT), self.name)

    def sql(self, topic: ColumnElement[str], now: ColumnElement[datetime]) -> ColumnElement[bool]:
        cs = consent_state_t.c
        return exists().where(
            cs.contact_id == contacts.c.id,
            cs.topic == topic,
            cs.state == ConsentState.SUBSCRIBED.value,
            or_(cs.expires_at.is_(None), cs.expires_at > now),
        )
