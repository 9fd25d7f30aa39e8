"""The keyring as an operator manages it: status, key-encryption key rotation, token keys.

Each use-case loads a keyring of its own from the settings (rotation rewrites it
and the file it came from), then asks the runtime's checked vault, so a wrong
keyring is refused before anything changes. The work is in
:mod:`engine.vault.rotation` and :class:`engine.vault.keyring.Keyring`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from engine.errors import RotationError
from engine.runtime import Runtime
from engine.vault import load_keyring
from engine.vault.rotation import pending, rotate
from engine.vault.vault import data_keys

__all__ = [
    "KekRotation",
    "KeyState",
    "KeysStatus",
    "TokenKeyAdded",
    "rotate_keks",
    "rotate_tokens",
    "status",
]


@dataclass(frozen=True)
class KekRotation:
    """A finished rotation: the new primary, how many data keys it re-wrapped, what retired."""

    new_kek_id: str
    started_new: bool
    rewrapped: int
    retired: tuple[str, ...]


def rotate_keks(
    rt: Runtime,
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KekRotation:
    """Make a new key-encryption key primary and re-wrap every data key under it.

    Safe to interrupt: run it again to resume. Fields are not re-encrypted.
    ``progress`` receives (re-wrapped so far, total).
    """
    keyring = load_keyring(rt.settings)
    rt.vault  # noqa: B018  (refuse a wrong keyring before touching anything)
    report = rotate(
        rt.engine,
        keyring,
        batch_size=batch_size or rt.settings.rotation_batch_size,
        progress=progress,
    )
    return KekRotation(
        new_kek_id=report.new_kek_id,
        started_new=report.started_new,
        rewrapped=report.rewrapped,
        retired=tuple(report.retired),
    )


@dataclass(frozen=True)
class KeyState:
    """One key-encryption key of the keyring and how many data keys it wraps."""

    id: str
    state: str
    created: str
    data_keys: int


@dataclass(frozen=True)
class KeysStatus:
    """Every key-encryption key, and the data keys still wrapped by an older one."""

    keys: tuple[KeyState, ...]
    awaiting_rewrap: int


def status(rt: Runtime) -> KeysStatus:
    """The keys in the keyring (the primary marked) and the data keys each wraps."""
    keyring = load_keyring(rt.settings)
    rt.vault  # noqa: B018
    with rt.engine.connect() as conn:
        counts: dict[str, int] = dict(
            conn.execute(
                select(data_keys.c.kek_id, func.count()).group_by(data_keys.c.kek_id)
            ).all()
        )
    keys = tuple(
        KeyState(
            id=kek.id,
            state="primary" if kek.id == keyring.primary_kek_id else kek.state,
            created=kek.created,
            data_keys=counts.get(kek.id, 0),
        )
        for kek in keyring.keks.values()
    )
    return KeysStatus(keys=keys, awaiting_rewrap=pending(rt.engine, keyring))


@dataclass(frozen=True)
class TokenKeyAdded:
    """The new token-signing key, and how long links signed before it keep working."""

    key_id: str
    grace_days: int


def rotate_tokens(rt: Runtime) -> TokenKeyAdded:
    """Add a new token-signing key; new links are signed with it, older ones still verify.

    Older token keys verify for token_grace_days after their successor was added.
    Needs a keyring file (TACT_KEYRING_FILE or the key file), rewritten atomically.
    """
    keyring = load_keyring(rt.settings)
    rt.vault  # noqa: B018  (refuse a wrong keyring before touching anything)
    if keyring.source is None:
        raise RotationError(
            "rotating token keys writes the keyring, but it came from TACT_KEYRING; "
            "use a keyring file (TACT_KEYRING_FILE or the key file)"
        )
    key = keyring.add_token_key()
    try:
        keyring.save(keyring.source)
    except OSError as exc:
        raise RotationError(f"cannot write the keyring {keyring.source}: {exc.strerror}") from None
    return TokenKeyAdded(key_id=key.id, grace_days=rt.settings.token_grace_days)
