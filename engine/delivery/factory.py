"""The transport the settings ask for: a registry, name → builder.

The embedded default is the Maildir outbox. A new transport (an HTTP API such as
Amazon SES, say) is one module with a ``BaseTransport`` subclass and one entry in
``TRANSPORTS``; its name must also be one of the choices of ``Settings.transport``
(``engine.config``, the lowest layer, cannot import this registry:
tests/test_delivery_registry.py checks that the two agree).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.config import Settings
from engine.delivery.base import Transport
from engine.delivery.maildir import MaildirTransport
from engine.delivery.null import NullTransport
from engine.delivery.smtp import SmtpTransport
from engine.errors import ConfigurationError


def _maildir(settings: Settings) -> Transport:
    return MaildirTransport(settings.resolved_outbox_dir)


def _null(settings: Settings) -> Transport:
    return NullTransport()


def _smtp(settings: Settings) -> Transport:
    return SmtpTransport.from_settings(settings.smtp)


#: ``settings.transport`` → the function that builds that transport from the settings.
TRANSPORTS: dict[str, Callable[[Settings], Transport]] = {
    "maildir": _maildir,
    "null": _null,
    "smtp": _smtp,
}


def transport_from_settings(settings: Settings) -> Transport:
    """A new, unopened transport of the kind ``settings.transport`` names."""
    build = TRANSPORTS.get(settings.transport)
    if build is None:
        known = ", ".join(sorted(TRANSPORTS))
        raise ConfigurationError(
            f"unknown transport {settings.transport!r}: TACT_TRANSPORT must be one of {known}"
        )
    return build(settings)
