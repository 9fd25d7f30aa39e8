"""The Transport protocol and the shared status vocabulary.

Every transport follows one fixed sequence: ``open()`` once, ``send()`` per
message, ``flush()`` at the end of a batch (commit what is buffered), ``close()``
when done. A send returns a DeliveryResult; it raises only for bugs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class DeliveryStatus(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # this Message-ID was already delivered: not sent again
    DEFERRED = "deferred"  # transient failure: retry later
    BOUNCED = "bounced"  # permanent failure: suppress the address
    FAILED = "failed"


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    sender: str
    recipient: str
    data: bytes

    def __repr__(self) -> str:  # the recipient is personal data
        return f"OutgoingMessage(message_id={self.message_id!r}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class DeliveryResult:
    status: DeliveryStatus
    detail: str = ""


class Transport(Protocol):
    def open(self) -> None: ...

    def send(self, message: OutgoingMessage) -> DeliveryResult: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
