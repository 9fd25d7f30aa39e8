"""First-run setup shared by ``tact init`` and the demo: config file, keys, schema."""

from __future__ import annotations

from pathlib import Path

from engine import migrate
from engine.config import Settings, config_path, get_settings
from engine.db import engine_from_settings
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
            vault.verify(conn)
        done.append(f"database ready at revision {migrate.current(engine)}")
    finally:
        engine.dispose()
    return done
