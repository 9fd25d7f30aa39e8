"""The shape of a rule: its check, and what it declares so nothing else restates it.

A rule is one small class in its own file. Besides ``check`` (the authority: the
decision and its reason), it declares

- ``needs``: the facts ``check`` reads (``facts.Fact`` names; the gate and the last
  look load exactly the union of their rules' needs, in batch);
- ``sql(topic, now)``: the same condition as SQL over the candidate row of
  ``contacts`` (with correlated ``EXISTS`` over consent, suppression and
  preferences), or ``None`` for a rule computed only in Python (the deadline,
  quiet hours, the caps). It is a mirror: the database uses it to find the few
  recipients whose facts need loading, and to build the audience; ``check`` decides;
- ``mid_send``: the customer can change it while a batch is sending, so the last
  look (right before a message leaves) checks it again;
- ``audience``: a launch leaves out whoever fails it (the candidates the fan-out
  writes); a rule whose answer can change before the send (a pause, the hour, a
  cap) is not an audience rule: the gate defers those recipients instead.

``chain.Chain`` derives the last look and the audience from these flags, and
refuses a table whose mid-send or audience rule has no SQL mirror.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement

from engine.policy.context import GateContext
from engine.policy.facts import Fact, Facts
from engine.policy.reasons import Verdict


class Rule(Protocol):
    #: Appears in every decision the rule makes (the audit trail).
    name: str
    #: True only for rules an explicitly transactional message is exempt from.
    exempt_transactional: bool
    #: The facts ``check`` reads.
    needs: frozenset[Fact]
    #: Re-checked by the last look: the customer can change it mid-send.
    mid_send: bool
    #: Filters the audience a launch fans out to.
    audience: bool

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        """``None`` passes; a ``Verdict`` (skip or defer) stops the chain."""
        ...

    def sql(
        self, topic: ColumnElement[str], now: ColumnElement[datetime]
    ) -> ColumnElement[bool] | None:
        """True where ``check`` passes, for the row of ``contacts``; None: no SQL form."""
        ...


class RuleBase:
    """The defaults of a rule: reads no facts, has no SQL form, neither mid-send nor audience."""

    exempt_transactional: bool = False
    needs: frozenset[Fact] = frozenset()
    mid_send: bool = False
    audience: bool = False

    def sql(
        self, topic: ColumnElement[str], now: ColumnElement[datetime]
    ) -> ColumnElement[bool] | None:
        return None
