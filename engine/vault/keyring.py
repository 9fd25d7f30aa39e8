"""The keyring: key-encryption keys (KEKs), the blind-index key, the token keys.

The keyring is a small JSON document kept apart from both databases: in the
embedded mode ``var/keys.json`` (mode 0600, written by ``tact init``), in
production a secret mounted as a file (``TACT_KEYRING_FILE``). It never
enters a database, a log or the broker.

Format::

    {"format": "tact-keyring/1",
     "kek": {"primary": "kek-…", "keys": [{"id": "kek-…", "key": "<base64 32 bytes>",
                                           "created": "…", "state": "active"}]},
     "blind_index_key": "<base64 32 bytes>",
     "ledger_key": "<base64 32 bytes>",
     "token_keys": [{"id": "tok-…", "key": "<base64 32 bytes>", "created": "…"}]}

A KEK is ``active`` (may unwrap; the primary also wraps) or ``retired`` (no data
key is wrapped by it any more; kept only so old keystore backups can be audited,
never used).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.errors import KeyringExposedError, MissingKeysError, PlaceholderSecretError
from engine.fsmodes import private_dirs

log = logging.getLogger(__name__)

FORMAT = "tact-keyring/1"
KEY_BYTES = 32


def _new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"


def _decode_key(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value or value.lower() in {"changeme", "change-me"}:
        raise PlaceholderSecretError(f"{what} is missing or a placeholder")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PlaceholderSecretError(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise PlaceholderSecretError(f"{what} must be {KEY_BYTES} bytes, got {len(raw)}")
    if len(set(raw)) < 8:
        raise PlaceholderSecretError(f"{what} looks like a placeholder (too few distinct bytes)")
    return raw


def _encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass
class Kek:
    id: str
    key: bytes
    created: str
    state: str = "active"


@dataclass
class TokenKey:
    id: str
    key: bytes
    created: str


@dataclass
class Keyring:
    """All secrets of one Tact installation, loaded and validated."""

    primary_kek_id: str
    keks: dict[str, Kek]
    blind_index_key: bytes
    ledger_key: bytes
    token_keys: list[TokenKey] = field(default_factory=list)
    source: Path | None = None

    @classmethod
    def generate(cls) -> Keyring:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        kek = Kek(id=_new_id("kek"), key=_new_key(), created=now)
        return cls(
            primary_kek_id=kek.id,
            keks={kek.id: kek},
            blind_index_key=_new_key(),
            ledger_key=_new_key(),
            token_keys=[TokenKey(id=_new_id("tok"), key=_new_key(), created=now)],
        )

    @property
    def primary(self) -> Kek:
        return self.keks[self.primary_kek_id]

    def add_token_key(self) -> TokenKey:
        """A new primary token-signing key; older ones keep verifying for the grace period."""
        key = TokenKey(id=_new_id("tok"), key=_new_key(), created=datetime.now(UTC).isoformat())
        self.token_keys.insert(0, key)
        return key

    def active_keks(self) -> list[Kek]:
        return [k for k in self.keks.values() if k.state == "active"]

    def add_primary_kek(self) -> Kek:
        """A new KEK becomes primary; the old ones stay active until re-wrapping ends."""
        kek = Kek(id=_new_id("kek"), key=_new_key(), created=datetime.now(UTC).isoformat())
        self.keks[kek.id] = kek
        self.primary_kek_id = kek.id
        return kek

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "kek": {
                "primary": self.primary_kek_id,
                "keys": [
                    {"id": k.id, "key": _encode_key(k.key), "created": k.created, "state": k.state}
                    for k in self.keks.values()
                ],
            },
            "blind_index_key": _encode_key(self.blind_index_key),
            "ledger_key": _encode_key(self.ledger_key),
            "token_keys": [
                {"id": t.id, "key": _encode_key(t.key), "created": t.created}
                for t in self.token_keys
            ],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: Path | None = None) -> Keyring:
        where = str(source) if source else "the keyring"
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            raise PlaceholderSecretError(f"{where} is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PlaceholderSecretError(f"{where} is not a {FORMAT} document")
        try:
            kek_doc = doc["kek"]
            keks = {
                k["id"]: Kek(
                    id=k["id"],
                    key=_decode_key(k.get("key"), f"KEK {k['id']} in {where}"),
                    created=k.get("created", ""),
                    state=k.get("state", "active"),
                )
                for k in kek_doc["keys"]
            }
            primary = kek_doc["primary"]
            tokens = [
                TokenKey(
                    id=t["id"],
                    key=_decode_key(t.get("key"), f"token key {t['id']} in {where}"),
                    created=t.get("created", ""),
                )
                for t in doc.get("token_keys", [])
            ]
        except (KeyError, TypeError):
            raise PlaceholderSecretError(f"{where} is missing required entries") from None
        if primary not in keks or keks[primary].state != "active":
            raise PlaceholderSecretError(f"{where}: the primary KEK is missing or retired")
        if not tokens:
            raise PlaceholderSecretError(f"{where}: no token key")
        return cls(
            primary_kek_id=primary,
            keks=keks,
            blind_index_key=_decode_key(doc.get("blind_index_key"), f"blind index key in {where}"),
            ledger_key=_decode_key(doc.get("ledger_key"), f"ledger key in {where}"),
            token_keys=tokens,
            source=source,
        )

    def save(self, path: Path) -> None:
        """Write atomically with mode 0600: a crash leaves the old file or the new, never half."""
        private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        self.source = path


def exposure(path: Path) -> str | None:
    """How a keyring file is open to other users ("group", "others"), or None if private."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    who = [name for name, bits in (("group", 0o070), ("others", 0o007)) if mode & bits]
    return f"mode {mode & 0o777:04o}, open to {' and '.join(who)}" if who else None


def secret_file_warning() -> str | None:
    """A warning when the TACT_KEYRING_FILE secret is readable beyond its owner.

    Only a warning: a Docker Compose secret is a bind mount that keeps the host
    file's mode, Swarm mounts secrets 0444 and Kubernetes 0644 by default, inside a
    container that no other user shares. Refusing would break those setups; the key
    file that Tact itself creates (key_file) is refused instead.
    """
    source = os.environ.get("TACT_KEYRING_FILE")
    who = exposure(Path(source)) if source else None
    if not who:
        return None
    return (
        f"the keyring secret {source} (TACT_KEYRING_FILE) has {who}: "
        f"run `chmod 600 {source}` unless it is a container secret only its service sees"
    )


def load_keyring(settings: Settings) -> Keyring:
    """The keyring from TACT_KEYRING(_FILE) or the key file; refuse to go on without one.

    The key file (var/keys.json) must be private: Tact writes it 0600, so a file that
    group or others can read was opened up by hand, and every key would be exposed.
    """
    if settings.keyring is not None:
        source = os.environ.get("TACT_KEYRING_FILE")
        warning = secret_file_warning()
        if warning:
            log.warning(warning)
        return Keyring.from_json(
            settings.keyring.get_secret_value(), Path(source) if source else None
        )
    path = settings.resolved_key_file
    if not path.exists():
        raise MissingKeysError(
            f"No keys found at {path}. Run `tact init` to create them for the embedded mode, "
            "or set TACT_KEYRING_FILE to the keyring of this installation."
        )
    who = exposure(path) if path.is_file() else None
    if who:
        raise KeyringExposedError(
            f"the key file {path} has {who}, which exposes every key: "
            f"run `chmod 600 {path}` (Tact writes it 0600)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise PlaceholderSecretError(f"cannot read the keyring {path}: {reason}") from None
    return Keyring.from_json(text, path)
