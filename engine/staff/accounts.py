"""Staff accounts: add, list, disable, change role or password, authenticate.

An address is validated and normalized like a contact's, sealed under a data
key of the account's own (a ``data_keys`` row keyed by ``staff.key_id``, so key
rotation re-wraps it with the rest) and found by blind index: the table holds
no address in clear.

Authentication answers every failure with the same :class:`AuthenticationFailed`
and does the same Argon2 work whether or not the address has an account. After
:data:`MAX_FAILURES` failures in a row an account is locked for
:data:`LOCK_FOR`; a login while locked fails with :class:`AccountLocked` even
with the right password (the lock is what stops a guesser, not a hint).

A login from a device the account signed in on before (``device_for``: the console's
signed device cookie, still trusted) is not refused by that lock, and neither adds to
nor clears the account's count: anyone who knows an address can lock the account,
but not its owner's own browser out. That device's own failures are counted by the
caller (engine.app.staff: in memory, per device).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from engine.errors import (
    AccountLocked,
    AuthenticationFailed,
    InvalidAddress,
    InvalidStaffInput,
    StaffExists,
    StaffNotFound,
    VaultError,
)
from engine.models import StaffAccount, StaffRole
from engine.staff import passwords, totp
from engine.vault import Vault
from engine.vault.vault import data_keys

staff_t = StaffAccount.__table__  # type: ignore[attr-defined]

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
_TABLE = "staff"


@dataclass(frozen=True)
class StaffMember:
    """One account as an admin sees it. ``email`` is filled only when asked for."""

    id: int
    role: StaffRole
    created_at: datetime
    disabled_at: datetime | None
    locked_until: datetime | None
    last_login_at: datetime | None
    totp: bool
    email: str | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def _role(value: str) -> StaffRole:
    try:
        return StaffRole(value)
    except ValueError:
        known = ", ".join(r.value for r in StaffRole)
        raise InvalidStaffInput(f"unknown role {value!r} (known: {known})") from None


def _hash_password(password: str) -> str:
    try:
        return passwords.hash_password(password)
    except ValueError as exc:
        raise InvalidStaffInput(str(exc)) from None


def _index(vault: Vault, email: str) -> bytes:
    try:
        return vault.index_for(email)
    except InvalidAddress:
        raise
    except ValueError as exc:  # pragma: no cover - index_for raises InvalidAddress
        raise InvalidAddress(str(exc)) from None


def add(conn: Connection, vault: Vault, email: str, role: str, password: str, now: datetime) -> int:
    """A new account; its id. StaffExists when the address has one already."""
    staff_role = _role(role)
    pw_hash = _hash_password(password)
    email_hash = _index(vault, email)
    if conn.execute(select(staff_t.c.id).where(staff_t.c.email_hash == email_hash)).first():
        raise StaffExists("a member of staff with that address exists already")
    key_id = uuid.uuid4()
    key_row, cipher = vault.new_contact_key(key_id)
    conn.execute(insert(data_keys).values(**key_row))
    sealed = cipher.seal("email", email.strip(), table=_TABLE)
    if sealed is None:  # seal() gives None only for None, and an address is a string
        raise VaultError("the address could not be sealed")
    result = conn.execute(
        insert(staff_t).values(
            key_id=key_id,
            email_hash=email_hash,
            email_ct=sealed,
            role=staff_role.value,
            password_hash=pw_hash,
            created_at=now,
            failed_logins=0,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def _member(row: Any, email: str | None = None) -> StaffMember:
    return StaffMember(
        id=row.id,
        role=StaffRole(row.role),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        locked_until=row.locked_until,
        last_login_at=row.last_login_at,
        totp=row.totp_ct is not None,
        email=email,
    )


def members(conn: Connection, vault: Vault, *, with_email: bool = False) -> list[StaffMember]:
    rows = conn.execute(select(staff_t).order_by(staff_t.c.id)).all()
    emails: dict[int, str | None] = {}
    if with_email and rows:
        ciphers = vault.ciphers(conn, [(r.key_id, 1) for r in rows])
        for r in rows:
            cipher = ciphers.get(r.key_id)
            emails[r.id] = cipher.open("email", r.email_ct, table=_TABLE) if cipher else None
    return [_member(r, emails.get(r.id)) for r in rows]


def get(conn: Connection, staff_id: int) -> StaffMember:
    row = conn.execute(select(staff_t).where(staff_t.c.id == staff_id)).first()
    if row is None:
        raise StaffNotFound(f"no member of staff with id {staff_id}")
    return _member(row)


def email_of(conn: Connection, vault: Vault, staff_id: int) -> str:
    row = conn.execute(select(staff_t).where(staff_t.c.id == staff_id)).first()
    if row is None:
        raise StaffNotFound(f"no member of staff with id {staff_id}")
    cipher = vault.ciphers(conn, [(row.key_id, 1)]).get(row.key_id)
    if cipher is None:
        raise StaffNotFound(f"member of staff {staff_id} has no data key")
    value = cipher.open("email", row.email_ct, table=_TABLE)
    if value is None:
        raise StaffNotFound(f"member of staff {staff_id} has no address on record")
    return value


def find(conn: Connection, vault: Vault, ref: str) -> int:
    """The id of the account named by an address or a numeric id."""
    if ref.isdigit():
        return get(conn, int(ref)).id
    row = conn.execute(
        select(staff_t.c.id).where(staff_t.c.email_hash == _index(vault, ref))
    ).first()
    if row is None:
        raise StaffNotFound("no member of staff with that address")
    return int(row.id)


def set_disabled(conn: Connection, staff_id: int, now: datetime | None) -> None:
    get(conn, staff_id)
    conn.execute(update(staff_t).where(staff_t.c.id == staff_id).values(disabled_at=now))


def set_role(conn: Connection, staff_id: int, role: str) -> None:
    get(conn, staff_id)
    conn.execute(update(staff_t).where(staff_t.c.id == staff_id).values(role=_role(role).value))


def set_password(conn: Connection, staff_id: int, password: str) -> None:
    get(conn, staff_id)
    conn.execute(
        update(staff_t)
        .where(staff_t.c.id == staff_id)
        .values(password_hash=_hash_password(password), failed_logins=0, locked_until=None)
    )


def unlock(conn: Connection, staff_id: int) -> None:
    get(conn, staff_id)
    conn.execute(
        update(staff_t).where(staff_t.c.id == staff_id).values(failed_logins=0, locked_until=None)
    )


def enrol_totp(conn: Connection, vault: Vault, staff_id: int) -> str:
    """A new TOTP secret for the account (sealed); returned once, to show as a QR/URI."""
    row = conn.execute(select(staff_t).where(staff_t.c.id == staff_id)).first()
    if row is None:
        raise StaffNotFound(f"no member of staff with id {staff_id}")
    secret = totp.new_secret()
    cipher = vault.ciphers(conn, [(row.key_id, 1)])[row.key_id]
    conn.execute(
        update(staff_t)
        .where(staff_t.c.id == staff_id)
        .values(totp_ct=cipher.seal("totp", secret, table=_TABLE))
    )
    return secret


@dataclass(frozen=True)
class LoginAttempt:
    """What a login attempt did: the account (when the address had one) and the outcome."""

    staff_id: int | None
    ok: bool
    #: "ok", "bad-credentials", "locked", "disabled", "second-factor"
    outcome: str
    role: StaffRole | None = None
    retry_after: timedelta | None = None
    #: The attempt came from a trusted device of this account: the account lock was not
    #: applied and the account's count of failures was left alone.
    device: bool = False
    #: A trusted device got in while the account was locked (the lock stays for the rest).
    past_lock: bool = False


def authenticate(
    conn: Connection,
    vault: Vault,
    email: str,
    password: str,
    now: datetime,
    *,
    code: str | None = None,
    device_for: int | None = None,
) -> LoginAttempt:
    """Check a login and record its effect on the account (failures, lock, last login).

    ``device_for`` is the account a trusted device of the caller signed in to before: when
    it is this address's account, the lock does not apply and the account's failures are
    neither counted nor reset (the attempt says ``device``). Any other id changes nothing.

    Never raises for a wrong guess: the caller audits the attempt, then raises
    :class:`AuthenticationFailed` (or :class:`AccountLocked`) for anything not ok.
    """
    try:
        email_hash = vault.index_for(email)
    except InvalidAddress:
        passwords.verify_password(None, password)
        return LoginAttempt(None, False, "bad-credentials")
    row = conn.execute(select(staff_t).where(staff_t.c.email_hash == email_hash)).first()
    if row is None:
        passwords.verify_password(None, password)
        return LoginAttempt(None, False, "bad-credentials")
    device = device_for is not None and row.id == device_for
    locked = row.locked_until is not None and row.locked_until > now
    if locked and not device:
        passwords.verify_password(None, password)
        return LoginAttempt(row.id, False, "locked", retry_after=row.locked_until - now)
    good = passwords.verify_password(row.password_hash, password)
    if good and row.totp_ct is not None:
        cipher = vault.ciphers(conn, [(row.key_id, 1)])[row.key_id]
        secret = cipher.open("totp", row.totp_ct, table=_TABLE)
        good = (
            bool(code)
            and secret is not None
            and totp.verify(secret, code or "", moment=now.timestamp())
        )
        outcome_if_bad = "second-factor"
    else:
        outcome_if_bad = "bad-credentials"
    if not good and device:
        return LoginAttempt(row.id, False, outcome_if_bad, device=True)
    if not good:
        failures = (row.failed_logins or 0) + 1
        locked = now + LOCK_FOR if failures >= MAX_FAILURES else None
        conn.execute(
            update(staff_t)
            .where(staff_t.c.id == row.id)
            .values(failed_logins=0 if locked else failures, locked_until=locked)
        )
        if locked:
            return LoginAttempt(row.id, False, "locked", retry_after=LOCK_FOR)
        return LoginAttempt(row.id, False, outcome_if_bad)
    if row.disabled_at is not None:
        return LoginAttempt(row.id, False, "disabled", device=device)
    values: dict[str, Any] = {"last_login_at": now}
    if not device:  # a device's success says nothing of the guesses made elsewhere
        values.update(failed_logins=0, locked_until=None)
    if passwords.needs_rehash(row.password_hash):
        values["password_hash"] = passwords.hash_password(password)
    conn.execute(update(staff_t).where(staff_t.c.id == row.id).values(**values))
    return LoginAttempt(
        row.id, True, "ok", role=StaffRole(row.role), device=device, past_lock=device and locked
    )


def refuse(attempt: LoginAttempt) -> AuthenticationFailed:
    """The error a failed attempt raises: the same words for every reason but a lock."""
    if attempt.outcome == "locked" and attempt.retry_after is not None:
        return AccountLocked(attempt.retry_after)
    return AuthenticationFailed("the address, password or code is not right")
