"""Setting up an installation: first run, schema migrations, the effective settings.

``init`` creates what is missing (tact.toml, the keyring, the schema) through
:func:`engine.setup.initialize`, which the demo and the benchmarks share.
``effective_settings`` answers "what is this installation actually running
with?": every field of :class:`engine.config.Settings`, its value after every
source was applied, and the source that won (environment, a
``TACT_<NAME>_FILE`` secret file, tact.toml, or the default). Secrets are never
shown: the keyring, the DKIM key and the SMTP password show only that they are
set; URLs show ``***`` for their password.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import SecretStr
from pydantic_settings import EnvSettingsSource, TomlConfigSettingsSource
from sqlalchemy.engine import make_url

from engine import migrate
from engine.config import FileSecretsSource, Settings, config_path, get_settings
from engine.errors import DatabaseError
from engine.runtime import Runtime
from engine.setup import initialize

__all__ = [
    "DERIVED",
    "MASK",
    "URL_FIELDS",
    "EffectiveSettings",
    "InitReport",
    "SettingValue",
    "current_revision",
    "effective_settings",
    "init",
    "mask_url",
    "upgrade",
    "variable",
]


@dataclass(frozen=True)
class InitReport:
    """What ``init`` did, one sentence per step, in order."""

    done: tuple[str, ...]


def init(var_dir: Path | None = None) -> InitReport:
    """Create tact.toml, a keyring (mode 0600) and the database; never overwrite keys.

    Runs before there are settings to build a runtime from: it writes them first.
    """
    return InitReport(tuple(initialize(var_dir)))


def upgrade(rt: Runtime, revision: str = "head") -> str | None:
    """Bring the database and its keystore to ``revision``; returns the revision reached."""
    migrate.upgrade(rt.engine, revision)
    return migrate.current(rt.engine)


def current_revision(rt: Runtime) -> str | None:
    """The schema revision of the database; None for an empty one."""
    return migrate.current(rt.engine)


def check_database(rt: Runtime) -> str | None:
    """The schema revision, read now; DatabaseError when the database cannot be used.

    On SQLite the file itself is looked at too: pooled connections go on writing into a
    database file deleted under a running server, and every write would be lost at the
    next start, so a file that is gone makes the database unusable."""
    url = make_url(rt.settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).is_file():
            raise DatabaseError("the SQLite database file is missing")
    return migrate.current(rt.engine)


MASK = "********"
#: Fields that hold a URL which may carry a password (user:password@host, ?password=).
URL_FIELDS = ("database_url", "broker_url")
#: Fields whose unset value is derived from another setting, and the property that derives it.
DERIVED = {
    "database_url": "resolved_database_url",
    "key_file": "resolved_key_file",
    "log_file": "resolved_log_file",
    "outbox_dir": "resolved_outbox_dir",
    "topics_file": "resolved_topics_file",
}
_SECRET_WORDS = ("password", "passwd", "secret", "token", "key")


def variable(name: str) -> str:
    return f"TACT_{name.upper()}"


def mask_url(url: str) -> str:
    """The URL with its password, and any secret-looking query value, replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    masked = url
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
            masked = masked.replace(parts.netloc, netloc, 1)
    if parts.query:
        query = urlencode(
            [
                (k, "***" if any(w in k.lower() for w in _SECRET_WORDS) else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        masked = masked.replace(f"?{parts.query}", f"?{query}", 1)
    return masked


def _display(name: str, value: Any) -> Any:
    """A JSON-able, secret-free form of one value."""
    if isinstance(value, SecretStr):
        return MASK
    if name in URL_FIELDS and isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _effective(settings: Settings) -> list[SettingValue]:
    """Every setting: name, variable, displayed value and the source that set it."""
    env = EnvSettingsSource(Settings)()
    files = FileSecretsSource(Settings)()
    cfg = config_path()
    toml = TomlConfigSettingsSource(Settings, toml_file=cfg)() if cfg.is_file() else {}
    rows = []
    for name in Settings.model_fields:
        var = variable(name)
        if name in env:
            source = f"environment {var}"
        elif name in files:
            source = f"file {var}_FILE"
        elif name in toml:
            source = f"config file {cfg}"
        else:
            source = "default"
        value = getattr(settings, name)
        shown = _display(name, value)
        if value is None and name in DERIVED:
            shown = _display(name, getattr(settings, DERIVED[name]))
            source = "default (derived)"
        elif value is None:
            shown = None
        rows.append(SettingValue(name=name, variable=var, value=shown, source=source))
    return rows


@dataclass(frozen=True)
class SettingValue:
    """One setting: its name, variable, the value shown (secret-free), and who set it."""

    name: str
    variable: str
    value: Any
    source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EffectiveSettings:
    """Every setting in field order, and the config file they were read with."""

    config_file: Path
    config_file_exists: bool
    settings: tuple[SettingValue, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``tact settings show --json``."""
        return {
            "config_file": str(self.config_file),
            "config_file_exists": self.config_file_exists,
            "settings": {
                s.name: {"variable": s.variable, "value": s.value, "source": s.source}
                for s in self.settings
            },
        }


def effective_settings(settings: Settings | None = None) -> EffectiveSettings:
    """The settings as loaded (default: this process's), with where each came from."""
    cfg = config_path()
    return EffectiveSettings(
        config_file=cfg,
        config_file_exists=cfg.is_file(),
        settings=tuple(_effective(settings or get_settings())),
    )
