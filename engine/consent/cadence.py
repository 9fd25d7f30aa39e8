"""The cadence a contact is held to: their own choice, else the topic's default.

It lives in consent, below the policy that enforces it, so that the consent
service (what the preference center and ``contacts show`` display) and the gate
(what is enforced) call one function, and consent never imports policy.
"""

from __future__ import annotations


def effective_cadence(stored: str | None, default: str | None) -> str | None:
    """The cadence the gate enforces: the contact's own, else the topic's default.

    A contact subscribed before the default was stored at subscription has no
    preference row; it gets the default the preference center shows it, so what is
    displayed and what is enforced are one value, without a data migration.
    """
    return stored or default
