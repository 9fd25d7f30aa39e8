"""Staff accounts, logins, console sessions and API tokens (issue 13, part 1), on both databases.

Through the use-cases of :mod:`engine.app.staff`, with a real vault and database: an
address is sealed (no table holds it in clear), a login fails in the same words
whatever was wrong and locks after five failures, a session ends when idle, when
old, on logout and when its account is disabled, and a token is stored only as its
SHA-256, narrows its owner's role by scope and stops working when revoked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, inspect, select

from engine.app import staff
from engine.app.permissions import check, may
from engine.config import Settings
from engine.errors import (
    AccountLocked,
    AuthenticationFailed,
    InvalidAddress,
    InvalidStaffInput,
    PermissionDenied,
    StaffExists,
    StaffNotFound,
)
from engine.models import ApiToken, StaffAccount, StaffRole, StaffSession
from engine.runtime import Runtime
from engine.staff import Permission, Principal, Scope
from engine.staff.accounts import LOCK_FOR, MAX_FAILURES
from engine.staff.totp import code_at
from engine.vault import Keyring, Vault, normalize_address

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ADDRESS = "Ada.Lovelace@Northwind.Example"
OTHER = "grace.hopper@northwind.example"
PASSWORD = "correct horse battery"
P = Permission


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


def add(rt: Runtime, email: str = ADDRESS, role: str = "admin") -> int:
    return staff.add(rt, email, role, password=PASSWORD, now=NOW).id


# -- what is at rest: every column of every table, both schemas -------------------------------


def _as_bytes(value: Any) -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return [raw, raw.hex().encode("ascii")]
    if isinstance(value, str):
        return [value.encode("utf-8")]
    return [json.dumps(value, default=str, ensure_ascii=False).encode("utf-8")]


def stored(engine: Engine) -> dict[str, list[bytes]]:
    """Every value of every column of every table (main schema and keystore), as bytes,
    keyed ``schema.table.column``."""
    values: dict[str, list[bytes]] = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for schema in (None, "keystore"):
            for name in inspector.get_table_names(schema=schema):
                table = Table(name, MetaData(), schema=schema, autoload_with=conn)
                for row in conn.execute(select(table)):
                    for column, value in row._mapping.items():
                        key = f"{schema or 'main'}.{name}.{column}"
                        values.setdefault(key, []).extend(_as_bytes(value))
    return values


def found_in(engine: Engine, needles: set[bytes]) -> dict[str, list[str]]:
    """Where any of ``needles`` is stored (column -> the needles found there)."""
    hits: dict[str, list[str]] = {}
    for column, blobs in stored(engine).items():
        for needle in needles:
            if any(needle in blob for blob in blobs):
                hits.setdefault(column, []).append(needle.decode("utf-8", "replace"))
    return hits


def address_needles(address: str) -> set[bytes]:
    texts = {address, address.lower(), address.casefold(), normalize_address(address)}
    local = address.split("@", 1)[0]
    texts |= {local, local.lower()}
    return {t.encode("utf-8") for t in texts}


# -- accounts --------------------------------------------------------------------------------


def test_an_address_is_sealed_and_listed_only_when_asked(rt: Runtime, engine: Engine) -> None:
    added = staff.add(rt, ADDRESS, "editor", password=PASSWORD, now=NOW)
    assert added.role == "editor" and added.password is None  # chosen by the caller: not echoed
    generated = staff.add(rt, OTHER, "viewer", now=NOW)
    assert generated.password and len(generated.password) >= 12

    assert found_in(engine, address_needles(ADDRESS) | address_needles(OTHER)) == {}
    stored_values = stored(engine)
    # Not vacuous: the scan reads the staff table and the keystore row of each account.
    assert len(stored_values["main.staff.email_ct"]) == 2 * 2  # raw and hex, per account
    with engine.connect() as conn:
        key_ids = {r.key_id for r in conn.execute(select(StaffAccount.__table__.c.key_id))}  # type: ignore[attr-defined]
    assert len(key_ids) == 2
    keystore_ids = b"".join(stored_values["keystore.data_keys.contact_id"])
    assert all(k.hex.encode() in keystore_ids or str(k).encode() in keystore_ids for k in key_ids)
    # The password is stored as an Argon2id hash, never as itself.
    assert found_in(engine, {PASSWORD.encode(), generated.password.encode()}) == {}
    hashes = b"".join(stored_values["main.staff.password_hash"])
    assert hashes.count(b"$argon2id$") == 2

    listed = staff.list_staff(rt)
    assert [(m.id, m.email, m.role) for m in listed] == [
        (added.id, ADDRESS, StaffRole.EDITOR),
        (generated.id, OTHER, StaffRole.VIEWER),
    ]
    assert all(m.active and not m.totp for m in listed)
    assert [m.email for m in staff.list_staff(rt, with_email=False)] == [None, None]
    assert staff.find(rt, normalize_address(ADDRESS)) == added.id
    assert staff.find(rt, str(generated.id)) == generated.id


def test_a_duplicate_bad_role_short_password_or_bad_address_is_refused(
    rt: Runtime, engine: Engine
) -> None:
    first = add(rt)
    with pytest.raises(StaffExists) as exists:
        staff.add(rt, ADDRESS, "viewer", password=PASSWORD, now=NOW)
    assert ADDRESS.lower() not in str(exists.value).lower()  # the error names no address
    with pytest.raises(StaffExists):  # the same address, as the blind index normalizes it
        staff.add(rt, normalize_address(ADDRESS), "viewer", password=PASSWORD, now=NOW)
    with pytest.raises(InvalidStaffInput) as role:
        staff.add(rt, OTHER, "owner", password=PASSWORD, now=NOW)
    assert "owner" in str(role.value) and "viewer" in str(role.value)
    assert role.value.code == "invalid-staff-input"
    with pytest.raises(InvalidStaffInput) as short:
        staff.add(rt, OTHER, "viewer", password="short", now=NOW)
    assert "12" in str(short.value)
    with pytest.raises(InvalidAddress):
        staff.add(rt, "not an address", "viewer", password=PASSWORD, now=NOW)
    assert [m.id for m in staff.list_staff(rt)] == [first]  # nothing half-added
    with engine.connect() as conn:
        rows = conn.execute(select(StaffAccount.__table__)).all()  # type: ignore[attr-defined]
    assert len(rows) == 1
    with pytest.raises(StaffNotFound):
        staff.disable(rt, OTHER)
    with pytest.raises(StaffNotFound):
        staff.disable(rt, "999")


def test_disable_ends_sessions_and_tokens_at_once_and_enable_lets_logins_back(rt: Runtime) -> None:
    staff_id = add(rt)
    session = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    token = staff.create_token(rt, str(staff_id), "ci", "read", now=NOW).token
    assert staff.session(rt, session, now=NOW).staff_id == staff_id
    assert staff.authenticate_token(rt, token, now=NOW).staff_id == staff_id

    member = staff.disable(rt, ADDRESS, now=NOW + timedelta(seconds=1))
    assert not member.active and member.disabled_at == NOW + timedelta(seconds=1)
    with pytest.raises(AuthenticationFailed):
        staff.session(rt, session, now=NOW + timedelta(seconds=2))
    with pytest.raises(AuthenticationFailed):
        staff.authenticate_token(rt, token, now=NOW + timedelta(seconds=2))
    with pytest.raises(AuthenticationFailed) as refused:  # the right password, disabled
        staff.login(rt, ADDRESS, PASSWORD, now=NOW + timedelta(seconds=3))
    assert type(refused.value) is AuthenticationFailed

    assert staff.enable(rt, str(staff_id), now=NOW + timedelta(minutes=1)).active
    with pytest.raises(AuthenticationFailed):  # a session ended by the disable stays ended
        staff.session(rt, session, now=NOW + timedelta(minutes=1))
    assert staff.authenticate_token(rt, token, now=NOW + timedelta(minutes=1)).staff_id == staff_id
    again = staff.login(rt, ADDRESS, PASSWORD, now=NOW + timedelta(minutes=2))
    assert staff.session(rt, again.token, now=NOW + timedelta(minutes=2)).staff_id == staff_id


def test_a_role_change_applies_to_the_open_session(rt: Runtime) -> None:
    staff_id = add(rt, role="sender")
    session = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    assert staff.session(rt, session, now=NOW).role is StaffRole.SENDER
    assert staff.set_role(rt, ADDRESS, "viewer", now=NOW).role is StaffRole.VIEWER
    principal = staff.session(rt, session, now=NOW + timedelta(seconds=5))
    assert principal.role is StaffRole.VIEWER and principal.staff_id == staff_id
    with pytest.raises(PermissionDenied) as denied:
        check(principal, "campaigns.schedule")
    assert "viewer" in str(denied.value) and "send" in str(denied.value)
    with pytest.raises(InvalidStaffInput):
        staff.set_role(rt, ADDRESS, "superuser", now=NOW)


def test_a_password_reset_ends_every_session(rt: Runtime) -> None:
    add(rt)
    first = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    second = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    assert first != second  # a login always makes a new session
    reset = staff.reset_password(rt, ADDRESS, now=NOW + timedelta(minutes=1))
    assert reset.password and len(reset.password) >= 12
    later = NOW + timedelta(minutes=2)
    for token in (first, second):
        with pytest.raises(AuthenticationFailed):
            staff.session(rt, token, now=later)
    with pytest.raises(AuthenticationFailed):
        staff.login(rt, ADDRESS, PASSWORD, now=later)
    assert staff.login(rt, ADDRESS, reset.password, now=later).principal.role is StaffRole.ADMIN
    chosen = staff.reset_password(rt, ADDRESS, password="another long password", now=later)
    assert chosen.password is None
    with pytest.raises(InvalidStaffInput):
        staff.reset_password(rt, ADDRESS, password="tiny", now=later)


# -- authentication --------------------------------------------------------------------------


def test_a_wrong_address_and_a_wrong_password_read_the_same(rt: Runtime) -> None:
    add(rt)
    logged = staff.login(rt, ADDRESS, PASSWORD, now=NOW)
    assert logged.principal == Principal(staff_id=logged.principal.staff_id, role=StaffRole.ADMIN)
    errors = []
    for email, password in (
        (OTHER, PASSWORD),  # no such account
        (ADDRESS, "wrong password, long enough"),
        ("not an address", PASSWORD),
    ):
        with pytest.raises(AuthenticationFailed) as info:
            staff.login(rt, email, password, now=NOW)
        errors.append((type(info.value), info.value.code, str(info.value), info.value.hint))
    assert len(set(errors)) == 1, errors
    assert errors[0][0] is AuthenticationFailed and errors[0][1] == "authentication-failed"
    assert "@" not in errors[0][2]


def test_five_failures_lock_the_account_until_unlocked_or_expired(rt: Runtime) -> None:
    staff_id = add(rt)
    wrong = "not the password at all"
    for i in range(MAX_FAILURES - 1):
        with pytest.raises(AuthenticationFailed) as info:
            staff.login(rt, ADDRESS, wrong, now=NOW + timedelta(seconds=i))
        assert type(info.value) is AuthenticationFailed
    at = NOW + timedelta(seconds=MAX_FAILURES)
    with pytest.raises(AccountLocked) as locked:
        staff.login(rt, ADDRESS, wrong, now=at)
    assert locked.value.retry_after == LOCK_FOR
    assert locked.value.code == "account-locked" and "unlock" in (locked.value.hint or "")
    # The right password is refused while the lock holds, and says how long is left.
    with pytest.raises(AccountLocked) as still:
        staff.login(rt, ADDRESS, PASSWORD, now=at + timedelta(minutes=5))
    assert still.value.retry_after == LOCK_FOR - timedelta(minutes=5)
    assert [m.locked_until for m in staff.list_staff(rt)] == [at + LOCK_FOR]

    # The lock expires by itself...
    after = at + LOCK_FOR + timedelta(seconds=1)
    assert staff.login(rt, ADDRESS, PASSWORD, now=after).principal.staff_id == staff_id
    # ...and a success resets the count: four more failures do not lock.
    for i in range(MAX_FAILURES - 1):
        with pytest.raises(AuthenticationFailed) as info:
            staff.login(rt, ADDRESS, wrong, now=after + timedelta(seconds=1 + i))
        assert type(info.value) is AuthenticationFailed
    with pytest.raises(AccountLocked):
        staff.login(rt, ADDRESS, wrong, now=after + timedelta(seconds=10))
    # An admin lifts a lock at once.
    member = staff.unlock(rt, ADDRESS, now=after + timedelta(seconds=11))
    assert member.locked_until is None
    assert staff.login(rt, ADDRESS, PASSWORD, now=after + timedelta(seconds=12)).principal


def test_totp_once_enrolled_is_required(rt: Runtime) -> None:
    staff_id = add(rt)
    enrolled_id, secret = staff.enrol_totp(rt, ADDRESS, now=NOW)
    assert enrolled_id == staff_id and len(secret) == 32
    assert [m.totp for m in staff.list_staff(rt)] == [True]

    with pytest.raises(AuthenticationFailed) as missing:
        staff.login(rt, ADDRESS, PASSWORD, now=NOW)
    with pytest.raises(AuthenticationFailed) as bad_password:
        staff.login(rt, ADDRESS, "the wrong password!", now=NOW)
    assert str(missing.value) == str(bad_password.value)  # no hint that the password was right
    right = code_at(secret, NOW.timestamp())
    wrong = str((int(right) + 1) % 10**6).zfill(6)
    with pytest.raises(AuthenticationFailed):
        staff.login(rt, ADDRESS, PASSWORD, code=wrong, now=NOW)
    # A code of the moment logged in at (not of the wall clock) opens the session.
    logged = staff.login(rt, ADDRESS, PASSWORD, code=right, now=NOW)
    assert logged.principal.staff_id == staff_id
    stale = code_at(secret, (NOW - timedelta(minutes=5)).timestamp())
    with pytest.raises(AuthenticationFailed):
        staff.login(rt, ADDRESS, PASSWORD, code=stale, now=NOW)
    # The secret is sealed like the address.
    assert found_in(rt.engine, {secret.encode()}) == {}


# -- sessions --------------------------------------------------------------------------------


def test_a_session_ends_when_idle(rt: Runtime) -> None:
    add(rt)
    token = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    at = NOW
    for _ in range(5):  # a request every 25 minutes keeps it open
        at += timedelta(minutes=25)
        assert staff.session(rt, token, now=at).role is StaffRole.ADMIN
    with pytest.raises(AuthenticationFailed) as ended:
        staff.session(rt, token, now=at + timedelta(minutes=31))
    assert "sign in again" in str(ended.value)


def test_a_session_ends_after_its_absolute_lifetime(rt: Runtime) -> None:
    add(rt)
    token = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    at = NOW
    while at + timedelta(minutes=20) <= NOW + timedelta(hours=12):
        at += timedelta(minutes=20)
        staff.session(rt, token, now=at)  # never idle
    assert at == NOW + timedelta(hours=12)
    with pytest.raises(AuthenticationFailed):
        staff.session(rt, token, now=NOW + timedelta(hours=12, minutes=1))


def test_session_lifetimes_come_from_the_settings(
    settings: Settings, engine: Engine, keyring: Keyring, vault: Vault
) -> None:
    short = settings.model_copy(
        update={"console_session_idle_minutes": 5, "console_session_hours": 1}
    )
    rt = Runtime(short, configure_logging=False)
    try:
        add(rt)
        token = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
        assert staff.session(rt, token, now=NOW + timedelta(minutes=4))
        with pytest.raises(AuthenticationFailed):
            staff.session(rt, token, now=NOW + timedelta(minutes=10))
        other = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
        for minutes in range(4, 60, 4):
            staff.session(rt, other, now=NOW + timedelta(minutes=minutes))
        with pytest.raises(AuthenticationFailed):
            staff.session(rt, other, now=NOW + timedelta(minutes=62))
    finally:
        rt.close()


def test_logout_ends_the_session_and_only_its_hash_is_stored(rt: Runtime, engine: Engine) -> None:
    add(rt)
    token = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    kept = staff.login(rt, ADDRESS, PASSWORD, now=NOW).token
    digest = hashlib.sha256(token.encode()).digest()
    with engine.connect() as conn:
        hashes = set(conn.execute(select(StaffSession.__table__.c.token_hash)).scalars())  # type: ignore[attr-defined]
    assert digest in {bytes(h) for h in hashes} and len(hashes) == 2
    assert found_in(engine, {token.encode(), kept.encode()}) == {}
    assert "main.staff_sessions.token_hash" in found_in(engine, {digest})  # the scan sees it

    staff.logout(rt, token, now=NOW + timedelta(minutes=1))
    with pytest.raises(AuthenticationFailed):
        staff.session(rt, token, now=NOW + timedelta(minutes=1))
    assert staff.session(rt, kept, now=NOW + timedelta(minutes=1))  # the other one stays
    staff.logout(rt, "no-such-session", now=NOW)  # nothing to end: no error
    for junk in ("", "x" * 500):
        with pytest.raises(AuthenticationFailed):
            staff.session(rt, junk, now=NOW)


# -- tokens ----------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_as_its_hash(rt: Runtime, engine: Engine) -> None:
    staff_id = add(rt)
    created = staff.create_token(rt, ADDRESS, "deploy bot", "read,send", now=NOW)
    assert created.staff_id == staff_id and created.scopes == ("read", "send")
    assert created.token.startswith("tact_") and len(created.token) > 40
    [info] = staff.list_tokens(rt)
    assert (info.id, info.name, info.scopes) == (created.id, "deploy bot", ("read", "send"))
    assert created.token.startswith(info.prefix + "_")
    assert created.token not in repr(info)  # a listing never carries the token
    assert info.last_used_at is None and info.revoked_at is None

    assert found_in(engine, {created.token.encode()}) == {}
    digest = hashlib.sha256(created.token.encode()).digest()
    assert set(found_in(engine, {digest})) == {"main.api_tokens.token_hash"}
    assert staff.list_tokens(rt, staff_id) == [info]
    assert staff.list_tokens(rt, staff_id + 1) == []

    for scopes in ("", "read,admin", []):
        with pytest.raises(InvalidStaffInput):
            staff.create_token(rt, ADDRESS, "x", scopes, now=NOW)
    with pytest.raises(InvalidStaffInput):
        staff.create_token(rt, ADDRESS, " ", "read", now=NOW)
    with pytest.raises(StaffNotFound):
        staff.create_token(rt, OTHER, "x", "read", now=NOW)


@pytest.mark.parametrize(
    ("role", "scopes", "expected"),
    [
        ("admin", "read", {P.READ}),
        ("admin", "read,write", {P.READ, P.EDIT, P.REVEAL, P.CONTACTS}),
        ("admin", "send", {P.READ, P.SEND}),
        ("admin", "read,write,send", set(P)),
        ("sender", "read,write,send", {P.READ, P.EDIT, P.SEND, P.REVEAL}),
        ("editor", "send", {P.READ}),
        ("viewer", "read,write,send", {P.READ}),
    ],
)
def test_scopes_narrow_the_owners_role(
    rt: Runtime, role: str, scopes: str, expected: set[Permission]
) -> None:
    add(rt, role=role)
    token = staff.create_token(rt, ADDRESS, "t", scopes, now=NOW).token
    principal = staff.authenticate_token(rt, token, now=NOW)
    assert principal.permissions == frozenset(expected)
    assert principal.scopes == frozenset(Scope(s) for s in scopes.split(","))
    assert principal.actor == f"staff:{principal.staff_id}/token:{principal.token_id}"
    assert may(principal, "campaigns.schedule") is (P.SEND in expected)
    if P.ADMIN not in expected:
        with pytest.raises(PermissionDenied) as denied:
            check(principal, "audit.list")
        assert "token" in str(denied.value)


def test_a_revoked_token_is_refused_at_once_and_use_is_recorded(
    rt: Runtime, engine: Engine
) -> None:
    add(rt)
    created = staff.create_token(rt, ADDRESS, "ci", "read", now=NOW)
    for seconds in (0, 10, 59, 61, 90):
        staff.authenticate_token(rt, created.token, now=NOW + timedelta(seconds=seconds))
    [info] = staff.list_tokens(rt)
    assert info.last_used_at == NOW + timedelta(seconds=61)  # refreshed once a minute at most
    revoked = staff.revoke_token(rt, created.id, now=NOW + timedelta(minutes=2))
    assert revoked.revoked_at == NOW + timedelta(minutes=2)
    with pytest.raises(AuthenticationFailed):
        staff.authenticate_token(rt, created.token, now=NOW + timedelta(minutes=2))
    # Revoking twice keeps the first time; an unknown id or token is refused.
    assert staff.revoke_token(rt, created.id, now=NOW + timedelta(minutes=3)).revoked_at == (
        revoked.revoked_at
    )
    with pytest.raises(StaffNotFound):
        staff.revoke_token(rt, created.id + 100)
    for junk in ("tact_00000000_nope", "Bearer x", "tact_" + "a" * 200):
        with pytest.raises(AuthenticationFailed):
            staff.authenticate_token(rt, junk, now=NOW)
    with engine.connect() as conn:
        rows = conn.execute(select(ApiToken.__table__)).all()  # type: ignore[attr-defined]
    assert len(rows) == 1 and rows[0].revoked_at == revoked.revoked_at
