"""Delivery: one Transport protocol, several transports."""

from engine.delivery.base import DeliveryResult, DeliveryStatus, OutgoingMessage, Transport

__all__ = ["DeliveryResult", "DeliveryStatus", "OutgoingMessage", "Transport"]
