"""The Transport protocol and the shared status vocabulary.

Every transport follows one fixed sequence: ``open()`` once, ``send()`` per
message or ``send_many()`` for a stream of them, ``flush()`` at the end of a batch
(commit what is buffered), ``close()`` when done. A send returns a
DeliveryResult; it raises only for bugs, or with the exception its ``handover``
raised. Transports derive from ``BaseTransport`` (``open``, ``flush`` and
``close`` do nothing there, ``send_many`` sends one by one) and are built from
the settings by the registry in ``engine.delivery.factory``.

Never lost silently. A transport says whether sending the same message twice is
harmless (``idempotent``): the Maildir refuses a Message-ID it already holds, the
null transport delivers nothing. SMTP is not: a server accepts the same message
twice, and a sender that dies between the final ``.`` of DATA and the reply cannot
know whether the server kept it (RFC 1047). For it, the sender passes
``handover``, a callable the transport invokes at the point of no return — for
SMTP right before the final ``.`` — and which records the message as *in doubt*
(committing it) and returns True, or returns False to withhold it (the transport
then abandons the message so that it is never delivered, and returns
``WITHHELD``). The result that follows settles the doubt: ``SENT`` (the 250),
a refusal, or ``IN_DOUBT`` when the connection was lost after the handover. A
crash before the handover leaves the message unrecorded and undelivered; after it,
in doubt, which the sender resolves by sending it again under the same
Message-ID. Idempotent transports call ``handover`` too, right before the message
becomes visible, when one is given.

Many at once. ``send_many(deliveries)`` takes ``Delivery`` objects (a message,
its handover, and ``done`` for its result) from an iterable, as fast as it can
use them, and calls each one's ``done`` when its outcome is known, in whatever
order outcomes come. The campaign pipeline sends through it whenever the
transport is not idempotent. ``BaseTransport.send_many`` is one ``send`` after
another; the SMTP transport overrides it to drive all its pooled connections
from the calling thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
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
    IN_DOUBT = "in-doubt"  # handed over, then the connection was lost: the server may have it


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


class Delivery(Protocol):
    """One message on its way through ``send_many``: what to send, and who wants to know."""

    @property
    def message(self) -> OutgoingMessage: ...

    def handover(self) -> bool:
        """The point of no return (see the module docstring): True records it in doubt."""
        ...

    def done(self, result: DeliveryResult) -> None:
        """The message's outcome (not called for a handover that raised)."""
        ...


class Transport(Protocol):
    """What the pipeline, the notices and the opt-in mails send through (see the module)."""

    #: True when delivering the same message twice delivers it once (or not at all).
    idempotent: bool

    def open(self) -> None: ...

    def send(
        self, message: OutgoingMessage, handover: Handover | None = None
    ) -> DeliveryResult: ...

    def send_many(self, deliveries: Iterable[Delivery]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class BaseTransport(ABC):
    """A transport's defaults: nothing to open, buffer or close, ``send_many`` one by one.

    A subclass sets ``idempotent`` and writes ``send``; it overrides the rest when it
    has connections to open and close (``open``, ``close``), buffered writes to
    commit (``flush``), or a faster way to send a stream (``send_many``).
    """

    #: True when delivering the same message twice delivers it once (or not at all).
    idempotent: bool

    def open(self) -> None:  # noqa: B027 (a default, deliberately not abstract)
        """Nothing to open by default."""

    @abstractmethod
    def send(
        self, message: OutgoingMessage, handover: Handover | None = None
    ) -> DeliveryResult: ...

    def send_many(self, deliveries: Iterable[Delivery]) -> None:
        """One ``send`` after another, each delivery's ``done`` told its result."""
        for delivery in deliveries:
            delivery.done(self.send(delivery.message, delivery.handover))

    def flush(self) -> None:  # noqa: B027 (a default, deliberately not abstract)
        """Nothing buffered by default."""

    def close(self) -> None:  # noqa: B027 (a default, deliberately not abstract)
        """Nothing to close by default."""
