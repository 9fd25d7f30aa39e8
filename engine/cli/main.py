"""The ``tact`` command.

Errors end the program with one plain line on stderr and an exit code, never a
traceback full of bytes:

- 2: the input or the setup is unusable, or the campaign is not due (CampaignNotDue,
  ``campaigns send`` before its time without ``--now``): configuration (keys, settings), a
  template (RenderError), a campaign or its TOML (TemplateError), a segment rule
  (RuleError), the database or keystore (DatabaseError, and every error of the
  database driver, explained by engine.db.explain), a TOML file that does not parse;
- 1: anything else Tact refused to do (TactError);
- 130: Ctrl-C.

The process runs with a 0077 umask: every file it creates (database, keystore,
log, outbox, rejects, exports) is private to its user.
"""

from __future__ import annotations

import os
import sys
import tomllib

import typer

from engine.cli import (
    campaigns_cmd,
    contacts_cmd,
    db_cmd,
    demo_cmd,
    generate_cmd,
    init_cmd,
    keys_cmd,
    preview_cmd,
    run_cmd,
    segments_cmd,
    serve_cmd,
    settings_cmd,
    templates_cmd,
    worker_cmd,
)
from engine.cli.consent_cmd import app as consent_app
from engine.cli.console import err
from engine.cli.inbound_cmd import app as inbound_app
from engine.cli.topics_cmd import app as topics_app
from engine.errors import CampaignNotDue, ConfigurationError, DatabaseError, TactError
from engine.fsmodes import PROCESS_UMASK

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
app.command("preview")(preview_cmd.preview)
app.add_typer(campaigns_cmd.app, name="campaigns")
app.command("worker")(worker_cmd.worker)
app.command("beat")(worker_cmd.beat)
app.command("run")(run_cmd.run)
app.add_typer(settings_cmd.app, name="settings")

#: TactErrors that mean "this input is unusable" (exit 2), not "refused" (exit 1).
#: Imported lazily by name so that the CLI start does not pay for jinja2 or scikit-learn.
_INPUT_ERRORS = (
    ("engine.render.sandbox", "RenderError"),
    ("engine.render.template", "TemplateError"),
    ("engine.segments.rules", "RuleError"),
    ("engine.errors", "BoundExceeded"),  # a template past the render child's limits
    ("engine.errors", "LintFailed"),  # a campaign refused before launch
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    The 0077 umask holds for the whole command (and the worker or web processes it
    starts); the caller's umask is restored afterwards, for callers in-process.
    """
    previous = os.umask(PROCESS_UMASK)
    try:
        return _run(argv)
    finally:
        os.umask(previous)


def _run(argv: list[str] | None) -> int:
    from engine.runtime import database_error

    try:
        app(args=argv, prog_name="tact")  # standalone: usage errors print and exit 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ConfigurationError as exc:
        _report(exc)
        return 2
    except TactError as exc:
        _report(exc)
        return 2 if isinstance(exc, DatabaseError | CampaignNotDue) or _is_input_error(exc) else 1
    except tomllib.TOMLDecodeError as exc:
        _report(Exception(f"a TOML file does not parse: {exc}"))
        return 2
    except Exception as exc:
        explained = database_error(exc)  # the database driver's errors, explained
        if explained is None:
            raise
        _report(explained)
        return 2
    return 0


def _is_input_error(exc: TactError) -> bool:
    for module_name, name in _INPUT_ERRORS:
        module = sys.modules.get(module_name)  # not imported: the error cannot be of it
        kind = getattr(module, name, None) if module else None
        if isinstance(kind, type) and isinstance(exc, kind):
            return True
    return False


def _report(exc: Exception) -> None:
    err.print("[bold red]error:[/]", end=" ")
    # Unwrapped: a path or a command in the sentence stays whole for copy and grep.
    err.print(str(exc), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
