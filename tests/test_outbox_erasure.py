"""``tact contacts erase`` also empties the Maildir outbox of the contact's messages.

The finding: erased contacts' messages stayed in ``var/outbox``, each a plaintext
file with the address in ``To:``. On the embedded default, through the command:
a campaign is sent, one contact is erased, no file of theirs remains and every
other contact's file does.
"""

from __future__ import annotations

import email
from pathlib import Path

from tests.helpers import people, write_jsonl
from tests.test_cli import tact

ENV = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0"}


def _recipients(outbox: Path) -> list[str]:
    return sorted(
        str(email.message_from_bytes(p.read_bytes())["To"]).lower()
        for sub in ("new", "cur", "tmp")
        for p in (outbox / sub).iterdir()
    )


def test_contacts_erase_removes_their_messages_from_the_outbox(tmp_path: Path) -> None:
    rows = [{**p, "topics": ["offers"]} for p in people(5)]
    write_jsonl(tmp_path / "people.jsonl", rows)
    for args in (
        ("init",),
        ("contacts", "import", "people.jsonl"),
        ("campaigns", "create", "c1", "--template", "autumn-2026"),
        ("campaigns", "send", "c1"),
    ):
        done = tact(tmp_path, *args, env=ENV)
        assert done.code == 0, str(done)
    outbox = tmp_path / "var" / "outbox"
    everyone = sorted(str(r["email"]).lower() for r in rows)
    assert _recipients(outbox) == everyone
    erased = tact(tmp_path, "contacts", "erase", str(rows[2]["email"]), "--yes", env=ENV)
    assert erased.code == 0, str(erased)
    assert "1 of its messages removed from the outbox" in erased.flat
    assert _recipients(outbox) == [a for a in everyone if a != str(rows[2]["email"]).lower()]
