"""Whether Tact may measure a contact's opens and clicks, and how much it may keep of them.

The contact's choice is a scope of the consent ledger (:data:`TRACKING`), set in the
preference center: "let us measure which emails you open and click". Until they choose,
the default follows their regime: under the GDPR (and the ePrivacy rules on reading
what a mail client does) measuring needs their agreement, so the default is **no**;
under CAN-SPAM and CASL, which do not ask for it, the default is **yes**, and they may
refuse. A contact with no active subscription has no regime to go by: no.

What is recorded is the smallest of three (:func:`mode_for`):

- the mode configured for the contact's regime (``off``, ``aggregate``, ``individual``);
- ``off`` when the contact did not allow measuring (by choice, or by the default);
- at most ``aggregate`` unless the contact explicitly agreed, and always at most
  ``aggregate`` for a contact who objected to profiling: ``individual`` events carry the
  contact's id, which is profiling.

``off``: links go straight to their destination and nothing is recorded. ``aggregate``:
an event carries the campaign, variant, segment and locale, and a per-message key that
expires, but no contact id. ``individual``: the contact id too.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from uuid import UUID

from sqlalchemy import Connection, select

from engine.consent import ledger
from engine.consent.ledger import NewEvent, Regime
from engine.consent.topics import TRACKING
from engine.models import ConsentEventType, ConsentState, ConsentStateRow, ContactPreferences
from engine.vault.vault import Vault

__all__ = [
    "TRACKING",
    "Tracking",
    "TrackingMode",
    "allowed_by_default",
    "mode_for",
    "modes_for",
    "set_tracking",
    "tracking_of",
]

#: What the preference center's tracking checkbox says, by version: recorded with each
#: choice (the ledger keeps what the person was asked, not only the answer).
WORDING = "preference-center/tracking/1"

state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
prefs_t = ContactPreferences.__table__  # type: ignore[attr-defined]
#: Contacts per query of :func:`modes_for` (well under every database's parameter limit).
_CHUNK = 500

#: Regimes under which measuring needs the contact's agreement first.
CONSENT_FIRST = frozenset({Regime.GDPR_CONSENT})


class TrackingMode(StrEnum):
    OFF = "off"
    AGGREGATE = "aggregate"
    INDIVIDUAL = "individual"


_ORDER = (TrackingMode.OFF, TrackingMode.AGGREGATE, TrackingMode.INDIVIDUAL)


def _smaller(a: TrackingMode, b: TrackingMode) -> TrackingMode:
    return a if _ORDER.index(a) <= _ORDER.index(b) else b


def allowed_by_default(regimes: Iterable[str]) -> bool:
    """The default before the contact chose: no under a consent-first regime (or with no
    regime at all), yes otherwise."""
    known = set(regimes)
    return bool(known) and not (known & CONSENT_FIRST)


class Tracking:
    """One contact's standing: their choice (None: not chosen yet) and their regimes."""

    __slots__ = ("choice", "regimes")

    def __init__(self, choice: bool | None, regimes: Iterable[str]) -> None:
        self.choice = choice
        self.regimes = frozenset(regimes)

    @property
    def allowed(self) -> bool:
        """Measuring is allowed: by their choice, else by their regime's default."""
        return self.choice if self.choice is not None else allowed_by_default(self.regimes)

    def __repr__(self) -> str:  # no personal data in it: a choice and regime names
        return f"Tracking(choice={self.choice!r}, regimes={sorted(self.regimes)!r})"


def mode_for(
    configured: TrackingMode, tracking: Tracking, *, profiling_objection: bool
) -> TrackingMode:
    """What may be recorded of this contact's opens and clicks (module docstring)."""
    if not tracking.allowed:
        return TrackingMode.OFF
    ceiling = TrackingMode.INDIVIDUAL
    if tracking.choice is not True or profiling_objection:
        ceiling = TrackingMode.AGGREGATE
    return _smaller(configured, ceiling)


def tracking_of(conn: Connection, contact_id: UUID) -> Tracking:
    """The contact's choice and the regimes of their active subscriptions, from the
    ledger's current states."""
    states = ledger.current_states(conn, contact_id)
    return _standing((topic, s["state"], s["regime"]) for topic, s in states.items())


def _standing(states: Iterable[tuple[str, object, object]]) -> Tracking:
    """A contact's Tracking from their (scope, state, regime) rows: the ``tracking`` row is
    their choice, the regimes are those of their active subscriptions."""
    choice: bool | None = None
    regimes: list[str] = []
    for topic, state, regime in states:
        if topic == TRACKING:
            choice = str(state) == ConsentState.SUBSCRIBED
        elif str(state) == ConsentState.SUBSCRIBED and regime:
            regimes.append(str(regime))
    return Tracking(choice, regimes)


def set_tracking(
    conn: Connection,
    vault: Vault,
    contact_id: UUID,
    allowed: bool,
    *,
    source: str,
    ip: str | None = None,
    user_agent: str | None = None,
    campaign: str | None = None,
) -> bool:
    """Record the contact's choice in the ledger (what they were asked, where, when); True
    if it recorded one, False if it was already their choice. A caller records only what
    the person changed: a form saved with the default still shown is no choice, least of
    all an agreement."""
    current = tracking_of(conn, contact_id)
    if current.choice is allowed:
        return False
    detail: dict[str, str] = {"wording": WORDING}
    if campaign:
        detail["campaign"] = campaign
    ledger.append(
        conn,
        vault,
        [
            NewEvent(
                contact_id=contact_id,
                topic=TRACKING,
                event=ConsentEventType.GRANTED if allowed else ConsentEventType.WITHDRAWN,
                source=source,
                lawful_basis="consent",
                ip=ip,
                user_agent=user_agent,
                detail=detail,
            )
        ],
    )
    return True


def modes_for(
    conn: Connection, contact_ids: Iterable[UUID], configured: TrackingMode
) -> dict[UUID, TrackingMode]:
    """:func:`mode_for` of many contacts at once (a batch of the sending pipeline): their
    choices and regimes in one query, their objections to profiling in another."""
    ids = list(dict.fromkeys(contact_ids))
    if configured == TrackingMode.OFF or not ids:
        return dict.fromkeys(ids, TrackingMode.OFF)
    rows: dict[UUID, list[tuple[str, object, object]]] = {i: [] for i in ids}
    objections: set[UUID] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found = conn.execute(
            select(state_t.c.contact_id, state_t.c.topic, state_t.c.state, state_t.c.regime).where(
                state_t.c.contact_id.in_(chunk)
            )
        )
        for contact_id, topic, state, regime in found:
            rows[contact_id].append((topic, state, regime))
        objections.update(
            conn.execute(
                select(prefs_t.c.contact_id).where(
                    prefs_t.c.contact_id.in_(chunk), prefs_t.c.personalization_opt_out.is_(True)
                )
            ).scalars()
        )
    return {
        i: mode_for(configured, _standing(rows[i]), profiling_objection=i in objections)
        for i in ids
    }
