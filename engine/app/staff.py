"""Staff use-cases: accounts, console logins and sessions, API tokens, permission checks.

The CLI acts as the machine's operator (it may do everything); the console and
the API act as a :class:`~engine.staff.Principal` and call :func:`require`
before each use-case. Every change and every login is audited (``staff.*``,
``login.*``, ``token.*``), naming staff by id, never by address.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.audit import record
from engine.db import writing
from engine.errors import AuthenticationFailed, PermissionDenied
from engine.runtime import Runtime
from engine.staff import Permission, Principal, accounts, sessions, tokens
from engine.staff.accounts import StaffMember
from engine.staff.tokens import TokenInfo

__all__ = [
    "Added",
    "Device",
    "Devices",
    "LoggedIn",
    "StaffMember",
    "TokenCreated",
    "TokenInfo",
    "add",
    "authenticate_token",
    "create_token",
    "disable",
    "list_staff",
    "list_tokens",
    "login",
    "logout",
    "require",
    "revoke_token",
    "session",
]


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def require(principal: Principal, permission: Permission) -> None:
    """PermissionDenied unless the principal's role (and token scope) allow ``permission``."""
    if not principal.may(permission):
        via = " with this token's scopes" if principal.token_id is not None else ""
        raise PermissionDenied(
            f"the {principal.role} role{via} may not do this (it needs {permission})",
            hint="ask an admin for a role or a token that allows it",
        )


@dataclass(frozen=True)
class Added:
    id: int
    role: str
    #: The password, when Tact chose it: shown once, never stored.
    password: str | None


def add(
    rt: Runtime, email: str, role: str, *, password: str | None = None, now: datetime | None = None
) -> Added:
    now = _now(now)
    chosen = password is None
    password = password or secrets.token_urlsafe(15)
    with writing(rt.engine) as conn:
        staff_id = accounts.add(conn, rt.vault, email, role, password, now)
        record(conn, "staff.added", now, staff_id=staff_id, role=role)
    return Added(staff_id, role, password if chosen else None)


def list_staff(rt: Runtime, *, with_email: bool = True) -> list[StaffMember]:
    with rt.engine.connect() as conn:
        return accounts.members(conn, rt.vault, with_email=with_email)


def find(rt: Runtime, ref: str) -> int:
    with rt.engine.connect() as conn:
        return accounts.find(conn, rt.vault, ref)


def own_address(rt: Runtime, staff_id: int) -> str:
    """A member of staff's own address (where their test sends may go); never logged."""
    with rt.engine.connect() as conn:
        return accounts.email_of(conn, rt.vault, staff_id)


def disable(rt: Runtime, ref: str, *, now: datetime | None = None) -> StaffMember:
    """Disable an account: its sessions end and its tokens stop working at once."""
    now = _now(now)
    with writing(rt.engine) as conn:
        staff_id = accounts.find(conn, rt.vault, ref)
        accounts.set_disabled(conn, staff_id, now)
        sessions.revoke_all(conn, staff_id, now)
        record(conn, "staff.disabled", now, staff_id=staff_id)
        return accounts.get(conn, staff_id)


def enable(rt: Runtime, ref: str, *, now: datetime | None = None) -> StaffMember:
    now = _now(now)
    with writing(rt.engine) as conn:
        staff_id = accounts.find(conn, rt.vault, ref)
        accounts.set_disabled(conn, staff_id, None)
        record(conn, "staff.enabled", now, staff_id=staff_id)
        return accounts.get(conn, staff_id)


def set_role(rt: Runtime, ref: str, role: str, *, now: datetime | None = None) -> StaffMember:
    now = _now(now)
    with writing(rt.engine) as conn:
        staff_id = accounts.find(conn, rt.vault, ref)
        accounts.set_role(conn, staff_id, role)
        record(conn, "staff.role-changed", now, staff_id=staff_id, role=role)
        return accounts.get(conn, staff_id)


def unlock(rt: Runtime, ref: str, *, now: datetime | None = None) -> StaffMember:
    now = _now(now)
    with writing(rt.engine) as conn:
        staff_id = accounts.find(conn, rt.vault, ref)
        accounts.unlock(conn, staff_id)
        record(conn, "staff.unlocked", now, staff_id=staff_id)
        return accounts.get(conn, staff_id)


