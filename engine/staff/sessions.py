"""Console sessions, server-side: the cookie holds a random token, the table its SHA-256.

A session ends after :data:`IDLE` without a request, after :data:`ABSOLUTE` in
any case, on logout, and when its account is disabled. A login always creates a
new session (a token planted before login is never promoted: no fixation).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from engine.errors import AuthenticationFailed
from engine.models import StaffAccount, StaffRole, StaffSession
from engine.staff.roles import Principal

sessions_t = StaffSession.__table__  # type: ignore[attr-defined]
staff_t = StaffAccount.__table__  # type: ignore[attr-defined]

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
#: last_seen_at is written at most this often (a page view is not a write each time).
TOUCH_EVERY = timedelta(seconds=60)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def create(conn: Connection, staff_id: int, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    conn.execute(
        insert(sessions_t).values(
            token_hash=digest(token), staff_id=staff_id, created_at=now, last_seen_at=now
        )
    )
    return token


def principal(
    conn: Connection,
    token: str,
    now: datetime,
    *,
    idle: timedelta = IDLE,
    absolute: timedelta = ABSOLUTE,
) -> Principal:
    """Who the session is; AuthenticationFailed if it is unknown, ended or its account is
    disabled. Refreshes its last-seen time (at most once a minute)."""
    if not token or len(token) > 200:
        raise AuthenticationFailed("not signed in")
    row = conn.execute(
        select(
            sessions_t.c.token_hash,
            sessions_t.c.staff_id,
            sessions_t.c.created_at,
            sessions_t.c.last_seen_at,
            sessions_t.c.revoked_at,
            staff_t.c.role,
            staff_t.c.disabled_at,
        )
        .join(staff_t, staff_t.c.id == sessions_t.c.staff_id)
        .where(sessions_t.c.token_hash == digest(token))
    ).first()
    if (
        row is None
        or row.revoked_at is not None
        or row.disabled_at is not None
        or now - row.last_seen_at > idle
        or now - row.created_at > absolute
    ):
        raise AuthenticationFailed("the session has ended: sign in again")
    if now - row.last_seen_at > TOUCH_EVERY:
        conn.execute(
            update(sessions_t)
            .where(sessions_t.c.token_hash == row.token_hash)
            .values(last_seen_at=now)
        )
    return Principal(staff_id=row.staff_id, role=StaffRole(row.role))


def revoke(conn: Connection, token: str, now: datetime) -> int | None:
    """End one session; the staff id it belonged to (None if unknown)."""
    row = conn.execute(
        select(sessions_t.c.staff_id).where(sessions_t.c.token_hash == digest(token))
    ).first()
    conn.execute(
        update(sessions_t)
        .where(sessions_t.c.token_hash == digest(token), sessions_t.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(row.staff_id) if row else None


def revoke_all(conn: Connection, staff_id: int, now: datetime) -> None:
    conn.execute(
        update(sessions_t)
        .where(sessions_t.c.staff_id == staff_id, sessions_t.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
