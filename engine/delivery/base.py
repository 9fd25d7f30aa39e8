"""The Transport protocol and the shared status vocabulary.

Every transport follows one fixed sequence: ``open()`` once, ``send()`` per
message, ``flush()`` at the end of a batch (commit what is buffered), ``close()``
when done. A send returns a DeliveryResult; it raises only for bugs, or with the
exception its ``handover`` raised.

Exactly once. A transport says whether sending the same message twice is
harmless (``idempotent``): the Maildir refuses a Message-ID it already holds, the
null transport delivers nothing. SMTP is not: a server accepts the same message
twice. For it, the sender passes ``handover``, a callable the transport invokes at
the point of no return — for SMTP right before the final ``.`` of DATA, after which
the server keeps the message — and which records the message as sent (committing
it) and returns True, or returns False to withhold it (the transport then abandons
the message so that it is never delivered, and returns ``WITHHELD``). A crash
before the handover leaves the message unrecorded and undelivered; after it,
recorded and delivered. Idempotent transports call ``handover`` too, right before
the message becomes visible, when one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

#: Called at the point of no return; True: the send was recorded, go on.
Handover = Callable[[], bool]


class DeliveryStatus(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # this Message-ID was already delivered: not sent again
    DEFERRED = "deferred"  # transient failure: retry later
    BOUNCED = "bounced"  # permanent failure: suppress the address
    FAILED = "failed"
    WITHHELD = "withheld"  # the handover said no: abandoned before the point of no return


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
    #: True when delivering the same message twice delivers it once (or not at all).
    idempotent: bool

    def open(self) -> None: ...

    def send(
        self, message: OutgoingMessage, handover: Handover | None = None
    ) -> DeliveryResult: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
