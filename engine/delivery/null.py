"""Null transport: accepts everything, delivers nothing (benchmarks, dry runs)."""

from __future__ import annotations

from engine.delivery.base import (
    BaseTransport,
    DeliveryResult,
    DeliveryStatus,
    Handover,
    OutgoingMessage,
)


class NullTransport(BaseTransport):
    idempotent = True  # delivers nothing, so delivering twice does no harm

    def __init__(self) -> None:
        self.sent = 0

    def send(self, message: OutgoingMessage, handover: Handover | None = None) -> DeliveryResult:
        if handover is not None and not handover():
            return DeliveryResult(DeliveryStatus.WITHHELD)
        self.sent += 1
        return DeliveryResult(DeliveryStatus.SENT)
