"""The ``tact`` command.

Errors end the program with one plain line on stderr (``error: ...``, then ``hint: ...``
when the error has one) and an exit code, never a traceback full of bytes. With
``--json`` anywhere on the command line an error also prints, on **stdout**, one JSON
object ``{"error": {"code": ..., "message": ..., "hint": ...}}`` (a refused lint adds
``"findings"``; the plain line stays on stderr for the person watching), with the same
exit code:

- 0: done (also a no-op such as ``pause`` on a paused campaign, which says so);
- 1: Tact refused to do it (any other TactError: no such campaign or contact, a move the
  campaign's state does not allow, a test recipient refused...);
- 2: the input or the setup is unusable, or the campaign is not due: a usage error,
  configuration (keys, settings), a template (RenderError, TemplateError, a refused lint:
  LintFailed), a segment rule (RuleError), a render past its limits (BoundExceeded), the
  database or keystore (DatabaseError, and every error of the database driver,
  explained by engine.runtime.database_error), a TOML file that does not parse, a
  campaign sent before its time (CampaignNotDue, ``send`` without ``--now``);
- 130: Ctrl-C.

Start-up is lazy: ``COMMANDS`` names each command's module and its one-line help, so
``tact --help`` lists them all without importing any (no SQLAlchemy, numpy or
scikit-learn for help); a command's module is imported when it runs or its own
``--help`` is asked for. ``tests/test_cli_startup.py`` checks the short help strings
against the modules.

The process runs with a 0077 umask: every file it creates (database, keystore,
log, outbox, rejects, exports) is private to its user.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, ClassVar

import typer
from typer import _click as click

from engine.cli.lazy import Entry, LazyGroup
from engine.errors import (
    BoundExceeded,
    CampaignNotDue,
    ConfigurationError,
    DatabaseError,
    LintFailed,
    RenderError,
    RuleError,
    TactError,
    TemplateError,
)
from engine.fsmodes import PROCESS_UMASK

START = "Start here"
MARKETING = "Campaigns and content"
PEOPLE = "Contacts and consent"
RUNNING = "Running"
OPERATING = "Operating"

#: Every top-level command, in the order ``tact --help`` lists them.
COMMANDS: dict[str, Entry] = {
    "init": Entry(
        "engine.cli.init_cmd",
        "init",
        "Create tact.toml, a keyring (mode 0600) and the database. Never overwrites keys.",
        START,
    ),
    "demo": Entry(
        "engine.cli.demo_cmd",
        "demo",
        "Generate customers, import them, build segments, send a campaign through the gate.",
        START,
    ),
    "generate": Entry(
        "engine.cli.generate_cmd",
        "generate",
        "Write realistic synthetic customers: names in many scripts, orders, engagement.",
        START,
    ),
    "campaigns": Entry(
        "engine.cli.campaigns_cmd",
        "app",
        "Campaigns: create, list, edit, clone, schedule, send, pause, report, delete.",
        MARKETING,
    ),
    "templates": Entry("engine.cli.templates_cmd", "app", "Campaign templates.", MARKETING),
    "preview": Entry(
        "engine.cli.preview_cmd",
        "preview",
        "Write the HTML, text, .eml and a PNG (cropped to the content) of each distinct version.",
        MARKETING,
    ),
    "segments": Entry(
        "engine.cli.segments_cmd",
        "app",
        "Customer segments: rule segments and learned (clustered) segments.",
        MARKETING,
    ),
    "contacts": Entry(
        "engine.cli.contacts_cmd", "app", "Contacts: import, look up, export, erase.", PEOPLE
    ),
    "topics": Entry(
        "engine.cli.topics_cmd",
        "app",
        "Subscription topics (defined in templates/topics.toml).",
        PEOPLE,
    ),
    "consent": Entry(
        "engine.cli.consent_cmd",
        "app",
        "The consent ledger: proof of who agreed to what, and when.",
        PEOPLE,
    ),
    "inbound": Entry(
        "engine.cli.inbound_cmd",
        "app",
        "Incoming mail: the mailto: unsubscribe, bounces and complaints.",
        PEOPLE,
    ),
    "run": Entry(
        "engine.cli.run_cmd",
        "run",
        "Launch scheduled campaigns at their time and send their batches, until stopped.",
        RUNNING,
    ),
    "serve": Entry(
        "engine.cli.serve_cmd",
        "serve",
        "Serve the pages that the links in emails open, the console and the API.",
        RUNNING,
    ),
    "worker": Entry(
        "engine.cli.worker_cmd",
        "worker",
        "Run a worker that sends campaign batches taken from the broker.",
        RUNNING,
    ),
    "beat": Entry(
        "engine.cli.worker_cmd",
        "beat",
        "Launch due campaigns and enqueue their due batches, every few seconds.",
        RUNNING,
    ),
    "staff": Entry(
        "engine.cli.staff_cmd",
        "app",
        "Staff accounts for the console and the API: add, list, disable, roles.",
        OPERATING,
    ),
    "tokens": Entry(
        "engine.cli.staff_cmd",
        "tokens_app",
        "API tokens: create (shown once), list, revoke.",
        OPERATING,
    ),
    "audit": Entry(
        "engine.cli.staff_cmd",
        "audit_app",
        "The audit log: who did what, and when; export as JSON lines.",
        OPERATING,
    ),
    "keys": Entry("engine.cli.keys_cmd", "app", "Encryption keys.", OPERATING),
    "db": Entry("engine.cli.db_cmd", "app", "Database schema (Alembic migrations).", OPERATING),
    "settings": Entry(
        "engine.cli.settings_cmd",
        "app",
        "The effective settings and the settings reference.",
        OPERATING,
    ),
}


class RootGroup(LazyGroup):
    """The ``tact`` group: every command is lazy (:data:`COMMANDS`).

    Its own help is drawn here from :data:`COMMANDS` with a few Rich parts (Typer's rich
    help module alone costs more start-up than the target allows); a command's help is
    Typer's, once its module is loaded.
    """

    lazy: ClassVar[dict[str, Entry]] = COMMANDS

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from rich import box
        from rich.console import Console
        from rich.padding import Padding
        from rich.panel import Panel
        from rich.table import Table

        console = Console()

        width = max(len(name) for name in COMMANDS)

        def panel(title: str, rows: list[tuple[str, str]]) -> Panel:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold cyan", no_wrap=True, min_width=width)
            grid.add_column()
            for name, text in rows:
                grid.add_row(name, text)
            return Panel(grid, title=title, title_align="left", border_style="dim", box=box.ROUNDED)

        console.print(
            Padding(
                f"[bold]Usage:[/] {ctx.command_path} [OPTIONS] COMMAND [ARGS]...", (1, 1, 0, 1)
            ),
            highlight=False,
        )
        for paragraph in (self.help or "").split("\n\n"):
            console.print(Padding(" ".join(paragraph.split()), (1, 1, 0, 1)), highlight=False)
        console.print()
        options = [
            (", ".join(p.opts), getattr(p, "help", None) or "")
            for p in self.get_params(ctx)
            if p.param_type_name == "option" and not getattr(p, "hidden", False)
        ]
        console.print(panel("Options", options))
        panels: dict[str, list[tuple[str, str]]] = {}
        for name, entry in COMMANDS.items():
            panels.setdefault(entry.panel or "Commands", []).append((name, entry.help))
        for title, rows in panels.items():
            console.print(panel(title, rows))
        console.print(
            Padding("[dim]tact COMMAND --help shows a command's options.[/]", (0, 1, 1, 1)),
            highlight=False,
        )


app = typer.Typer(
    name="tact",
    cls=RootGroup,
    help="Tact: privacy-aware email personalization. One brand base, personalized blocks, "
    "consent enforced at send time, personal data encrypted at rest.\n\n"
    "Every command takes --json for machine-readable output (errors too). "
    "After `make demo`, `. .venv/bin/activate` puts tact on PATH (or run .venv/bin/tact).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Tact: privacy-aware email personalization."""


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


