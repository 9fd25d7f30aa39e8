"""Key rotation: re-wrap in batches, readable throughout, resumable, old key retired."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from engine.config import Settings
from engine.errors import KeyMismatchError, RotationError
from engine.vault import Keyring, Vault, load_keyring
from engine.vault.rotation import pending, rotate
from engine.vault.vault import contacts, data_keys
from tests.helpers import emails, import_rows, people


def test_rotation_interrupted_halfway_reads_everything_and_completes_on_rerun(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_rows(engine, vault, settings, people(50))
    before = emails(engine, vault)
    with engine.connect() as conn:
        ciphertexts = dict(conn.execute(select(contacts.c.id, contacts.c.email_ct)).all())
    old_kek = vault.keyring.primary_kek_id

    ring = load_keyring(settings)
    report = rotate(engine, ring, batch_size=10, stop_after_batches=2)
    assert report.rewrapped == 20 and report.started_new
    # Halfway: the file now holds two active keys, the new one primary.
    halfway = load_keyring(settings)
    assert halfway.primary_kek_id != old_kek
    assert {k.id for k in halfway.active_keks()} == {old_kek, halfway.primary_kek_id}
    assert pending(engine, halfway) == 30
    assert emails(engine, Vault(halfway)) == before  # every contact still reads

    # New contacts during the rotation are wrapped by the new key.
    import_rows(engine, Vault(halfway), settings, people(3, domain="example.org"), name="more")
    with engine.connect() as conn:
        by_new = conn.execute(
            select(func.count()).where(data_keys.c.kek_id == halfway.primary_kek_id)
        ).scalar_one()
    assert by_new == 23

    resumed = rotate(engine, load_keyring(settings), batch_size=10)
    assert not resumed.started_new  # resumed, no third key
    assert resumed.rewrapped == 30 and resumed.retired == [old_kek]
    final = load_keyring(settings)
    assert final.keks[old_kek].state == "retired"
    assert [k.id for k in final.active_keks()] == [final.primary_kek_id]
    assert pending(engine, final) == 0
    after = emails(engine, Vault(final))
    assert {k: v for k, v in after.items() if k in before} == before
    with engine.connect() as conn:  # fields were never re-encrypted
        now = dict(conn.execute(select(contacts.c.id, contacts.c.email_ct)).all())
    assert all(now[k] == v for k, v in ciphertexts.items())


def test_a_retired_key_no_longer_opens_anything(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    import_rows(engine, vault, settings, people(5))
    old = Keyring.from_json(vault.keyring.to_json())
    rotate(engine, load_keyring(settings), batch_size=2)
    # A process still holding only the old key cannot read the re-wrapped data keys.
    with engine.connect() as conn:
        with pytest.raises(KeyMismatchError):
            Vault(old).verify(conn)
        row = conn.execute(select(data_keys)).first()
        assert row is not None
        with pytest.raises(KeyMismatchError):
            Vault(old).unwrap(row.contact_id, row.key_version, row.kek_id, row.wrapped)


def test_rotation_needs_a_keyring_file(engine: Engine, vault: Vault) -> None:
    ring = Keyring.from_json(vault.keyring.to_json())  # no source file
    with pytest.raises(RotationError):
        rotate(engine, ring)
