"""The shape of a rule: a name, whether a transactional message skips it, and ``check``."""

from __future__ import annotations

from typing import Protocol

from engine.policy.context import GateContext
from engine.policy.facts import Facts
from engine.policy.reasons import Verdict


class Rule(Protocol):
    #: Appears in every decision the rule makes (the audit trail).
    name: str
    #: True only for rules an explicitly transactional message is exempt from.
    exempt_transactional: bool

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        """``None`` passes; a ``Verdict`` (skip or defer) stops the chain."""
        ...
