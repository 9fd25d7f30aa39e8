"""Delivery: one Transport protocol, a base class, several transports, a registry."""

from engine.delivery.base import (
    BaseTransport,
    Delivery,
    DeliveryResult,
    DeliveryStatus,
    OutgoingMessage,
    Transport,
)

__all__ = [
    "BaseTransport",
    "Delivery",
    "DeliveryResult",
    "DeliveryStatus",
    "OutgoingMessage",
    "Transport",
]
