"""The ``tact`` command.

Errors end the program with one plain line on stderr and an exit code:
2 for configuration (keys, settings), 1 for anything Tact refused to do,
130 for Ctrl-C. Never a traceback full of bytes.
"""

from __future__ import annotations

import sys

import typer

from engine.cli import (
    campaigns_cmd,
    contacts_cmd,
    db_cmd,
    demo_cmd,
    generate_cmd,
    init_cmd,
    keys_cmd,
    segments_cmd,
    serve_cmd,
    templates_cmd,
    worker_cmd,
)
from engine.cli.consent_cmd import app as consent_app
from engine.cli.console import err
from engine.cli.inbound_cmd import app as inbound_app
from engine.cli.topics_cmd import app as topics_app
from engine.errors import ConfigurationError, TactError

app = typer.Typer(
    name="tact",
    help="Tact: privacy-aware email personalization. One brand base, personalized blocks, "
    "consent enforced at send time, personal data encrypted at rest.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.command("init")(init_cmd.init)
app.command("demo")(demo_cmd.demo)
app.command("generate")(generate_cmd.generate)
app.add_typer(db_cmd.app, name="db")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(contacts_cmd.app, name="contacts")
app.add_typer(segments_cmd.app, name="segments")
app.command("serve")(serve_cmd.serve)
app.add_typer(topics_app, name="topics")
app.add_typer(consent_app, name="consent")
app.add_typer(inbound_app, name="inbound")
app.add_typer(templates_cmd.app, name="templates")
app.command("preview")(templates_cmd.preview)
app.add_typer(campaigns_cmd.app, name="campaigns")
app.command("worker")(worker_cmd.worker)
app.command("beat")(worker_cmd.beat)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app(args=argv, prog_name="tact")  # standalone: usage errors print and exit 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ConfigurationError as exc:
        _report(exc)
        return 2
    except TactError as exc:
        _report(exc)
        return 1
    return 0


def _report(exc: Exception) -> None:
    err.print("[bold red]error:[/]", end=" ")
    err.print(str(exc), markup=False, highlight=False)


if __name__ == "__main__":
    sys.exit(main())
