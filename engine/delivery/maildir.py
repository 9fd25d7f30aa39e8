"""Maildir transport: the embedded default outbox (``var/outbox``).

Each message is written to ``tmp/`` and renamed into ``new/`` under a name
derived from its Message-ID, so delivering the same message twice is detected
and refused: a re-run never duplicates the outbox.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from engine.delivery.base import (
    BaseTransport,
    DeliveryResult,
    DeliveryStatus,
    Handover,
    OutgoingMessage,
)


class MaildirTransport(BaseTransport):
    idempotent = True  # a Message-ID already in the outbox is refused

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.fsync = fsync
        self._tmp, self._new, self._cur = (os.path.join(root, d) for d in ("tmp", "new", "cur"))
        self._suffix = f".{os.getpid()}"

    def open(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._suffix = f".{os.getpid()}"  # opened again after a fork: this process's own

    def filename(self, message_id: str) -> str:
        return hashlib.sha256(message_id.encode()).hexdigest()[:40] + ".tact"

    def send(self, message: OutgoingMessage, handover: Handover | None = None) -> DeliveryResult:
        name = self.filename(message.message_id)
        if os.path.exists(os.path.join(self._cur, name)):  # read by a mail client already
            return DeliveryResult(DeliveryStatus.DUPLICATE, "already in the outbox")
        tmp = os.path.join(self._tmp, name + self._suffix)
        with open(tmp, "wb") as fh:
            fh.write(message.data)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        try:
            if handover is not None and not handover():
                return DeliveryResult(DeliveryStatus.WITHHELD)
            os.link(tmp, os.path.join(self._new, name))  # refuses an existing name
        except FileExistsError:
            return DeliveryResult(DeliveryStatus.DUPLICATE, "already in the outbox")
        finally:
            os.unlink(tmp)
        return DeliveryResult(DeliveryStatus.SENT)

    def flush(self) -> None:
        if self.fsync:
            fd = os.open(self._new, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