def reset_password(
    rt: Runtime, ref: str, *, password: str | None = None, now: datetime | None = None
) -> Added:
    """A new password (chosen by Tact when none is given); every session of the account ends."""
    now = _now(now)
    chosen = password is None
    password = password or secrets.token_urlsafe(15)
    with writing(rt.engine) as conn:
        staff_id = accounts.find(conn, rt.vault, ref)
        accounts.set_password(conn, staff_id, password)
        sessions.revoke_all(conn, staff_id, now)
        record(conn, "staff.password-reset", now, staff_id=staff_id)
        member = accounts.get(conn, staff_id)
    return Added(staff_id, member.role.value, password if chosen else None)


def enrol_totp(rt: Runtime, ref: str, *, now: datetime | None = None) -> tuple[int, str]:
    """Turn on the second factor; (staff id, the secret to put in an authenticator app)."""
    now = _now(now)
    with writing(rt.engine) as conn:
        staff_id = accounts.find(conn, rt.vault, ref)
        secret = accounts.enrol_totp(conn, rt.vault, staff_id)
        record(conn, "staff.totp-enrolled", now, staff_id=staff_id)
    return staff_id, secret


# -- console sessions ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedIn:
    #: The session token for the cookie (never stored: the table holds its hash).
    token: str
    principal: Principal


@dataclass(frozen=True)
class Device:
    """A browser that signed in to account ``staff_id`` before: what a face read from its
    signed device cookie (the console's ``tact_device``). ``id`` is the cookie's random
    part; it is never logged or audited, only a digest of it (:attr:`tag`)."""

    staff_id: int
    id: str

    @property
    def tag(self) -> str:
        """A short digest naming the device in the audit log (not the cookie, not a person)."""
        return hashlib.sha256(self.id.encode("utf-8")).hexdigest()[:12]


class Devices:
    """Wrong logins made from each trusted device, in memory (per server process, bounded).

    After ``max_failures`` of them in a row a device is not trusted for ``distrust_for``:
    its logins are then like any other (the account lock applies, failures count against
    the account). A success from the device starts its count again.
    """

    #: Devices tracked at most (the oldest forgotten first), so a flood cannot grow it.
    MAX_DEVICES = 10_000

    def __init__(
        self,
        max_failures: int = accounts.MAX_FAILURES,
        distrust_for: timedelta = accounts.LOCK_FOR,
    ) -> None:
        self.max_failures = max_failures
        self.distrust_for = distrust_for
        #: device id -> (failures in a row, distrusted until)
        self._seen: OrderedDict[str, tuple[int, datetime | None]] = OrderedDict()
        self._lock = threading.Lock()

    def trusted(self, device_id: str, now: datetime) -> bool:
        with self._lock:
            _, until = self._seen.get(device_id, (0, None))
            if until is not None and until <= now:  # the distrust has run out: start again
                self._seen.pop(device_id, None)
                return True
            return until is None

    def failed(self, device_id: str, now: datetime) -> bool:
        """Count one wrong login from the device; True when this one made it untrusted."""
        with self._lock:
            failures, until = self._seen.pop(device_id, (0, None))
            failures += 1
            cut_off = until is None and failures >= self.max_failures
            if cut_off:
                until = now + self.distrust_for
            self._seen[device_id] = (failures, until)
            while len(self._seen) > self.MAX_DEVICES:
                self._seen.popitem(last=False)
            return cut_off

    def succeeded(self, device_id: str) -> None:
        with self._lock:
            self._seen.pop(device_id, None)


