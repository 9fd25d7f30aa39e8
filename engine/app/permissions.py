"""Which permission each use-case needs, for the faces that act for staff (console and API).

One table, so that the console and the API refuse the same things for the same
roles; ``tests/test_permissions.py`` checks every entry against the role table of
:mod:`engine.staff.roles`. The CLI is the machine's operator and is not checked.

A face calls :func:`check` with the operation's name before the use-case::

    check(principal, "campaigns.schedule")
    with acting_as(principal.actor):
        campaigns.schedule(rt, name)
"""

from __future__ import annotations

from engine.app.staff import require
from engine.staff import Permission, Principal

P = Permission

OPERATIONS: dict[str, Permission] = {
    # reading: every role
    "dashboard.show": P.READ,
    "campaigns.list": P.READ,
    "campaigns.show": P.READ,
    "campaigns.report": P.READ,
    "campaigns.estimate": P.READ,
    "campaigns.validate": P.READ,
    "campaigns.preview": P.READ,
    "templates.list": P.READ,
    "templates.read": P.READ,
    "templates.lint": P.READ,
    "segments.list": P.READ,
    "segments.explain": P.READ,
    "topics.list": P.READ,
    "contacts.lookup": P.READ,
    "contacts.consent": P.READ,
    "imports.show": P.READ,
    # preparing campaigns and content: editor and up
    "campaigns.create": P.EDIT,
    "campaigns.edit": P.EDIT,
    "campaigns.clone": P.EDIT,
    "campaigns.delete": P.EDIT,
    "templates.save": P.EDIT,
    # sending: sender and up (a permission of its own)
    "campaigns.schedule": P.SEND,
    "campaigns.send": P.SEND,
    "campaigns.pause": P.SEND,
    "campaigns.resume": P.SEND,
    "campaigns.cancel": P.SEND,
    "campaigns.test": P.SEND,
    # a contact's address and name, each reveal audited
    "contacts.reveal": P.REVEAL,
    # people's data: admin
    "contacts.export": P.CONTACTS,
    "contacts.erase": P.CONTACTS,
    "contacts.subscribe": P.CONTACTS,
    "imports.create": P.CONTACTS,
    # the installation
    "staff.list": P.ADMIN,
    "staff.manage": P.ADMIN,
    "tokens.manage": P.ADMIN,
    "audit.list": P.ADMIN,
    "audit.export": P.ADMIN,
    "keys.status": P.ADMIN,
    "settings.show": P.ADMIN,
}


def needs(operation: str) -> Permission:
    """The permission ``operation`` needs (KeyError for a name not in the table: a bug)."""
    return OPERATIONS[operation]


def check(principal: Principal, operation: str) -> None:
    """PermissionDenied unless ``principal`` may run ``operation``."""
    require(principal, OPERATIONS[operation])


def may(principal: Principal, operation: str) -> bool:
    return principal.may(OPERATIONS[operation])
