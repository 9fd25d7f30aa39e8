"""The permission table of the staff-facing use-cases against the role table.

The console and the API refuse by ``engine.app.permissions.OPERATIONS``; these tests
pin what each role and each token scope may do, so that a change to either table is
a visible, deliberate change.
"""

from __future__ import annotations

import pytest

from engine.app.permissions import OPERATIONS, check, may
from engine.errors import PermissionDenied
from engine.staff import Permission, Principal, Role, Scope
from engine.staff.roles import parse_scopes

ROLES_MAY = {
    Role.VIEWER: {"campaigns.list", "campaigns.report", "contacts.lookup", "templates.lint"},
    Role.EDITOR: {"campaigns.create", "campaigns.edit", "templates.save"},
    Role.SENDER: {"campaigns.schedule", "campaigns.send", "campaigns.test", "contacts.reveal"},
    Role.ADMIN: {"staff.manage", "audit.export", "contacts.erase", "imports.create"},
}
ORDER = [Role.VIEWER, Role.EDITOR, Role.SENDER, Role.ADMIN]


@pytest.mark.parametrize("role", ORDER)
def test_each_role_may_what_it_and_the_roles_below_it_may_and_nothing_above(role: Role) -> None:
    who = Principal(staff_id=1, role=role)
    rank = ORDER.index(role)
    for other in ORDER:
        for operation in ROLES_MAY[other]:
            assert may(who, operation) is (ORDER.index(other) <= rank), (role, operation)


def test_an_editor_prepares_but_cannot_send() -> None:
    editor = Principal(staff_id=2, role=Role.EDITOR)
    check(editor, "campaigns.create")
    for operation in ("campaigns.schedule", "campaigns.send", "campaigns.cancel"):
        with pytest.raises(PermissionDenied) as caught:
            check(editor, operation)
        assert caught.value.code == "permission-denied"
        assert "send" in str(caught.value)


def test_every_operation_needs_a_known_permission_and_admin_may_all() -> None:
    admin = Principal(staff_id=1, role=Role.ADMIN)
    assert OPERATIONS
    for operation, permission in OPERATIONS.items():
        assert isinstance(permission, Permission)
        assert may(admin, operation), operation
    viewer = Principal(staff_id=3, role=Role.VIEWER)
    assert {op for op in OPERATIONS if may(viewer, op)} == {
        op for op, p in OPERATIONS.items() if p is Permission.READ
    }


def test_a_token_narrows_its_owners_role_and_never_widens_it() -> None:
    read_only = Principal(staff_id=1, role=Role.ADMIN, token_id=5, scopes=frozenset({Scope.READ}))
    assert may(read_only, "campaigns.report")
    for operation in ("campaigns.create", "campaigns.send", "contacts.reveal", "audit.list"):
        assert not may(read_only, operation), operation
    sending = Principal(
        staff_id=1, role=Role.ADMIN, token_id=6, scopes=frozenset({Scope.READ, Scope.SEND})
    )
    assert may(sending, "campaigns.send")
    assert not may(sending, "campaigns.edit")
    # A viewer's token with every scope is still a viewer.
    viewer_all = Principal(staff_id=4, role=Role.VIEWER, token_id=7, scopes=frozenset(Scope))
    assert {op for op in OPERATIONS if may(viewer_all, op)} == {
        op for op, p in OPERATIONS.items() if p is Permission.READ
    }
    full = Principal(staff_id=1, role=Role.ADMIN, token_id=8, scopes=frozenset(Scope))
    assert may(full, "staff.manage")
    assert full.actor == "staff:1/token:8"
    assert Principal(staff_id=1, role=Role.ADMIN).actor == "staff:1"


def test_scopes_are_parsed_strictly() -> None:
    assert parse_scopes("read, send") == frozenset({Scope.READ, Scope.SEND})
    with pytest.raises(ValueError, match="unknown scope 'admin'"):
        parse_scopes("read,admin")
    with pytest.raises(ValueError, match="at least one scope"):
        parse_scopes(" , ")
