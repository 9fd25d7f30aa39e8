"""API tokens: ``tact_<8 hex>_<43 random>``, shown once, stored as SHA-256, scoped, revocable.

The prefix (``tact_1a2b3c4d``) is kept in clear so a list can say which token is
which; the whole token is 256 bits of randomness, so a plain SHA-256 of it is
as strong as a password hash would be and costs nothing per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from engine.errors import AuthenticationFailed, InvalidStaffInput, StaffNotFound
from engine.models import ApiToken, StaffAccount, StaffRole
from engine.staff.roles import Principal, Scope, parse_scopes

tokens_t = ApiToken.__table__  # type: ignore[attr-defined]
staff_t = StaffAccount.__table__  # type: ignore[attr-defined]

#: last_used_at is written at most this often per token.
TOUCH_EVERY = timedelta(seconds=60)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    staff_id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Used:
    principal: Principal
    #: True when this use refreshed last_used_at (the caller audits it then: once a minute).
    touched: bool


def create(
    conn: Connection, staff_id: int, name: str, scopes: str | list[str], now: datetime
) -> tuple[int, str]:
    """A new token; (id, the token itself: shown once, never stored)."""
    try:
        parsed = parse_scopes(scopes)
    except ValueError as exc:
        raise InvalidStaffInput(str(exc)) from None
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidStaffInput("a token's name is 1 to 64 characters")
    if conn.execute(select(staff_t.c.id).where(staff_t.c.id == staff_id)).first() is None:
        raise StaffNotFound(f"no member of staff with id {staff_id}")
    prefix = f"tact_{secrets.token_hex(4)}"
    token = f"{prefix}_{secrets.token_urlsafe(32)}"
    result = conn.execute(
        insert(tokens_t).values(
            staff_id=staff_id,
            name=name,
            prefix=prefix,
            token_hash=digest(token),
            scopes=sorted(s.value for s in parsed),
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0]), token  # type: ignore[index]


def listing(conn: Connection, staff_id: int | None = None) -> list[TokenInfo]:
    query = select(tokens_t).order_by(tokens_t.c.id)
    if staff_id is not None:
        query = query.where(tokens_t.c.staff_id == staff_id)
    return [
        TokenInfo(
            r.id,
            r.staff_id,
            r.name,
            r.prefix,
            tuple(r.scopes or ()),
            r.created_at,
            r.last_used_at,
            r.revoked_at,
        )
        for r in conn.execute(query)
    ]


def revoke(conn: Connection, token_id: int, now: datetime) -> TokenInfo:
    row = conn.execute(select(tokens_t).where(tokens_t.c.id == token_id)).first()
    if row is None:
        raise StaffNotFound(f"no API token with id {token_id}")
    conn.execute(
        update(tokens_t)
        .where(tokens_t.c.id == token_id, tokens_t.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return next(t for t in listing(conn, row.staff_id) if t.id == token_id)


def use(conn: Connection, token: str, now: datetime) -> Used:
    """Who the token acts as; AuthenticationFailed if unknown, revoked or its owner disabled."""
    if not token.startswith("tact_") or len(token) > 120:
        raise AuthenticationFailed("the API token is not valid")
    row = conn.execute(
        select(
            tokens_t.c.id,
            tokens_t.c.staff_id,
            tokens_t.c.scopes,
            tokens_t.c.revoked_at,
            tokens_t.c.last_used_at,
            staff_t.c.role,
            staff_t.c.disabled_at,
        )
        .join(staff_t, staff_t.c.id == tokens_t.c.staff_id)
        .where(tokens_t.c.token_hash == digest(token))
    ).first()
    if row is None or row.revoked_at is not None or row.disabled_at is not None:
        raise AuthenticationFailed("the API token is not valid")
    touched = row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY
    if touched:
        conn.execute(update(tokens_t).where(tokens_t.c.id == row.id).values(last_used_at=now))
    return Used(
        Principal(
            staff_id=row.staff_id,
            role=StaffRole(row.role),
            token_id=row.id,
            scopes=frozenset(Scope(s) for s in row.scopes or ()),
        ),
        touched,
    )
