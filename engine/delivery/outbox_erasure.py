"""Remove an erased contact's messages from the Maildir outbox (``var/outbox``).

A message in the outbox is a plain RFC 5322 file: the recipient's address is in
its ``To:`` header and its text carries the personalization. Erasure shreds the
contact's key, which the database copies obey, but a file in the outbox would
keep the address readable. So erasure deletes them too.

The files are found by what Tact already knows, never by reading or searching
files for the address: the Message-IDs of the contact's outbox rows (campaign
messages) and of the notices recorded as sent to it (``notice.sent`` audit
events: confirmation, export and erasure links), turned into file names by the
transport's own naming rule (``MaildirTransport.filename``).
A name is looked up in ``new/`` (not yet read), ``cur/`` (read by a mail client,
which may append the ``:2,FLAGS`` info of the Maildir spec) and ``tmp/`` (a
delivery in progress: ``NAME.PID``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

from sqlalchemy import Connection, select

from engine.delivery.maildir import MaildirTransport
from engine.models import OutboxRow

outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]


def contact_message_ids(conn: Connection, contact_id: UUID) -> list[str]:
    """The Message-IDs of every campaign message ever queued for this contact."""
    return list(
        conn.execute(
            select(outbox_t.c.message_id).where(outbox_t.c.contact_id == contact_id)
        ).scalars()
    )


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def remove_messages(root: Path, message_ids: Iterable[str]) -> int:
    """Delete the outbox files of these Message-IDs; returns how many files were removed.

    A missing outbox, or a message never written (deferred, skipped, sent over
    SMTP), is simply nothing to remove.
    """
    if not root.is_dir():
        return 0
    namer = MaildirTransport(root)
    names = {namer.filename(mid) for mid in message_ids}
    if not names:
        return 0
    removed = 0
    for name in names:
        removed += _unlink(root / "new" / name)
        removed += _unlink(root / "cur" / name)
    # A mail client renames a read message NAME:2,FLAGS (";" or "!" on some systems);
    # a delivery in progress is tmp/NAME.PID. Only the names above are matched.
    for sub in ("cur", "tmp"):
        try:
            entries = os.listdir(root / sub)
        except FileNotFoundError:
            continue
        for entry in entries:
            if sub == "tmp":
                base = entry.rsplit(".", 1)[0]
            else:
                base = entry.replace(";", ":").replace("!", ":").split(":", 1)[0]
            if base != entry and base in names:
                removed += _unlink(root / sub / entry)
    return removed
