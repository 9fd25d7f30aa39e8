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

import typer

from engine.app import setup
from engine.app.setup import mask_url, variable
from engine.cli.console import out
from engine.config import PROJECT_ROOT, SECRET_FIELDS, Settings

__all__ = ["app", "effective", "mask_url", "reference", "reference_rows"]

app = typer.Typer(help="The effective settings and the settings reference.", no_args_is_help=True)

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


def effective(settings: Settings) -> list[dict[str, Any]]:
    """Every setting as a JSON object: name, variable, displayed value, winning source."""
    return [value.as_dict() for value in setup.effective_settings(settings).settings]


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Print every effective setting and where it came from; secrets are masked."""
    view = setup.effective_settings()
    if as_json:
        out.print_json(json.dumps(view.as_dict()))
        return
    cfg = view.config_file
    lines = [f"# config file: {cfg}" + ("" if view.config_file_exists else " (not found)")]
    for r in view.settings:
        value = r.value
        text = "" if value is None else json.dumps(value) if isinstance(value, list) else str(value)
        note = f"not set ({r.source})" if value is None else r.source
        lines.append(f"{r.variable}={text}  # {note}")
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
def reference_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (errors too)."),
) -> None:
    """Print the Markdown table of every setting, its default and meaning (as in the README)."""
    if as_json:
        fields = [
            {
                "name": name,
                "variable": variable(name),
                "secret": name in SECRET_FIELDS,
                "default": _reference_default(name).strip("`"),
                "meaning": field.description or "",
            }
            for name, field in Settings.model_fields.items()
        ]
        out.print_json(json.dumps(fields, ensure_ascii=False, default=str))
        return
    out.print(reference(), markup=False, highlight=False, soft_wrap=True, end="")
