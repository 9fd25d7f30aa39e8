"""``tact templates lint`` (``tact preview`` is in :mod:`engine.cli.preview_cmd`).

A lint renders marketer templates in a child process under memory and CPU limits;
that is the use-case's job (:mod:`engine.app.templates`), so every face gets it.

Output: per campaign, its errors, then its warnings, one finding per line with its
location whole (never cut at the terminal's width), then its notes summarized in one
line (``--verbose`` lists them), then a status line; the last line says what to do
next. ``--json`` prints ``{"campaigns": [{"name", "ok", "errors", "warnings", "notes",
"findings": [{"level", "where", "message"}]}]}``. Exit 1 when any campaign has an error.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.markup import escape

from engine.app import templates
from engine.app.templates import Finding, SegmentNames, TemplateLint
from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.errors import BoundExceeded

# Re-exported for older callers: the child-process runner now lives in the use-case.
__all__ = ["BoundExceeded", "app", "bounded", "lint", "print_findings"]
bounded = templates.bounded

app = typer.Typer(help="Campaign templates.", no_args_is_help=True)

_TAGS = {"error": "[red]error[/]", "warning": "[yellow]warning[/]", "note": "note"}
#: What a kind of note is about, for the one-line summary.
_NOTE_KINDS = (
    ("gets the standard version", "segments that get the standard version"),
    ("rename", "older spellings to rename"),
)


def _known_segments(rt: Runtime) -> SegmentNames:
    known = templates.segment_names(rt)
    if not known.database:
        err.print("[dim]no database found: segment names are not checked[/]", highlight=False)
    elif known.names is None:
        err.print(
            "[dim]no segment build yet: segment names are not checked (tact segments build)[/]",
            highlight=False,
        )
    return known


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _note_summary(notes: list[Finding]) -> str:
    kinds: Counter[str] = Counter()
    for note in notes:
        label = next((label for key, label in _NOTE_KINDS if key in note.message), "other notes")
        kinds[label] += 1
    if len(kinds) == 1:
        (label,) = kinds
        about = label
    else:
        about = ", ".join(f"{count} {label}" for label, count in kinds.most_common())
    return f"{_plural(len(notes), 'note')}: {about} (--verbose lists them)"


def _print_finding(f: Finding, console: Console) -> None:
    # One line per finding; soft_wrap: no line break is inserted, so a location is never
    # cut or split, whatever the width (the terminal wraps the line if it must).
    console.print(
        f"{_TAGS.get(f.level, f.level)} {escape(f.where)}: {escape(f.message)}",
        soft_wrap=True,
        highlight=False,
    )


def print_findings(
    findings: Sequence[Finding], *, verbose: bool = False, console: Console = out
) -> None:
    """Errors, then warnings, one a line with the location whole; then the notes, in one
    summary line unless ``verbose``. For any command that shows a lint's findings (the
    refusal of ``campaigns create``, ``edit`` and ``schedule`` too)."""
    rank = {"error": 0, "warning": 1}
    ordered = sorted(findings, key=lambda f: rank.get(f.level, 2))
    notes = [f for f in ordered if f.level == "note"]
    for f in ordered:
        if f.level != "note" or verbose:
            _print_finding(f, console)
    if notes and not verbose:
        console.print(f"[dim]{escape(_note_summary(notes))}[/]", soft_wrap=True, highlight=False)


def _print_result(result: TemplateLint, verbose: bool) -> None:
    print_findings(result.findings, verbose=verbose)
    status = "[red]failed[/]" if result.errors else "[green]ok[/]"
    counts = ", ".join(
        (
            _plural(result.errors, "error"),
            _plural(result.warnings, "warning"),
            _plural(result.notes, "note"),
        )
    )
    out.print(f"{escape(result.name)}: {status} ({counts})", soft_wrap=True, highlight=False)


@app.command()
def lint(
    template: str | None = typer.Argument(
        None, help="Template folder under templates/campaigns (default: all)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every note too."),
) -> None:
    """Check a template before it is used: syntax, fields, html/txt pairs, subjects,
    segments, campaign.toml keys, scripts and forms, the brand footer."""
    rt = Runtime()
    results = templates.lint(rt, [template] if template else None, known=_known_segments(rt))
    failed = [result.name for result in results if not result.ok]
    if as_json:
        doc = {"campaigns": [result.as_dict() for result in results]}
        out.print_json(json.dumps(doc, ensure_ascii=False))
    else:
        for result in results:
            _print_result(result, verbose)
        if failed:
            which = failed[0] if len(failed) == 1 else "NAME"
            out.print(
                f"next: fix the errors above (each names its file and line), then run "
                f"`tact templates lint {escape(which)}` again",
                soft_wrap=True,
                highlight=False,
            )
        else:
            which = results[0].name if len(results) == 1 else "TEMPLATE"
            out.print(
                f"next: tact campaigns create NAME --template {escape(which)}",
                soft_wrap=True,
                highlight=False,
            )
    if failed:
        raise typer.Exit(1)
