"""What every command needs, built lazily: settings, the database engine, the vault."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine

from engine.cli.console import err
from engine.config import Settings, get_settings
from engine.db import engine_from_settings
from engine.logs import configure
from engine.vault import Vault


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        configure(self.settings.resolved_log_file, self.settings.log_level)

    @cached_property
    def engine(self) -> Engine:
        return engine_from_settings(self.settings)

    @cached_property
    def vault(self) -> Vault:
        """The vault, after checking that the keyring belongs to this database."""
        from engine.vault.keyring import secret_file_warning

        vault = Vault.from_settings(self.settings)
        warning = secret_file_warning() if self.settings.keyring is not None else None
        if warning:
            err.print("[yellow]warning:[/]", end=" ")
            err.print(warning, markup=False, highlight=False)
        with self.engine.begin() as conn:
            vault.verify(conn)
        return vault
