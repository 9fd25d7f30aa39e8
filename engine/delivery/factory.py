"""The transport the settings ask for. The embedded default is the Maildir outbox."""

from __future__ import annotations

from engine.config import Settings
from engine.delivery.base import Transport
from engine.delivery.maildir import MaildirTransport
from engine.delivery.null import NullTransport
from engine.delivery.smtp import SmtpTransport


def transport_from_settings(settings: Settings) -> Transport:
    if settings.transport == "null":
        return NullTransport()
    if settings.transport == "smtp":
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            pool_size=settings.smtp_pool_size,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=password,
            timeout=settings.smtp_timeout_seconds,
            per_domain_rate=settings.smtp_per_domain_rate,
            local_hostname=settings.smtp_local_hostname,
        )
    return MaildirTransport(settings.resolved_outbox_dir)
