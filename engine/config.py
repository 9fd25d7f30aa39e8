"""One Settings object for the whole program.

Values come, strongest first, from: keyword arguments, ``TACT_*`` environment
variables, ``TACT_<NAME>_FILE`` files for secrets (Docker/Kubernetes secrets),
the local config file written by ``tact init`` (``tact.toml``, or the path in
``TACT_CONFIG``), and the defaults below. The defaults are the embedded mode:
SQLite and a Maildir outbox under ``./var``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP transport's settings as one group (``Settings.smtp``).

    Built from the flat ``smtp_*`` fields, so the environment variables stay
    ``TACT_SMTP_HOST`` and so on; a transport takes its group, never the whole
    ``Settings`` (``SmtpTransport.from_settings``).
    """

    host: str
    port: int
    starttls: bool | None
    username: str | None
    password: SecretStr | None  # stays masked in a repr
    pool_size: int
    timeout_seconds: float
    per_domain_rate: float | None
    local_hostname: str | None


class Settings(BaseSettings):
    """Everything configurable. Paths are relative to the working directory."""

    model_config = SettingsConfigDict(env_prefix="TACT_", extra="ignore")

    var_dir: Path = Field(
        default=Path("var"),
        description="Folder of the embedded mode's files (database, keystore, keys, log, "
        "outbox); created 0700, its files 0600.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database; default SQLite at var_dir/tact.db (its "
        "keystore beside it, tact.keystore.db). PostgreSQL: postgresql+psycopg://user@host/db. "
        "A secret: may come from TACT_DATABASE_URL_FILE.",
    )
    keyring: SecretStr | None = Field(
        default=None,
        description="The keyring JSON itself. Set it as TACT_KEYRING_FILE, the path of a file "
        "holding it (a Docker or Kubernetes secret), rather than in the environment. When "
        "set, key_file is not used and `tact init` creates no keys.",
    )
    key_file: Path | None = Field(
        default=None,
        description="Where the embedded mode keeps its keyring when TACT_KEYRING(_FILE) is "
        "not set: created by `tact init` (0600), refused if group or others can read it; "
        "default var_dir/keys.json.",
    )
    log_file: Path | None = Field(
        default=None, description="Tact's log (addresses masked); default var_dir/log/tact.log."
    )
    outbox_dir: Path | None = Field(
        default=None,
        description="Maildir the maildir transport writes to; default var_dir/outbox.",
    )
    transport: Literal["maildir", "null", "smtp"] = Field(
        default="maildir",
        description="How messages leave: maildir (files in outbox_dir), null (dropped), smtp "
        "(the smtp_* settings).",
    )
    templates_dir: Path = Field(
        default=PROJECT_ROOT / "templates",
        description="Brand base, campaigns, notices and web templates.",
    )
    topics_file: Path | None = Field(
        default=None, description="The topics and their caps; default templates_dir/topics.toml."
    )
    public_base_url: str = Field(
        default="https://prefs.northwind.example",
        description="Public https base URL of the web app, as links in emails show it "
        "(List-Unsubscribe must be https, RFC 8058).",
    )
    web_host: str = Field(
        default="127.0.0.1",
        description="`tact serve` listens here, behind the TLS proxy of public_base_url.",
    )
    web_port: int = Field(default=8000, description="`tact serve` listens on this port.")
    web_only: Literal["all", "public", "admin"] = Field(
        default="all",
        description="What `tact serve` serves: all, public (unsubscribe, preference center, "
        "sign-up: may face the internet) or admin (the console under /admin and the API under "
        "/api/v1: keep it internal).",
    )
    console_base_url: str | None = Field(
        default=None,
        description="The console's external origin as browsers see it (for example "
        "https://admin.example.com); its forms accept this origin and the address tact serve "
        "listens on, never one taken from the request. Default: the origin of "
        "public_base_url.",
    )
    console_session_idle_minutes: int = Field(
        default=30, ge=1, description="A console session ends after this long without a request."
    )
    console_session_hours: int = Field(
        default=12, ge=1, description="A console session ends this long after login, in any case."
    )
    console_secure_cookie: bool = Field(
        default=True,
        description="Mark the console's session cookie Secure (https only; browsers also keep "
        "it on http://localhost). Turn off only for a plain-http test set-up.",
    )
    api_rate_per_minute: int = Field(
        default=600, ge=1, description="Requests per minute one API token may make (then 429)."
    )
    login_attempts_per_minute: int = Field(
        default=10,
        ge=1,
        description="Console logins one client address may try per minute (then 429), besides "
        "the lock of an account after 5 failures in a row.",
    )
    api_auth_failures_per_minute: int = Field(
        default=20,
        ge=1,
        description="Failed API authentications (an unknown, revoked or expired token) one "
        "client address may make per minute (then 429, counted per server process).",
    )
    unsubscribe_mailbox: str = Field(
        default="unsubscribe@northwind.example",
        description="Address of mailto: unsubscribes (List-Unsubscribe); local part + token.",
    )
    link_token_days: int = Field(
        default=400,
        ge=60,
        description="Unsubscribe and preference links stay valid this long (at least 60: CASL).",
    )
    sensitive_token_minutes: int = Field(
        default=60, ge=5, le=1440, description="Lifetime of export and erasure links."
    )
    confirm_token_days: int = Field(
        default=7, ge=1, le=60, description="Lifetime of double opt-in confirmation links."
    )
    token_grace_days: int = Field(
        default=400,
        ge=60,
        description="Retired token keys still verify this long after a newer one was added.",
    )
    optin_requests_per_day: int = Field(
        default=3, ge=1, description="At most this many double opt-in emails per address a day."
    )
    dkim_selector: str | None = Field(
        default=None,
        description="DKIM selector; DKIM signs when selector, domain and key are all set.",
    )
    dkim_domain: str | None = Field(default=None, description="DKIM signing domain (d=).")
    dkim_private_key: SecretStr | None = Field(
        default=None,
        description="DKIM private key, PEM. A secret: set TACT_DKIM_PRIVATE_KEY_FILE.",
    )
    dkim_algorithm: Literal["rsa-sha256", "ed25519-sha256"] = Field(
        default="rsa-sha256", description="DKIM algorithm."
    )
    import_regime: str = Field(
        default="gdpr-consent",
        description="Consent regime recorded at import when the file does not say.",
    )
    import_batch_size: int = Field(
        default=2500, ge=1, le=100_000, description="Import rows per transaction."
    )
    rotation_batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Data keys re-wrapped per transaction by `tact keys rotate`.",
    )
    public_attributes: tuple[str, ...] = Field(
        default=("loyalty_tier", "preferred_channel"),
        description="Free attributes stored in clear; every other attribute is personal "
        "(encrypted). JSON list in the environment.",
    )
    log_level: str = Field(default="INFO", description="Level of the log file.")
    cap_global_count: int = Field(
        default=3,
        ge=1,
        description="Frequency cap: at most this many marketing emails per contact in any "
        "rolling cap_global_window_hours (topic caps and the contact's cadence add theirs; "
        "the strictest wins).",
    )
    cap_global_window_hours: int = Field(
        default=168, ge=1, description="The rolling window of cap_global_count, in hours."
    )
    cap_min_gap_hours: int = Field(
        default=20, ge=0, description="Minimum gap between two marketing emails to a contact."
    )
    quiet_hours_start: int = Field(
        default=21,
        ge=0,
        le=23,
        description="Quiet hours in the recipient's local time start at this hour: "
        "[start, end), wrapping midnight when start > end; start == end turns them off.",
    )
    quiet_hours_end: int = Field(
        default=8, ge=0, le=23, description="Quiet hours end at this hour (local time)."
    )
    test_recipients: str | None = Field(
        default=None,
        description="Comma-separated addresses `tact campaigns test` may send to; set, --to "
        "may name only these and may be left out (the whole list); unset, --to is required.",
    )
    # -- SMTP transport (transport = "smtp") ------------------------------------------------
    smtp_host: str = Field(default="localhost", description="SMTP relay host.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP relay port.")
    smtp_starttls: bool | None = Field(
        default=None,
        description="STARTTLS: unset upgrades when offered, true requires it, false never.",
    )
    smtp_username: str | None = Field(
        default=None, description="SMTP AUTH user (AUTH only over TLS)."
    )
    smtp_password: SecretStr | None = Field(
        default=None, description="SMTP AUTH password. A secret: set TACT_SMTP_PASSWORD_FILE."
    )
    smtp_pool_size: int = Field(
        default=4, ge=1, le=64, description="Persistent SMTP connections per sending process."
    )
    smtp_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of each SMTP exchange."
    )
    smtp_per_domain_rate: float | None = Field(
        default=None,
        gt=0,
        description="At most this many messages a second per recipient domain; unset: no limit.",
    )
    smtp_local_hostname: str | None = Field(
        default=None, description="Name given in EHLO; unset: this host's FQDN."
    )
    # -- end SMTP transport ------------------------------------------------------------------

    # -- campaigns ---------------------------------------------------------------------------
    campaign_batch_size: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Recipients per batch (one gate call, one transaction, one broker task).",
    )
    campaign_pause_after_failures: int = Field(
        default=20,
        ge=1,
        description="A campaign pauses itself after this many transport failures in a row.",
    )
    campaign_lease_seconds: int = Field(
        default=900,
        ge=1,
        description="A claimed outbox row is held this long before another run may take it over.",
    )
    delivery_retry_base_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="After a transient delivery failure the first retry waits this long, each "
        "next one twice as long (capped at an hour).",
    )
    delivery_retry_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Delivery attempts before a message is given up."
    )
    # -- end campaigns -----------------------------------------------------------------------

    # -- engagement tracking -----------------------------------------------------------------
    tracking_mode: Literal["off", "aggregate"] = Field(
        default="off",
        description="Click tracking: off (links go straight to their destination, nothing is "
        "recorded) or aggregate (for each contact who allows it, links in blocks become "
        "/c/TOKEN redirects; each click is recorded with campaign, variant, segment and "
        "language, never a contact id). Under the GDPR a contact allows it only by ticking "
        "the preference center's box; under CAN-SPAM and CASL until they untick it.",
    )
    click_too_soon_seconds: int = Field(
        default=10,
        ge=0,
        le=3600,
        description="A click this soon after its message was composed is flagged as a likely "
        "link scanner (machine = too-soon).",
    )
    # -- end engagement tracking -------------------------------------------------------------

    # -- workers (server mode) ---------------------------------------------------------------
    broker_url: str | None = Field(
        default=None,
        description="Celery broker, Redis with maxmemory-policy noeviction, e.g. "
        "redis://localhost:6379/0; needed by `tact worker` and `tact beat` only.",
    )
    worker_visibility_timeout_seconds: int = Field(
        default=3600,
        ge=1,
        description="Redis redelivers an unacknowledged task after this long; must exceed "
        "campaign_lease_seconds (a batch task is killed at the lease).",
    )
    beat_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="`tact beat` ticks this often: launch due campaigns, enqueue due batches.",
    )
    batch_guard_seconds: int = Field(
        default=60,
        ge=1,
        description="A batch the beat enqueued is not enqueued again for this long unless its "
        "task ended: one queued task per batch.",
    )
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

    @field_validator("tracking_mode", mode="before")
    @classmethod
    def _no_individual_tracking_yet(cls, value: Any) -> Any:
        if value == "individual":
            raise ValueError(
                "tracking_mode 'individual' is not available yet (it needs the contact's "
                "tracking consent); use 'off' or 'aggregate'"
            )
        return value

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
    def smtp(self) -> SmtpSettings:
        """The ``smtp_*`` fields, grouped for the SMTP transport."""
        return SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            starttls=self.smtp_starttls,
            username=self.smtp_username,
            password=self.smtp_password,
            pool_size=self.smtp_pool_size,
            timeout_seconds=self.smtp_timeout_seconds,
            per_domain_rate=self.smtp_per_domain_rate,
            local_hostname=self.smtp_local_hostname,
        )

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
