"""``tact settings``: the effective settings, where each came from, secrets masked.

``show`` answers "what is this installation actually running with?": every field
of :class:`engine.config.Settings`, its value after every source was applied, and
the source that won (environment, a ``TACT_<NAME>_FILE`` secret file, tact.toml,
or the default). Secrets are never printed: the keyring, the DKIM key and the SMTP
password show only whether they are set; URLs show ``***`` for their password.

``reference`` prints the Markdown table of every setting that the README carries,
generated from the Settings class so tests/test_docs.py can check it stays whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import typer
from pydantic import SecretStr
from pydantic_settings import EnvSettingsSource, TomlConfigSettingsSource

from engine.cli.console import out
from engine.config import (
    PROJECT_ROOT,
    SECRET_FIELDS,
    FileSecretsSource,
    Settings,
    config_path,
    get_settings,
)

app = typer.Typer(help="The effective settings and the settings reference.", no_args_is_help=True)

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
#: How the reference table shows defaults that are not plain values.
REFERENCE_DEFAULTS = {
    "database_url": "`sqlite:///var/tact.db`",
    "keyring": "not set",
    "key_file": "`var/keys.json`",
    "log_file": "`var/log/tact.log`",
    "outbox_dir": "`var/outbox`",
    "templates_dir": "`templates` (of the installed package)",
    "topics_file": "`templates/topics.toml`",
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


def effective(settings: Settings) -> list[dict[str, Any]]:
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
        rows.append({"name": name, "variable": var, "value": shown, "source": source})
    return rows


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Print every effective setting and where it came from; secrets are masked."""
    settings = get_settings()
    rows = effective(settings)
    cfg = config_path()
    if as_json:
        doc = {
            "config_file": str(cfg),
            "config_file_exists": cfg.is_file(),
            "settings": {
                r["name"]: {k: r[k] for k in ("variable", "value", "source")} for r in rows
            },
        }
        out.print_json(json.dumps(doc))
        return
    lines = [f"# config file: {cfg}" + ("" if cfg.is_file() else " (not found)")]
    for r in rows:
        value = r["value"]
        text = "" if value is None else json.dumps(value) if isinstance(value, list) else str(value)
        note = f"not set ({r['source']})" if value is None else r["source"]
        lines.append(f"{r['variable']}={text}  # {note}")
    # One line per setting, never wrapped or cut: greppable, and close to an env file.
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _reference_default(name: str) -> str:
    if name in REFERENCE_DEFAULTS:
        return REFERENCE_DEFAULTS[name]
    default = Settings.model_fields[name].default
    if default is None:
        return "not set"
    if isinstance(default, Path):
        try:
            default = default.relative_to(PROJECT_ROOT)
        except ValueError:
            pass
        return f"`{default}`"
    if isinstance(default, tuple):
        return f"`{json.dumps(list(default))}`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def reference_rows() -> list[str]:
    """The body rows of the README settings table, one per Settings field."""
    rows = []
    for name, field in Settings.model_fields.items():
        var = f"`{variable(name)}`"
        if name in SECRET_FIELDS:
            var += f" or `{variable(name)}_FILE`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| {var} | {_reference_default(name)} | {meaning} |")
    return rows


def reference() -> str:
    """The whole table, header included, in Markdown."""
    head = [
        "| setting | default | meaning |",
        "|---|---|---|",
        "| `TACT_CONFIG` | `tact.toml` | Path of the config file that `tact init` writes. |",
    ]
    return "\n".join([*head, *reference_rows()]) + "\n"


@app.command("reference")
def reference_cmd() -> None:
    """Print the Markdown table of every setting, its default and meaning (as in the README)."""
    out.print(reference(), markup=False, highlight=False, soft_wrap=True, end="")