def _is_toml_error(exc: BaseException) -> bool:
    """A TOML file that does not parse (tomllib is not imported for this: a command that
    read TOML has imported it already)."""
    tomllib = sys.modules.get("tomllib")
    return tomllib is not None and isinstance(exc, tomllib.TOMLDecodeError)


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error (see the module docstring)."""
    if isinstance(exc, _Usage):
        return exc.exit_code
    if isinstance(exc, ConfigurationError) or _is_toml_error(exc):
        return 2
    unusable = (
        DatabaseError,
        CampaignNotDue,
        RenderError,
        TemplateError,
        RuleError,
        BoundExceeded,
        LintFailed,
    )
    return 2 if isinstance(exc, unusable) else 1


def _run(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    try:
        if as_json:
            return _run_json(args)
        app(args=args, prog_name="tact")  # standalone: usage errors print and exit 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except (ConfigurationError, TactError) as exc:
        return _report(exc, as_json)
    except Exception as exc:
        if _is_toml_error(exc):
            return _report(exc, as_json)
        from engine.runtime import database_error  # imported only when something failed

        explained = database_error(exc)  # the database driver's errors, explained
        if explained is None:
            raise
        return _report(explained, as_json)
    return 0


def _run_json(args: list[str]) -> int:
    """Under ``--json`` a usage error (a missing or wrong option) is data too."""
    try:
        result = app(args=args, prog_name="tact", standalone_mode=False)
    except click.ClickException as exc:  # a usage error, a bad parameter
        return _report(_Usage(exc), True)
    except typer.Abort:
        from engine.cli.console import err

        err.print("aborted")
        return 1
    return result if isinstance(result, int) else 0


class _Usage(Exception):
    """A usage error of the command line, as :func:`_report` prints errors."""

    code = "usage"

    def __init__(self, exc: Any) -> None:
        super().__init__(exc.format_message())
        ctx = getattr(exc, "ctx", None)
        self.hint = f"`{ctx.command_path} --help` shows how to use it" if ctx is not None else None
        self.exit_code = int(getattr(exc, "exit_code", 2))


def error_object(exc: BaseException) -> dict[str, Any]:
    """``{"error": {"code", "message", "hint"}}`` (plus ``findings`` for a refused lint)."""
    if _is_toml_error(exc):
        code, message = "toml-invalid", f"a TOML file does not parse: {exc}"
    else:
        code, message = getattr(exc, "code", "error"), str(exc)
    error: dict[str, Any] = {"code": code, "message": message, "hint": getattr(exc, "hint", None)}
    if isinstance(exc, LintFailed):
        error["findings"] = [
            {
                "level": getattr(f, "level", None),
                "where": getattr(f, "where", None),
                "message": getattr(f, "message", str(f)),
            }
            for f in exc.findings
        ]
    return {"error": error}


def _report(exc: BaseException, as_json: bool) -> int:
    code = exit_code(exc)
    data = error_object(exc)["error"]
    if as_json:  # the data on stdout for the script; the sentence on stderr still
        sys.stdout.write(json.dumps(error_object(exc), ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()
    from engine.cli.console import err

    err.print("[bold red]error:[/]", end=" ")
    # Unwrapped: a path or a command in the sentence stays whole for copy and grep.
    err.print(data["message"], markup=False, highlight=False, soft_wrap=True)
    if data["hint"]:
        err.print("[bold]hint:[/]", end=" ")
        err.print(data["hint"], markup=False, highlight=False, soft_wrap=True)
    if isinstance(exc, LintFailed) and exc.findings and not as_json:
        from engine.cli.templates_cmd import print_findings  # every finding, errors first

        print_findings(exc.findings, console=err)
    return code


if __name__ == "__main__":
    sys.exit(main())
