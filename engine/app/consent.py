"""The consent ledger as an operator checks it: one contact's history, the whole chain.

The ledger is the proof of who agreed to what, and when (engine.consent.ledger):
append-only, one keyed hash chain per contact. These use-cases read it; nothing
here writes consent (that is :mod:`engine.app.contacts` ``subscribe``, the
preference center and the inbound events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.consent import ledger
from engine.consent.ledger import ChainProblem
from engine.runtime import Runtime

__all__ = ["ChainProblem", "LedgerCheck", "LedgerEvent", "history", "verify"]


@dataclass(frozen=True)
class LedgerCheck:
    """What ``verify`` found: how many events it checked, and every problem."""

    events_checked: int
    problems: tuple[ChainProblem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        """The JSON document of ``tact consent verify --json``."""
        return {
            "events_checked": self.events_checked,
            "problems": [
                {"contact_id": str(p.contact_id), "seq": p.seq, "problem": p.problem}
                for p in self.problems
            ],
        }


def verify(rt: Runtime) -> LedgerCheck:
    """Check every contact's hash chain and the cached consent state against it.

    Finds events edited, deleted (the newest included) or reordered, and a consent
    state that disagrees with the ledger. Needs the keyring: the chain is keyed.
    """
    vault = rt.vault
    with rt.engine.connect() as conn:
        checked, problems = ledger.verify(conn, vault.keyring.ledger_key)
    return LedgerCheck(events_checked=checked, problems=tuple(problems))


@dataclass(frozen=True)
class LedgerEvent:
    """One consent event of a contact's ledger (the sealed fields are not shown)."""

    seq: int
    topic: str
    event: str
    at: datetime
    source: str
    lawful_basis: str
    regime: str
    expires_at: datetime | None
    text_hash: str | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: times as ISO 8601 text."""
        return {
            "seq": self.seq,
            "topic": self.topic,
            "event": self.event,
            "at": self.at.isoformat(),
            "source": self.source,
            "lawful_basis": self.lawful_basis,
            "regime": self.regime,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "text_hash": self.text_hash,
        }


def history(rt: Runtime, address: str) -> tuple[LedgerEvent, ...]:
    """The ledger of the contact with this address, oldest first."""
    vault = rt.vault
    with rt.engine.connect() as conn:
        contact_id = vault.find(conn, address).id
        return tuple(LedgerEvent(**event) for event in ledger.history(conn, contact_id))