def login(
    rt: Runtime,
    email: str,
    password: str,
    *,
    code: str | None = None,
    now: datetime | None = None,
    device: Device | None = None,
    devices: Devices | None = None,
) -> LoggedIn:
    """A new session, or AuthenticationFailed / AccountLocked. Every attempt is audited.

    ``device`` (a checked device cookie) and ``devices`` (its face's failure counts): a
    device still trusted for the account the address names is let through that account's
    lock, and its wrong logins count against it instead of the account (see
    :class:`Devices`). Audited: ``login.succeeded`` / ``login.failed`` say ``device`` (its
    tag) when one was honoured, ``past_lock`` when it got in while the account was locked;
    ``login.device-distrusted`` when a device has failed too often.
    """
    now = _now(now)
    trusted = device is not None and devices is not None and devices.trusted(device.id, now)
    device_for = device.staff_id if trusted and device is not None else None
    with writing(rt.engine) as conn:
        attempt = accounts.authenticate(
            conn, rt.vault, email, password, now, code=code, device_for=device_for
        )
        honoured: dict[str, Any] = {}
        if attempt.device and device is not None:
            honoured["device"] = device.tag
        if not attempt.ok:
            actor = f"staff:{attempt.staff_id}" if attempt.staff_id else "anonymous"
            record(
                conn,
                "login.failed",
                now,
                actor=actor,
                staff_id=attempt.staff_id,
                outcome=attempt.outcome,
                **honoured,
            )
            wrong = attempt.outcome in ("bad-credentials", "second-factor")
            if attempt.device and wrong and device is not None and devices is not None:
                if devices.failed(device.id, now):
                    record(
                        conn,
                        "login.device-distrusted",
                        now,
                        actor=actor,
                        staff_id=attempt.staff_id,
                        device=device.tag,
                        until=now + devices.distrust_for,
                    )
        else:
            if attempt.staff_id is None or attempt.role is None:  # an ok attempt names both
                raise AuthenticationFailed("the address, password or code is not right")
            token = sessions.create(conn, attempt.staff_id, now)
            if attempt.past_lock:
                honoured["past_lock"] = True
            record(
                conn,
                "login.succeeded",
                now,
                actor=f"staff:{attempt.staff_id}",
                staff_id=attempt.staff_id,
                **honoured,
            )
            if attempt.device and device is not None and devices is not None:
                devices.succeeded(device.id)
    if not attempt.ok or attempt.staff_id is None or attempt.role is None:
        raise accounts.refuse(attempt)
    return LoggedIn(token, Principal(staff_id=attempt.staff_id, role=attempt.role))


def session(rt: Runtime, token: str, *, now: datetime | None = None) -> Principal:
    """Who a console session is (AuthenticationFailed when it has ended)."""
    now = _now(now)
    idle = timedelta(minutes=rt.settings.console_session_idle_minutes)
    absolute = timedelta(hours=rt.settings.console_session_hours)
    with writing(rt.engine) as conn:
        return sessions.principal(conn, token, now, idle=idle, absolute=absolute)


def logout(rt: Runtime, token: str, *, now: datetime | None = None) -> None:
    now = _now(now)
    with writing(rt.engine) as conn:
        staff_id = sessions.revoke(conn, token, now)
        if staff_id is not None:
            record(conn, "logout", now, actor=f"staff:{staff_id}", staff_id=staff_id)


# -- API tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCreated:
    id: int
    staff_id: int
    name: str
    scopes: tuple[str, ...]
    #: The token: shown once, never stored.
    token: str


def create_token(
    rt: Runtime, staff_ref: str, name: str, scopes: str | list[str], *, now: datetime | None = None
) -> TokenCreated:
    now = _now(now)
    with writing(rt.engine) as conn:
        staff_id = accounts.find(conn, rt.vault, staff_ref)
        token_id, token = tokens.create(conn, staff_id, name, scopes, now)
        info = next(t for t in tokens.listing(conn, staff_id) if t.id == token_id)
        record(
            conn,
            "token.created",
            now,
            staff_id=staff_id,
            token_id=token_id,
            scopes=list(info.scopes),
        )
    return TokenCreated(token_id, staff_id, info.name, info.scopes, token)


def list_tokens(rt: Runtime, staff_id: int | None = None) -> list[TokenInfo]:
    with rt.engine.connect() as conn:
        return tokens.listing(conn, staff_id)


def revoke_token(rt: Runtime, token_id: int, *, now: datetime | None = None) -> TokenInfo:
    now = _now(now)
    with writing(rt.engine) as conn:
        info = tokens.revoke(conn, token_id, now)
        record(conn, "token.revoked", now, staff_id=info.staff_id, token_id=token_id)
    return info


def authenticate_token(rt: Runtime, token: str, *, now: datetime | None = None) -> Principal:
    """Who an API token acts as (AuthenticationFailed if unknown, revoked or disabled).
    Its use is audited at most once a minute per token (``token.used``)."""
    now = _now(now)
    with writing(rt.engine) as conn:
        used = tokens.use(conn, token, now)
        if used.touched:
            record(
                conn,
                "token.used",
                now,
                actor=used.principal.actor,
                staff_id=used.principal.staff_id,
                token_id=used.principal.token_id,
            )
    return used.principal
