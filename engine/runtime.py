"""The composition root: what one process needs, built once, on first use.

Every face (the ``tact`` command, the web apps, the Celery workers, ``tact run``,
the demo) gets its settings, database engine, checked vault, token signer,
topics, transport, Celery app and broker guard client from a :class:`Runtime`,
and hands that runtime to the use-cases in :mod:`engine.app`. Nothing else builds these parts, so a
check that must happen once (the keyring belongs to this database; the key
file is not readable by others) happens in one place.

Parts are built lazily: asking for ``runtime.engine`` opens no connection until
a query runs, and a command that needs no vault never reads the keyring. A
worker process builds its own runtime after the fork (:func:`reset` drops the
parent's), never sharing connections across processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from engine.config import Settings, get_settings
from engine.consent.topics import Topics, cached_topics
from engine.db import engine_from_settings, explain
from engine.delivery.base import Transport
from engine.delivery.factory import transport_from_settings
from engine.errors import ConfigurationError, DatabaseError
from engine.links.tokens import TokenSigner
from engine.logs import configure
from engine.vault import Vault
from engine.vault.keyring import secret_file_warning

if TYPE_CHECKING:  # imported when first used: a command that sends nothing skips them
    import redis
    from celery import Celery

    from engine.campaigns import Composers

log = logging.getLogger(__name__)


class Runtime:
    """One process's parts. Build one per process (or per test) and pass it down."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        configure_logging: bool = True,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        """``warn`` receives set-up warnings meant for the operator (the CLI prints them
        on stderr); by default they go to the log."""
        self.settings = settings or get_settings()
        self._warn = warn or log.warning
        self._transport: Transport | None = None
        if configure_logging:
            configure(self.settings.resolved_log_file, self.settings.log_level)

    @cached_property
    def engine(self) -> Engine:
        return engine_from_settings(self.settings)

    @cached_property
    def vault(self) -> Vault:
        """The vault, after checking that the keyring opens this database's data keys."""
        vault = Vault.from_settings(self.settings)
        warning = secret_file_warning() if self.settings.keyring is not None else None
        if warning:
            self._warn(warning)
        with self.engine.begin() as conn:
            vault.verify(conn)
        return vault

    @cached_property
    def signer(self) -> TokenSigner:
        """Signs and checks the links in emails and pages (keys from the vault's keyring)."""
        return TokenSigner(self.vault.keyring, self.settings)

    @cached_property
    def topics(self) -> Topics:
        return cached_topics(self.settings.resolved_topics_file)

    @cached_property
    def composers(self) -> Composers:
        """Each campaign's compiled templates, kept for the life of the process (a worker
        runs many batches of one campaign: compiling them again for each costs tens of ms)."""
        from engine.campaigns import Composers
        from engine.engagement.links import LinkTables

        # Click tracking's hook comes from here: the pipeline's layer does not import it.
        tables = LinkTables(self.engine, self.settings, self.vault.keyring)
        return Composers(self.settings, self.vault, links=tables.hook)

    @cached_property
    def celery(self) -> Celery:
        """The Celery app on ``broker_url``, configured on first use; tasks are sent by name
        (:data:`engine.broker.RUN_BATCH_TASK`), so the sender never imports ``workers``."""
        from engine import broker

        return broker.celery_app(lambda: self.settings)

    @cached_property
    def guard(self) -> redis.Redis | None:
        """A client on the broker's Redis for the queued-batch guard keys, or None when
        the broker is not Redis (no broker: ``tact run`` needs no guard)."""
        import redis

        from engine import broker

        url = self.settings.broker_url
        if url is None or not broker.is_redis(url):
            return None
        return redis.Redis.from_url(url, socket_timeout=10)

    def new_transport(self) -> Transport:
        """A transport of the configured kind, not yet opened (the caller owns it)."""
        return transport_from_settings(self.settings)

    @property
    def transport(self) -> Transport:
        """This process's shared transport, opened on first use, closed by :meth:`close`."""
        if self._transport is None:
            transport = self.new_transport()
            transport.open()
            self._transport = transport
        return self._transport

    def close(self) -> None:
        """Close the shared transport, the broker clients and the engine's pooled connections."""
        transport, self._transport = self._transport, None
        try:
            if transport is not None:
                transport.close()
        finally:
            guard = self.__dict__.pop("guard", None)
            if guard is not None:
                guard.close()
            celery = self.__dict__.pop("celery", None)
            if celery is not None:
                celery.close()
            if "engine" in self.__dict__:
                self.engine.dispose()


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    """This process's runtime, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime()
        return _current


def reset(*, close: bool = True) -> None:
    """Forget this process's runtime: after a fork (``close=False``: the parent's
    connections are not ours to close), at shutdown, between tests."""
    global _current
    with _lock:
        previous, _current = _current, None
    if previous is not None and close:
        previous.close()


def database_error(exc: BaseException) -> DatabaseError | None:
    """A database driver's error as one sentence naming this installation's database
    (:func:`engine.db.explain`), or None when ``exc`` is not one. Faces call this
    rather than import the driver's exception classes."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, SQLAlchemyError | sqlite3.Error):
        return None
    try:
        url = get_settings().resolved_database_url
    except ConfigurationError:
        return DatabaseError("the database cannot be used (and the settings do not load)")
    return explain(exc, url)
