"""Erasure is crypto-shredding: pre-erasure copies stay unreadable; the address stays suppressed."""

from __future__ import annotations

import email
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from engine.campaigns import create, launch, schedule, send_campaign
from engine.config import Settings
from engine.consent.service import Origin
from engine.db import make_engine, writing
from engine.delivery.maildir import MaildirTransport
from engine.errors import ContactErased
from engine.migrate import upgrade
from engine.models import AuditEvent, Suppression
from engine.notices.optin import request_subscription
from engine.people.erasure import erase_contact
from engine.people.export import export_contact
from engine.vault import Keyring, Vault
from engine.vault.vault import contacts, data_keys
from tests.helpers import contact_ids, emails, import_rows, people

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
suppressions_t = Suppression.__table__  # type: ignore[attr-defined]


def _with_history(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    for i, row in enumerate(rows):
        row["orders"] = [
            {
                "order_id": f"o{i}",
                "ordered_at": "2026-01-02T10:00:00Z",
                "amount": "12.50",
                "currency": "EUR",
                "category": "outdoor",
            }
        ]
        row["engagement"] = [{"at": "2026-01-03T10:00:00Z", "kind": "open", "campaign": "c1"}]
        row["topics"] = ["news"]
    return rows


def test_restored_pre_erasure_rows_no_longer_decrypt(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    rows = _with_history(people(4))
    import_rows(engine, vault, settings, rows)
    with engine.connect() as conn:
        backup = [dict(r._mapping) for r in conn.execute(select(contacts))]
    target = rows[1]["email"]
    with engine.begin() as conn:
        erased = erase_contact(conn, vault, str(target), actor="test")
    assert erased.contact_id is not None

    # Restore the contact data from the pre-erasure copy, next to the current keystore.
    with engine.begin() as conn:
        for row in backup:
            conn.execute(update(contacts).where(contacts.c.id == row["id"]).values(**row))
        assert (
            conn.execute(
                select(data_keys).where(data_keys.c.contact_id == erased.contact_id)
            ).first()
            is None
        )
    restored = emails(engine, vault)
    assert erased.contact_id not in restored
    assert set(restored.values()) == {r["email"] for r in rows} - {target}


def test_sqlite_file_backup_restored_next_to_current_keystore(tmp_path: Path) -> None:
    """The embedded mode's backup is a copy of tact.db; it must not outlive an erasure."""
    settings = Settings(var_dir=tmp_path / "var")
    keyring = Keyring.generate()
    keyring.save(settings.resolved_key_file)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    vault = Vault(keyring)
    rows = people(5)
    import_rows(engine, vault, settings, rows)
    main = settings.var_dir / "tact.db"
    engine.dispose()
    with sqlite3.connect(main) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    backup = tmp_path / "backup-tact.db"
    shutil.copy(main, backup)
    with engine.begin() as conn:
        erased = erase_contact(conn, vault, str(rows[0]["email"]), actor="test")
    engine.dispose()
    with sqlite3.connect(main) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(backup, main)  # the old contact data file, the current keystore
    restored = emails(engine, vault)
    assert erased.contact_id is not None
    assert erased.contact_id not in restored
    assert len(restored) == 4
    # The erased key is overwritten in the keystore file itself (secure_delete), not just unlinked.
    keystore_bytes = (settings.var_dir / "tact.keystore.db").read_bytes()
    assert erased.contact_id.hex.encode() not in keystore_bytes
    assert erased.contact_id.bytes not in keystore_bytes
    engine.dispose()


def test_erasure_removes_everything_and_leaves_only_a_keyed_hash(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    rows = _with_history(people(2))
    import_rows(engine, vault, settings, rows)
    address = str(rows[0]["email"])
    with engine.begin() as conn:
        result = erase_contact(conn, vault, address, actor="test")
        row = conn.execute(select(contacts).where(contacts.c.id == result.contact_id)).one()
        events = conn.execute(select(audit_t).where(audit_t.c.action == "contact.erased")).all()
        hashes = conn.execute(select(suppressions_t)).all()
    assert row.status == "erased" and row.blind_index is None
    assert row.email_ct is None and row.first_name_ct is None and row.attributes == {}
    assert len(events) == 1 and events[0].contact_id == result.contact_id
    assert address not in repr(events[0]._mapping)
    assert [h.reason for h in hashes] == ["erased"]
    assert hashes[0].address_hash == vault.index_for(address)
    with engine.begin() as conn, pytest.raises(ContactErased):
        export_contact(conn, vault, settings, address, actor="test")
    # Erasing again is harmless.
    with engine.begin() as conn:
        again = erase_contact(conn, vault, address, actor="test")
    assert again.contact_id is None and again.already_erased


def test_reimport_of_an_erased_address_is_suppressed(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    rows = people(3)
    import_rows(engine, vault, settings, rows)
    with engine.begin() as conn:
        erase_contact(conn, vault, str(rows[2]["email"]), actor="test")
    again = [dict(r) for r in rows]
    again[2]["email"] = str(rows[2]["email"]).upper()  # another spelling of the same mailbox
    report = import_rows(engine, vault, settings, again, name="again")
    assert report.suppressed == 1 and report.updated == 2 and report.inserted == 0
    assert len(emails(engine, vault)) == 2
    assert len(contact_ids(engine)) == 3  # the tombstone, nothing more


def _recipients(outbox: Path) -> dict[str, list[str]]:
    """Recipient per outbox file, in new/, cur/ and tmp/ (the test reads the files)."""
    found: dict[str, list[str]] = {}
    for sub in ("new", "cur", "tmp"):
        for path in sorted((outbox / sub).iterdir()):
            to = email.message_from_bytes(path.read_bytes())["To"]
            found.setdefault(str(to).lower(), []).append(f"{sub}/{path.name}")
    return found


def test_erasure_removes_the_contacts_messages_from_the_maildir_outbox(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    """Campaign messages (unread, read by a mail client, mid-delivery) and notices go.

    The files are found by the Message-IDs of the contact's outbox rows and notices,
    never by reading the outbox for the address; everyone else's files stay.
    """
    settings = settings.model_copy(update={"quiet_hours_start": 0, "quiet_hours_end": 0})
    rows = [{**p, "topics": ["offers"]} for p in people(4)]
    import_rows(engine, vault, settings, rows)
    outbox = settings.resolved_outbox_dir
    transport = MaildirTransport(outbox)
    transport.open()
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    with writing(engine) as conn:
        camp = create(conn, settings, name="c1", template="autumn-2026", now=now)
        schedule(conn, camp, now)
        launch(conn, camp, now, settings=settings)
    send_campaign(engine, vault, settings, camp, transport, now=now)
    target, other = (str(r["email"]).lower() for r in rows[:2])
    with writing(engine) as conn:  # a notice too: the double opt-in confirmation for news
        for address in (target, other):
            request_subscription(
                conn, vault, settings, address, "news", Origin(source="form"), transport=transport
            )
    before = _recipients(outbox)
    assert [len(before[r["email"].lower()]) for r in rows] == [2, 2, 1, 1]
    # A mail client read the target's campaign message; another is mid-delivery in tmp/.
    read = outbox / before[target][0]
    read.rename(outbox / "cur" / f"{read.name}:2,S")
    stray = outbox / before[target][1]
    shutil.copy(stray, outbox / "tmp" / f"{stray.name}.4242")
    with writing(engine) as conn:
        result = erase_contact(conn, vault, target, actor="test", outbox_dir=outbox)
    assert result.outbox_files_removed == 3
    after = _recipients(outbox)
    assert target not in after
    assert after == {k: v for k, v in before.items() if k != target}
