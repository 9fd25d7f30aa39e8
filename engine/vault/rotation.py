"""``tact keys rotate``: a new key-encryption key, data keys re-wrapped in batches.

Fields are never re-encrypted: only the small wrapped data keys change. The
sequence survives interruption at any point:

1. A new KEK is added to the keyring file as primary (old KEKs stay active), and
   its check value is stored. From now on new contacts use it.
2. Data keys still wrapped by an older KEK are re-wrapped, one committed batch
   at a time. Reads work throughout: each row names the KEK that wraps it.
3. When none remain, the old KEKs are marked retired in the keyring file and
   the keystore.

Running the command again after an interruption resumes at step 2 without
creating another key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select, update

from engine.errors import RotationError
from engine.models import AuditEvent, EventType
from engine.vault.keyring import Keyring
from engine.vault.vault import Vault, data_keys, kek_checks

log = logging.getLogger(__name__)
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]


@dataclass
class RotationReport:
    new_kek_id: str
    started_new: bool
    rewrapped: int
    retired: list[str]


def pending(engine: Engine, keyring: Keyring) -> int:
    """How many data keys are not yet wrapped by the primary KEK."""
    with engine.connect() as conn:
        count: int = conn.execute(
            select(func.count())
            .select_from(data_keys)
            .where(data_keys.c.kek_id != keyring.primary_kek_id)
        ).scalar_one()
    return count


def rotate(
    engine: Engine,
    keyring: Keyring,
    *,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
    stop_after_batches: int | None = None,
) -> RotationReport:
    """Rotate (or resume a rotation); ``stop_after_batches`` simulates an interruption in tests."""
    if keyring.source is None:
        raise RotationError(
            "rotation writes the keyring, but it came from TACT_KEYRING; "
            "use a keyring file (TACT_KEYRING_FILE or the key file)"
        )
    in_progress = len(keyring.active_keks()) > 1
    if not in_progress:
        Vault(keyring)  # validates the current keys before anything changes
        keyring.add_primary_kek()
        keyring.save(keyring.source)
    vault = Vault(keyring)
    with engine.begin() as conn:
        vault.verify(conn)  # registers the new primary's check value
        if not in_progress:
            conn.execute(
                insert(audit_t).values(
                    occurred_at=datetime.now(UTC),
                    action=EventType.KEYS_ROTATION_STARTED,
                    actor="cli",
                    detail={"kek_id": keyring.primary_kek_id},
                )
            )
    total = pending(engine, keyring)
    done = 0
    batches = 0
    while True:
        if stop_after_batches is not None and batches >= stop_after_batches:
            return RotationReport(keyring.primary_kek_id, not in_progress, done, [])
        with engine.begin() as conn:
            rows = conn.execute(
                select(
                    data_keys.c.contact_id,
                    data_keys.c.key_version,
                    data_keys.c.kek_id,
                    data_keys.c.wrapped,
                )
                .where(data_keys.c.kek_id != keyring.primary_kek_id)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            for contact_id, version, kek_id, wrapped in rows:
                data_key = vault.unwrap(contact_id, version, kek_id, wrapped)
                new_kek, new_wrapped = vault.wrap(contact_id, version, data_key)
                vault.mark_rewrapped(conn, contact_id, version, new_kek, new_wrapped)
        done += len(rows)
        batches += 1
        if progress:
            progress(done, total)
        log.info("key rotation: %d of %d data keys re-wrapped", done, total)
    retired = [k.id for k in keyring.active_keks() if k.id != keyring.primary_kek_id]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if retired:
            conn.execute(
                update(kek_checks).where(kek_checks.c.kek_id.in_(retired)).values(retired_at=now)
            )
        conn.execute(
            insert(audit_t).values(
                occurred_at=now,
                action=EventType.KEYS_ROTATION_FINISHED,
                actor="cli",
                detail={"kek_id": keyring.primary_kek_id, "retired": retired, "rewrapped": done},
            )
        )
    for kek_id in retired:
        keyring.keks[kek_id].state = "retired"
    keyring.save(keyring.source)
    return RotationReport(keyring.primary_kek_id, not in_progress, done, retired)
