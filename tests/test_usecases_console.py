"""The use-cases the console and the REST API call (issue 13), called as a face calls them.

On SQLite and PostgreSQL, with real contacts imported, a real campaign sent to the
Maildir and the audit rows read back: contacts without personal data and the audited
reveal, the dashboard, campaign pages and timelines, rendered previews, template files
(read, checked, saved), imports in the background, segment definitions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from engine.app import consent, contacts
from engine.audit import acting_as
from engine.config import PROJECT_ROOT, Settings
from engine.errors import ContactErased, ContactNotFound
from engine.models import AuditEvent
from engine.runtime import Runtime
from engine.vault import Keyring, Vault
from tests.helpers import people, write_jsonl

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

N = 6
STAFF = "staff:3"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The shipped templates copied (template files are saved into them), no quiet hours."""
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        templates_dir=templates,
        quiet_hours_start=0,
        quiet_hours_end=0,
    )


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


@pytest.fixture
def imported(rt: Runtime, tmp_path: Path) -> list[dict[str, Any]]:
    """N contacts subscribed to offers; the last two write in Chinese."""
    rows = [{**p, "topics": ["offers"]} for p in people(N)]
    for row in rows[-2:]:
        row["locale"] = "zh-CN"
    result = contacts.import_contacts(rt, write_jsonl(tmp_path / "people.jsonl", rows))
    assert (result.inserted, result.rejected) == (N, 0)
    return rows


def audit_rows(rt: Runtime) -> list[Any]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(audit_t).order_by(audit_t.c.id)).all())


def audit_text(rt: Runtime) -> str:
    """Every audit row as JSON text: what an admin reads and exports."""
    return "\n".join(
        json.dumps({**row._mapping, "occurred_at": None}, default=str) for row in audit_rows(rt)
    )


# --- 1. contacts without personal data, and the audited reveal ---------------------------


def test_lookup_and_status_by_id_carry_no_name(rt: Runtime, imported: list[dict[str, Any]]) -> None:
    address = imported[0]["email"]
    shown = contacts.show(rt, address)
    assert shown.name == "Firstname0000 Lastname0000"  # the CLI's show still decrypts
    found = contacts.lookup(rt, address.upper())
    assert found.name is None
    assert (found.id, found.public_id, found.status) == (shown.id, shown.public_id, "active")
    assert found.topics["offers"].state == "subscribed"
    assert found.as_dict() == {**shown.as_dict(), "name": None}
    by_id = contacts.status_by_id(rt, found.id)
    by_public = contacts.status_by_id(rt, found.public_id)
    assert by_id == by_public == found
    text = json.dumps(found.as_dict())
    assert address not in text and "Firstname0000" not in text
    with pytest.raises(ContactNotFound):
        contacts.lookup(rt, "nobody@example.com")
    with pytest.raises(ContactNotFound):
        contacts.status_by_id(rt, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(ContactNotFound):
        contacts.status_by_id(rt, "../../etc/passwd")


def test_reveal_is_audited_by_id_and_never_by_address(
    rt: Runtime, imported: list[dict[str, Any]]
) -> None:
    address = imported[1]["email"]
    cid = contacts.lookup(rt, address).id
    before = len(audit_rows(rt))
    with acting_as(STAFF):
        revealed = contacts.reveal(rt, contacts.lookup(rt, address).public_id)
    assert revealed.as_dict() == {
        "contact_id": cid,
        "email": address,
        "first_name": "Firstname0001",
        "last_name": "Lastname0001",
    }
    rows = audit_rows(rt)
    assert len(rows) == before + 1
    (row,) = rows[before:]
    assert (row.action, row.actor, str(row.contact_id)) == ("contact.revealed", STAFF, cid)
    everything = audit_text(rt)
    for value in (address, "Firstname0001", "Lastname0001"):
        assert value not in everything
    with pytest.raises(ContactNotFound):
        contacts.reveal(rt, "00000000-0000-4000-8000-000000000000")
    assert len(audit_rows(rt)) == before + 1  # a refused reveal writes nothing


def test_export_erase_and_consent_history_by_id(
    rt: Runtime, imported: list[dict[str, Any]]
) -> None:
    address = imported[2]["email"]
    cid = contacts.lookup(rt, address).id
    history = contacts.consent_history_by_id(rt, cid)
    assert history == consent.history(rt, address) and len(history) >= 1
    assert history[0].topic == "offers" and history[0].event == "granted"
    doc = history[0].as_dict()
    assert json.loads(json.dumps(doc)) == doc and doc["at"].startswith("20")

    with acting_as(STAFF):
        exported = contacts.export_by_id(rt, cid)
    assert exported.contact_id == cid
    assert exported.document["contact"]["email"] == address  # type: ignore[index]
    assert json.loads(json.dumps(exported.as_dict()))["document"]["format"] == "tact-export/1"

    with acting_as(STAFF):
        erased = contacts.erase_by_id(rt, cid)
    assert erased.as_dict() == {
        "contact_id": cid,
        "already_erased": False,
        "outbox_files_removed": 0,
    }
    tombstone = contacts.status_by_id(rt, cid)
    assert (tombstone.status, tombstone.name, tombstone.locale) == ("erased", None, None)
    with pytest.raises(ContactErased):
        contacts.lookup(rt, address)
    with pytest.raises(ContactErased):
        contacts.reveal(rt, cid)
    with pytest.raises(ContactErased):
        contacts.export_by_id(rt, cid)
    with acting_as(STAFF):
        assert contacts.erase_by_id(rt, cid).already_erased
    # The ledger stays (pseudonymous proof), and says erasure ended the subscription.
    assert contacts.consent_history_by_id(rt, cid)[-1].event == "withdrawn"
    ours = [(r.action, r.actor) for r in audit_rows(rt) if str(r.contact_id) == cid]
    assert ("contact.exported", STAFF) in ours and ("contact.erased", STAFF) in ours
    assert address not in audit_text(rt)
    with pytest.raises(ContactNotFound):
        contacts.erase_by_id(rt, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(ContactNotFound):
        contacts.consent_history_by_id(rt, "not-an-id")
