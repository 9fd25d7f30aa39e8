"""The transport the settings ask for. The embedded default is the Maildir outbox."""

from __future__ import annotations

from engine.config import Settings
from engine.delivery.base import Transport
from engine.delivery.maildir import MaildirTransport
from engine.delivery.null import NullTransport


def transport_from_settings(settings: Settings) -> Transport:
    if settings.transport == "null":
        return NullTransport()
    return MaildirTransport(settings.resolved_outbox_dir)
