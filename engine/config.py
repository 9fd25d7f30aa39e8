"""One Settings object for the whole program.

Values come, strongest first, from: keyword arguments, ``TACT_*`` environment
variables, ``TACT_<NAME>_FILE`` files for secrets (Docker/Kubernetes secrets),
the local config file written by ``tact init`` (``tact.toml``, or the path in
``TACT_CONFIG``), and the defaults below. The defaults are the embedded mode:
SQLite and a Maildir outbox under ``./var``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine.errors import ConfigurationError

#: Fields whose value may come from a file named by ``TACT_<NAME>_FILE``.
SECRET_FIELDS = ("keyring", "database_url", "dkim_private_key", "smtp_password")

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def config_path() -> Path:
    """The local config file: ``$TACT_CONFIG`` or ``./tact.toml``."""
    return Path(os.environ.get("TACT_CONFIG", "tact.toml"))


class FileSecretsSource(PydanticBaseSettingsSource):
    """Reads ``TACT_<NAME>_FILE`` for the secret fields (the Docker secrets convention)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"TACT_{field_name.upper()}_FILE")
        if field_name not in SECRET_FIELDS or not path:
            return None, field_name, False
        variable = f"TACT_{field_name.upper()}_FILE"
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigurationError(
                f"{variable} names {path!r}, which cannot be read: {reason}"
            ) from None
        if not value:
            # An empty mounted secret must not fall back to a default (e.g. local SQLite).
            raise ConfigurationError(f"{variable} names {path!r}, which is empty")
        return value, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """Everything configurable. Paths are relative to the working directory."""

    model_config = SettingsConfigDict(env_prefix="TACT_", extra="ignore")

    var_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite under var_dir. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    keyring: SecretStr | None = Field(
        default=None, description="The keyring JSON itself (prefer TACT_KEYRING_FILE)."
    )
    key_file: Path | None = Field(
        default=None, description="Where the keyring lives; default var_dir/keys.json."
    )
    log_file: Path | None = None
    outbox_dir: Path | None = None
    #: maildir (embedded default: var/outbox), null, smtp (settings smtp_* below).
    transport: Literal["maildir", "null", "smtp"] = "maildir"
    templates_dir: Path = PROJECT_ROOT / "templates"
    topics_file: Path | None = None
    #: Public base URL of the web app, as links in emails show it. Always https:
    #: List-Unsubscribe must be https (RFC 8058). ``tact serve`` listens on
    #: web_host:web_port behind the TLS proxy that answers for this URL.
    public_base_url: str = "https://prefs.northwind.example"
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    #: Address for ``mailto:`` unsubscribes (List-Unsubscribe); local part + token.
    unsubscribe_mailbox: str = "unsubscribe@northwind.example"
    #: Unsubscribe and preference links stay valid this long (>= 60 days: CASL).
    link_token_days: int = Field(default=400, ge=60)
    #: Export and erasure links are short-lived.
    sensitive_token_minutes: int = Field(default=60, ge=5, le=1440)
    confirm_token_days: int = Field(default=7, ge=1, le=60)
    #: Retired token keys still verify for this long after a newer one was added.
    token_grace_days: int = Field(default=400, ge=60)
    #: At most this many double opt-in emails per address per day.
    optin_requests_per_day: int = Field(default=3, ge=1)
    #: DKIM signing (optional): all three set turns it on. The key is a PEM secret
    #: (TACT_DKIM_PRIVATE_KEY_FILE); h= covers both list headers (RFC 8058 §4).
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key: SecretStr | None = None
    dkim_algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"
    #: Default regime of consent given at import when the file does not say.
    import_regime: str = "gdpr-consent"
    import_batch_size: int = Field(default=2500, ge=1, le=100_000)
    rotation_batch_size: int = Field(default=1000, ge=1, le=100_000)
    #: Free attributes not declared here are treated as personal (encrypted).
    public_attributes: tuple[str, ...] = ("loyalty_tier", "preferred_channel")
    log_level: str = "INFO"
    #: Frequency caps for marketing email (the gate): at most cap_global_count in any
    #: rolling window of cap_global_window_hours, and at least cap_min_gap_hours apart.
    #: Per-topic caps come from topics.toml; the customer's cadence adds its own; the
    #: strictest wins.
    cap_global_count: int = Field(default=3, ge=1)
    cap_global_window_hours: int = Field(default=168, ge=1)
    cap_min_gap_hours: int = Field(default=20, ge=0)
    #: Quiet hours in the recipient's local time: [start, end), wrapping midnight when
    #: start > end; start == end turns them off.
    quiet_hours_start: int = Field(default=21, ge=0, le=23)
    quiet_hours_end: int = Field(default=8, ge=0, le=23)
    # -- SMTP transport (transport = "smtp") ------------------------------------------------
    #: Relay to hand messages to. STARTTLS: unset upgrades when offered, true requires
    #: it, false never. AUTH when a username is set (password: TACT_SMTP_PASSWORD_FILE),
    #: only over TLS. Per-domain rate in messages/second per recipient domain.
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_pool_size: int = Field(default=4, ge=1, le=64)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_per_domain_rate: float | None = Field(default=None, gt=0)
    smtp_local_hostname: str | None = None
    # -- end SMTP transport ------------------------------------------------------------------

    # -- campaigns ---------------------------------------------------------------------------
    #: Recipients per batch (one gate call, one transaction, one broker task).
    campaign_batch_size: int = Field(default=500, ge=1, le=100_000)
    #: A campaign pauses itself after this many transport failures in a row.
    campaign_pause_after_failures: int = Field(default=20, ge=1)
    #: How long a claimed outbox row is held before another run may take it over.
    campaign_lease_seconds: int = Field(default=900, ge=1)
    #: Backoff after a transient delivery failure: the first retry waits this long,
    #: each next one twice as long (capped at an hour), for at most this many attempts.
    delivery_retry_base_seconds: float = Field(default=30.0, gt=0, le=3600)
    delivery_retry_max_attempts: int = Field(default=8, ge=1, le=50)
    # -- end campaigns -----------------------------------------------------------------------

    # -- workers (server mode) ---------------------------------------------------------------
    #: The Celery broker, Redis (run with ``maxmemory-policy noeviction``), e.g.
    #: redis://localhost:6379/0. Needed by ``tact worker`` and ``tact beat`` only.
    broker_url: str | None = None
    #: Redis redelivers an unacknowledged task after this long. It must exceed the
    #: longest task: a batch task is killed at ``campaign_lease_seconds``, so this
    #: has to be larger than the lease.
    worker_visibility_timeout_seconds: int = Field(default=3600, ge=1)
    #: ``tact beat`` ticks this often: launch due campaigns, enqueue due batches.
    beat_interval_seconds: float = Field(default=5.0, gt=0)
    #: A batch enqueued by the beat is not enqueued again for this long unless its
    #: task ended (a short Redis key, dropped by the task): one queued task per batch.
    batch_guard_seconds: int = Field(default=60, ge=1)
    # -- end workers -------------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            FileSecretsSource(settings_cls),
            TomlConfigSettingsSource(settings_cls, toml_file=config_path()),
        )

    @field_validator("database_url")
    @classmethod
    def _no_placeholder_url(cls, value: str | None) -> str | None:
        if value is not None and ("changeme" in value or "CHANGE_ME" in value):
            raise ValueError("database_url still contains a placeholder")
        return value

    # Derived paths: one place decides where embedded-mode files go.
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'tact.db'}"

    @property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.var_dir / "keys.json"

    @property
    def resolved_topics_file(self) -> Path:
        return self.topics_file or self.templates_dir / "topics.toml"

    @property
    def resolved_log_file(self) -> Path:
        return self.log_file or self.var_dir / "log" / "tact.log"

    @property
    def resolved_outbox_dir(self) -> Path:
        return self.outbox_dir or self.var_dir / "outbox"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    try:
        return Settings()
    except ConfigurationError:
        raise
    except ValidationError as exc:  # say it plainly, without echoing values (secrets)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from None
    except Exception as exc:  # e.g. a syntax error in tact.toml
        raise ConfigurationError(f"invalid configuration: {exc}") from None
