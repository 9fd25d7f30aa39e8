"""Null transport: accepts everything, delivers nothing (benchmarks, dry runs)."""

from __future__ import annotations

from engine.delivery.base import DeliveryResult, DeliveryStatus, OutgoingMessage


class NullTransport:
    def __init__(self) -> None:
        self.sent = 0

    def open(self) -> None:
        pass

    def send(self, message: OutgoingMessage) -> DeliveryResult:
        self.sent += 1
        return DeliveryResult(DeliveryStatus.SENT)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
