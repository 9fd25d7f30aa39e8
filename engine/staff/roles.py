"""Roles, scopes and permissions: the one table that says who may do what.

A member of staff has one role; the roles are cumulative (each has every
permission of the roles before it), except that sending is a permission of its
own, as in listmonk: an ``editor`` prepares campaigns and cannot launch them.

    ============== ====== ====== ====== =====
    permission     viewer editor sender admin
    ============== ====== ====== ====== =====
    read           yes    yes    yes    yes     reports, lists, estimates, previews
    edit           .      yes    yes    yes     campaigns and templates: create, edit, lint
    send           .      .      yes    yes     schedule, launch, pause, resume, cancel, test
    reveal         .      .      yes    yes     a contact's address and name (each audited)
    contacts       .      .      .      yes     export and erase a contact; imports
    admin          .      .      .      yes     staff, tokens of others, audit log, keys status
    ============== ====== ====== ====== =====

An API token narrows its owner's role further by scope: ``read`` grants at most
read; ``write`` adds edit; ``send`` adds send. A token never grants reveal,
contacts or admin unless its owner's role has them *and* the token has the
``write`` scope (reveal and contacts) or all three scopes (admin).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.models import StaffRole

Role = StaffRole


class Permission(StrEnum):
    READ = "read"
    EDIT = "edit"
    SEND = "send"
    REVEAL = "reveal"
    CONTACTS = "contacts"
    ADMIN = "admin"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    SEND = "send"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({P.READ}),
    Role.EDITOR: frozenset({P.READ, P.EDIT}),
    Role.SENDER: frozenset({P.READ, P.EDIT, P.SEND, P.REVEAL}),
    Role.ADMIN: frozenset(P),
}


def scope_permissions(scopes: frozenset[Scope]) -> frozenset[Permission]:
    """What a token with these scopes may do at most (before its owner's role narrows it)."""
    granted: set[Permission] = set()
    if scopes:
        granted.add(P.READ)
    if Scope.WRITE in scopes:
        granted |= {P.EDIT, P.REVEAL, P.CONTACTS}
    if Scope.SEND in scopes:
        granted.add(P.SEND)
    if scopes >= frozenset(Scope):
        granted.add(P.ADMIN)
    return frozenset(granted)


def parse_scopes(text: str | list[str]) -> frozenset[Scope]:
    """``"read,send"`` or ``["read", "send"]``; ValueError names an unknown scope."""
    items = text.split(",") if isinstance(text, str) else text
    out: set[Scope] = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.add(Scope(item))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {item!r} (known: {known})") from None
    if not out:
        raise ValueError("a token needs at least one scope (read, write, send)")
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a member of staff, through the console or one of their tokens."""

    staff_id: int
    role: Role
    #: The API token used, or None for a console session (or the CLI).
    token_id: int | None = None
    scopes: frozenset[Scope] | None = None

    @property
    def permissions(self) -> frozenset[Permission]:
        granted = ROLE_PERMISSIONS[self.role]
        if self.scopes is not None:
            granted = granted & scope_permissions(self.scopes)
        return granted

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def actor(self) -> str:
        """How the audit log names this principal (ids only)."""
        if self.token_id is None:
            return f"staff:{self.staff_id}"
        return f"staff:{self.staff_id}/token:{self.token_id}"


def allowed(role: Role) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]
