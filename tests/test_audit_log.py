"""The audit log (issue 13, part 2), on both databases: every staff action writes a row
naming ``staff:ID`` or ``operator`` and never an address; the database itself refuses
UPDATE and DELETE on ``audit_events``; the log is paged by cursor and exported whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from engine.app import audit, staff
from engine.audit import OPERATOR, acting_as, current_actor, record
from engine.config import Settings
from engine.errors import AuthenticationFailed
from engine.models import AuditEvent
from engine.runtime import Runtime
from engine.staff.totp import code_at
from engine.vault import Keyring, Vault
from tests.test_staff import ADDRESS, OTHER, PASSWORD, address_needles

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


def rows(engine: Engine) -> list[tuple[int, str, str, dict[str, object]]]:
    with engine.connect() as conn:
        return [
            (r.id, r.action, r.actor, dict(r.detail or {}))
            for r in conn.execute(select(audit_t).order_by(audit_t.c.id))
        ]


def every_staff_action(rt: Runtime) -> dict[str, int]:
    """Each staff use-case once (twice for some), as the operator and as a member of staff."""
    at = NOW
    admin = staff.add(rt, ADDRESS, "admin", password=PASSWORD, now=at).id
    with acting_as(f"staff:{admin}"):
        other = staff.add(rt, OTHER, "viewer", password=PASSWORD, now=at).id
    at += timedelta(seconds=1)
    session = staff.login(rt, ADDRESS, PASSWORD, now=at).token
    for guess in (ADDRESS, "nobody@northwind.example"):
        with pytest.raises(AuthenticationFailed):
            staff.login(rt, guess, "a wrong password", now=at)
    staff.logout(rt, session, now=at)
    staff.set_role(rt, OTHER, "editor", now=at)
    staff.disable(rt, OTHER, now=at)
    staff.enable(rt, OTHER, now=at)
    staff.unlock(rt, OTHER, now=at)
    staff.reset_password(rt, OTHER, password=PASSWORD, now=at)
    _, secret = staff.enrol_totp(rt, OTHER, now=at)
    with pytest.raises(AuthenticationFailed):  # the second factor missing
        staff.login(rt, OTHER, PASSWORD, now=at)
    created = staff.create_token(rt, ADDRESS, "ci", "read,send", now=at)
    for seconds in (0, 30, 59, 61, 100, 125):
        staff.authenticate_token(rt, created.token, now=at + timedelta(seconds=seconds))
    staff.revoke_token(rt, created.id, now=at + timedelta(minutes=3))
    assert code_at(secret, at.timestamp())  # (the secret itself never reaches the log)
    return {"admin": admin, "other": other, "token": created.id}


def test_every_staff_action_is_audited_by_id_never_by_address(rt: Runtime, engine: Engine) -> None:
    ids = every_staff_action(rt)
    admin, other, token = ids["admin"], ids["other"], ids["token"]
    found = [(action, actor, detail) for _, action, actor, detail in rows(engine)]
    assert [(a, actor) for a, actor, _ in found] == [
        ("staff.added", OPERATOR),
        ("staff.added", f"staff:{admin}"),
        ("login.succeeded", f"staff:{admin}"),
        ("login.failed", f"staff:{admin}"),
        ("login.failed", "anonymous"),
        ("logout", f"staff:{admin}"),
        ("staff.role-changed", OPERATOR),
        ("staff.disabled", OPERATOR),
        ("staff.enabled", OPERATOR),
        ("staff.unlocked", OPERATOR),
        ("staff.password-reset", OPERATOR),
        ("staff.totp-enrolled", OPERATOR),
        ("login.failed", f"staff:{other}"),
        ("token.created", OPERATOR),
        ("token.used", f"staff:{admin}/token:{token}"),
        ("token.used", f"staff:{admin}/token:{token}"),
        ("token.used", f"staff:{admin}/token:{token}"),  # 0 s, 61 s, 125 s: once a minute
        ("token.revoked", OPERATOR),
    ]
    details = {a: d for a, _, d in found}
    assert found[0][2] == {"staff_id": admin, "role": "admin"}
    assert found[1][2] == {"staff_id": other, "role": "viewer"}
    assert found[3][2] == {"staff_id": admin, "outcome": "bad-credentials"}
    assert found[4][2] == {"staff_id": None, "outcome": "bad-credentials"}
    assert found[12][2] == {"staff_id": other, "outcome": "second-factor"}
    assert details["staff.role-changed"] == {"staff_id": other, "role": "editor"}
    assert details["token.created"] == {
        "staff_id": admin,
        "token_id": token,
        "scopes": ["read", "send"],
    }
    assert details["token.revoked"] == {"staff_id": admin, "token_id": token}

    # No address, password or secret in any row, as stored or as exported.
    with engine.connect() as conn:
        raw = [
            json.dumps([str(v) for v in r], ensure_ascii=False).encode()
            for r in conn.execute(select(audit_t))
        ]
    exported = "".join(audit.export_lines(rt)).encode()
    needles = address_needles(ADDRESS) | address_needles(OTHER) | {PASSWORD.encode()}
    for blob in [*raw, exported]:
        assert not [n for n in needles if n in blob], blob
    assert b"@" not in exported


def test_the_actor_is_the_face_s_principal_and_the_operator_otherwise(
    rt: Runtime, engine: Engine
) -> None:
    assert current_actor() == OPERATOR
    with acting_as("staff:3/token:7"):
        assert current_actor() == "staff:3/token:7"
        with rt.engine.begin() as conn:
            record(conn, "campaign.launched", NOW, campaign="spring")
        with acting_as("staff:4"):
            assert current_actor() == "staff:4"
        assert current_actor() == "staff:3/token:7"
    assert current_actor() == OPERATOR
    for bad in ("", "x" * 65):
        with pytest.raises(ValueError):
            with acting_as(bad):
                pass
    [(_, action, actor, detail)] = rows(engine)
    assert (action, actor, detail) == (
        "campaign.launched",
        "staff:3/token:7",
        {"campaign": "spring"},
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'tampered'",
        "UPDATE audit_events SET actor = 'operator' WHERE id = 1",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE id = 1",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_audit_row(
    rt: Runtime, engine: Engine, statement: str
) -> None:
    staff.add(rt, ADDRESS, "admin", password=PASSWORD, now=NOW)
    before = rows(engine)
    assert len(before) == 1
    with pytest.raises(DBAPIError) as refused:
        with engine.begin() as conn:
            conn.execute(text(statement))
    assert "append-only" in str(refused.value).lower() or "audit" in str(refused.value).lower()
    assert rows(engine) == before
    # Appending still works.
    with engine.begin() as conn:
        record(conn, "test.appended", NOW)
    assert [r[1] for r in rows(engine)] == ["staff.added", "test.appended"]


def _fill(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        for i in range(n):
            record(conn, "campaign.edited" if i % 3 else "login.succeeded", NOW, n=i)


def test_pages_follow_the_cursor_without_gaps_or_repeats(rt: Runtime, engine: Engine) -> None:
    _fill(engine, 23)
    all_ids = [r[0] for r in rows(engine)]
    seen: list[int] = []
    cursor: int | None = None
    pages = 0
    while True:
        page = audit.entries(rt, before=cursor, limit=5)
        pages += 1
        seen += [e.id for e in page.items]
        assert len(page.items) == 5 or page.next_cursor is None
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.items[-1].id
        cursor = page.next_cursor
    assert pages == 5
    assert seen == sorted(all_ids, reverse=True)  # newest first, each once

    # A row written between two pages does not shift the older pages.
    first = audit.entries(rt, limit=10)
    _fill(engine, 1)
    second = audit.entries(rt, before=first.next_cursor, limit=10)
    assert not {e.id for e in first.items} & {e.id for e in second.items}
    assert second.items[0].id == first.items[-1].id - 1

    edited = audit.entries(rt, limit=500, action="campaign.")
    assert {e.action for e in edited.items} == {"campaign.edited"}
    assert len(edited.items) == sum(1 for i in range(23) if i % 3)  # (the later one: a login)
    assert audit.entries(rt, action="campaign%").items == []  # a prefix, not a pattern
    assert len(audit.entries(rt, limit=10_000).items) == 24  # capped, not refused
    assert audit.entries(rt, actor="staff:9").items == []


def test_export_yields_every_row_oldest_first(rt: Runtime, engine: Engine) -> None:
    _fill(engine, 7)
    lines = list(audit.export_lines(rt, batch=3))  # across several batches
    entries = [json.loads(line) for line in lines]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert [e["id"] for e in entries] == [r[0] for r in rows(engine)]
    assert [e["detail"]["n"] for e in entries] == list(range(7))
    assert set(entries[0]) == {"id", "occurred_at", "action", "actor", "contact_id", "detail"}
    assert entries[0]["occurred_at"].startswith("2026-12-07T09:00:00")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_t)).scalar_one() == 7
