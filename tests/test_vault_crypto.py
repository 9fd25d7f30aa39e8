"""Envelope encryption: ciphertext is bound to its table, column, row and key version."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from engine.config import Settings
from engine.errors import DecryptionError, KeyMismatchError
from engine.vault import Keyring, Vault
from engine.vault.vault import contacts, data_keys
from tests.helpers import contact_ids, import_rows, people


@pytest.fixture
def two(engine: Engine, vault: Vault, settings: Settings) -> list[object]:
    import_rows(engine, vault, settings, people(2))
    return contact_ids(engine)


def test_fields_round_trip_and_are_not_stored_in_clear(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    rows = people(3)
    rows[0]["first_name"] = "美玲"
    rows[1]["last_name"] = "אברהם"
    rows[2]["first_name"] = "Zoë 😀"
    import_rows(engine, vault, settings, rows)
    ids = contact_ids(engine)
    with engine.connect() as conn:
        read = vault.read(conn, ids, ["email", "first_name", "last_name"], purpose="test")
        raw = conn.execute(select(contacts)).all()
    assert {p.email for p in read.values()} == {r["email"] for r in rows}
    assert {p.first_name for p in read.values()} >= {"美玲", "Zoë 😀"}
    dump = repr(raw).encode()
    for row in rows:
        assert row["email"].encode() not in dump


def test_ciphertext_moved_to_another_row_fails(
    engine: Engine, vault: Vault, two: list[object]
) -> None:
    a, b = two
    with engine.begin() as conn:
        stolen = conn.execute(select(contacts.c.email_ct).where(contacts.c.id == a)).scalar_one()
        conn.execute(update(contacts).where(contacts.c.id == b).values(email_ct=stolen))
    with engine.connect() as conn, pytest.raises(DecryptionError) as info:
        vault.read(conn, [b], ["email"], purpose="test")
    assert "contacts.email_ct" in str(info.value)
    assert "@" not in str(info.value)


def test_ciphertext_moved_to_another_column_fails(
    engine: Engine, vault: Vault, two: list[object]
) -> None:
    a, _ = two
    with engine.begin() as conn:
        first = conn.execute(
            select(contacts.c.first_name_ct).where(contacts.c.id == a)
        ).scalar_one()
        conn.execute(update(contacts).where(contacts.c.id == a).values(last_name_ct=first))
    with engine.connect() as conn, pytest.raises(DecryptionError):
        vault.read(conn, [a], ["last_name"], purpose="test")


def test_key_version_is_bound(engine: Engine, vault: Vault, two: list[object]) -> None:
    a, _ = two
    with engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == a).values(key_version=2))
        conn.execute(update(data_keys).where(data_keys.c.contact_id == a).values(key_version=2))
    with engine.connect() as conn, pytest.raises(DecryptionError):
        vault.read(conn, [a], ["email"], purpose="test")


def test_altered_ciphertext_fails(engine: Engine, vault: Vault, two: list[object]) -> None:
    a, _ = two
    with engine.begin() as conn:
        blob = conn.execute(select(contacts.c.email_ct).where(contacts.c.id == a)).scalar_one()
        flipped = blob[:-1] + bytes([blob[-1] ^ 1])
        conn.execute(update(contacts).where(contacts.c.id == a).values(email_ct=flipped))
    with engine.connect() as conn, pytest.raises(DecryptionError):
        vault.read(conn, [a], ["email"], purpose="test")


def test_wrong_keyring_is_refused_plainly(
    engine: Engine, vault: Vault, settings: Settings, two: list[object]
) -> None:
    other = Keyring.generate()
    with engine.begin() as conn, pytest.raises(KeyMismatchError) as info:
        Vault(other).verify(conn)
    assert "not an active key" in str(info.value)
    # Same key id, different key bytes: the check value does not open.
    forged = Keyring.from_json(vault.keyring.to_json())
    forged.keks[forged.primary_kek_id].key = other.primary.key
    with engine.begin() as conn, pytest.raises(KeyMismatchError) as info2:
        Vault(forged).verify(conn)
    assert "not the key this database was created with" in str(info2.value)
    assert "\\x" not in str(info2.value)


def test_keystore_is_separate_from_contact_data(engine: Engine, settings: Settings) -> None:
    """The data keys live in their own schema: a dump of contact data alone has no key."""
    assert data_keys.schema == "keystore"
    if settings.is_sqlite:
        main = settings.var_dir / "tact.db"
        keystore = settings.var_dir / "tact.keystore.db"
        assert main.exists() and keystore.exists()
        import sqlite3

        tables = {r[0] for r in sqlite3.connect(main).execute("select name from sqlite_master")}
        assert "data_keys" not in tables and "contacts" in tables
