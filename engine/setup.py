"""First-run setup shared by ``tact init`` and the demo: config file, keys, schema."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, inspect, select

from engine import migrate
from engine.config import Settings, config_path, get_settings
from engine.db import engine_from_settings
from engine.models import KEYSTORE_SCHEMA, Contact, DataKey, KekCheck
from engine.vault import Keyring, Vault

CONFIG_TEMPLATE = """\
# Tact configuration (embedded mode). Environment variables TACT_* override these.
# Secrets do not belong here: the keyring lives in {key_file} (mode 0600),
# or in the file named by TACT_KEYRING_FILE.
var_dir = "{var_dir}"
# database_url = "postgresql+psycopg://tact@localhost/tact"
"""


def initialize(var_dir: Path | None = None, settings: Settings | None = None) -> list[str]:
    """Create what is missing, touch nothing that exists; returns what was done, in words."""
    done: list[str] = []
    cfg = config_path()
    if settings is None and not cfg.exists():
        target = var_dir or Path("var")
        cfg.write_text(
            CONFIG_TEMPLATE.format(var_dir=target, key_file=target / "keys.json"), "utf-8"
        )
        done.append(f"wrote {cfg}")
        get_settings.cache_clear()
    settings = settings or get_settings()
    key_file = settings.resolved_key_file
    if settings.keyring is not None:
        done.append("keyring given by TACT_KEYRING(_FILE); not creating one")
    elif key_file.exists():
        done.append(f"keys already exist at {key_file}; left untouched")
    else:
        Keyring.generate().save(key_file)
        done.append(f"created keys at {key_file} (mode 0600); back them up apart from the data")
    engine = engine_from_settings(settings)
    try:
        migrate.upgrade(engine)
        vault = Vault.from_settings(settings)
        with engine.begin() as conn:
            if _first_run_keystore_tables(conn):
                done.append("created the keystore's tables (the database holds no contact yet)")
            vault.verify(conn)
        done.append(f"database ready at revision {migrate.current(engine)}")
    finally:
        engine.dispose()
    return done


def _first_run_keystore_tables(conn: Connection) -> bool:
    """Give a keystore made anew at first run its tables, which the migrations made once.

    engine.db creates a missing keystore file only while no contact exists; then the
    schema is at head already and Alembic would not run the keystore's tables again.
    With a contact present nothing is created: that keystore lost data keys.
    """
    if conn.dialect.name != "sqlite":
        return False
    tables = [DataKey.__table__, KekCheck.__table__]  # type: ignore[attr-defined]
    inspector = inspect(conn)
    missing = [t for t in tables if not inspector.has_table(t.name, schema=KEYSTORE_SCHEMA)]
    contacts = Contact.__table__  # type: ignore[attr-defined]
    if not missing or conn.execute(select(contacts.c.id).limit(1)).first() is not None:
        return False
    for table in missing:
        table.create(conn)
    return True
