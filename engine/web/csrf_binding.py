"""One anonymous sign-up form value, one address.

The sign-up page is anonymous, so its CSRF field (``Csrf.anonymous_field``)
cannot name the address it will be used for. Instead, the first address a field
is used with is recorded server-side, and the same field with another address
is refused: one page served can no longer sign up a list of addresses. The same
field with the same address passes (a resubmission), and the opt-in module's
per-address limit still counts each request.

Storage, without a table of its own: a row of ``optin_requests`` (the table of
the per-address limits) whose ``address_hash`` is the keyed hash of the field
and whose ``topic`` is ``_csrf:`` plus a keyed tag of the address's blind index
(``Csrf.binding_keys``). Neither holds the address nor the field; neither can
match a real blind index, so the opt-in limits never count these rows. A row
lives as long as its field can be used (``ANONYMOUS_FIELD_HOURS`` and the hour
it was served in) and is deleted after that.

Concurrency: the check and the insert run in one ``writing()`` transaction. On
SQLite that holds the database's write lock; on PostgreSQL a transaction-scoped
advisory lock on the field's hash makes two requests with one field serialize.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select

from engine.errors import CsrfRejected
from engine.models import OptInRequest
from engine.web.csrf import ANONYMOUS_FIELD_HOURS, Csrf

optin_t = OptInRequest.__table__  # type: ignore[attr-defined]

PREFIX = "_csrf:"
#: How long a binding is kept: as long as the field it binds is accepted.
KEEP = timedelta(hours=ANONYMOUS_FIELD_HOURS + 2)


def bind_to_address(
    conn: Connection,
    csrf: Csrf,
    value: str,
    address_hash: bytes,
    *,
    now: datetime | None = None,
) -> None:
    """Record that ``value`` (already checked) serves this address; CsrfRejected if another.

    ``address_hash`` is the blind index of the normalized address.
    """
    now = now or datetime.now(UTC)
    field_hash, tag = csrf.binding_keys(value, address_hash)
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(field_hash[:8], "big", signed=True)
        conn.execute(select(func.pg_advisory_xact_lock(key))).all()
    # Bindings whose field can no longer be used have served their purpose.
    conn.execute(
        delete(optin_t).where(
            optin_t.c.topic.like(f"{PREFIX}%"), optin_t.c.requested_at < now - KEEP
        )
    )
    bound = set(
        conn.execute(select(optin_t.c.topic).where(optin_t.c.address_hash == field_hash)).scalars()
    )
    mine = PREFIX + tag
    if bound - {mine}:
        raise CsrfRejected("sign-up form already used for another address; reload the page")
    if not bound:
        conn.execute(insert(optin_t).values(address_hash=field_hash, topic=mine, requested_at=now))
