"""``tact templates lint`` and ``tact preview``.

Both render marketer templates on this machine, so both run the rendering in a
child process with an address-space and CPU limit (:func:`bounded`): the
sandbox's own caps keep a render far below them, and the limits are the
backstop should any path have escaped the caps. Screenshots are taken by the
parent (Chromium needs more address space than a render may use).
"""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.errors import (
    BoundExceeded,
    TactError,
)
from engine.links.tokens import TokenSigner
from engine.render.lint import lint_template
from engine.render.preview import PreviewFile, screenshot, write_preview
from engine.vault import load_keyring

app = typer.Typer(help="Campaign templates.", no_args_is_help=True)

#: Address space a lint or preview child may add to what the parent already uses.
CHILD_EXTRA_BYTES = 512 * 1024 * 1024
#: CPU seconds a lint or preview child may use (every render has its own 2 s deadline).
CHILD_CPU_SECONDS = 120


def _address_space() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def bounded(
    fn: Callable[[], Any],
    what: str,
    *,
    extra_bytes: int = CHILD_EXTRA_BYTES,
    cpu_seconds: int = CHILD_CPU_SECONDS,
) -> Any:
    """``fn()`` in a forked child under RLIMIT_AS / RLIMIT_CPU; its JSON result, or an error.

    A TactError raised in the child is raised again here as a TactError with the
    same one-sentence text; a child killed by a limit is a BoundExceeded.
    """
    if not hasattr(os, "fork"):
        return fn()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        status = 0
        try:
            used = _address_space()
            if used:
                limit = used + extra_bytes
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            spent = int(sum(os.times()[:2]))
            resource.setrlimit(resource.RLIMIT_CPU, (spent + cpu_seconds, spent + cpu_seconds + 5))
            payload: dict[str, Any] = {"ok": fn()}
        except TactError as exc:
            payload = {"error": str(exc)}
        except MemoryError:
            payload = {"limit": "memory"}
        except Exception as exc:
            payload = {"error": f"{what} failed ({type(exc).__name__})"}
        try:
            data = json.dumps(payload).encode("utf-8")
            with os.fdopen(write_fd, "wb") as fh:
                fh.write(data)
        except Exception:
            status = 1
        os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        reason = "CPU" if sig in (signal.SIGXCPU, signal.SIGKILL) else f"signal {sig}"
        raise BoundExceeded(f"{what}: stopped at the {reason} limit of the render process")
    try:
        payload = json.loads(data.decode("utf-8"))
    except ValueError:
        raise BoundExceeded(f"{what}: the render process ended without a result") from None
    if "limit" in payload:
        raise BoundExceeded(f"{what}: stopped at the memory limit of the render process")
    if "error" in payload:
        raise TactError(payload["error"])
    return payload["ok"]


def _known_segments(rt: Runtime) -> set[str] | None:
    """Segment names of the current build; None before any build or database (no check then)."""
    from engine.segments.store import known_segment_names

    try:
        with rt.engine.connect() as conn:
            return known_segment_names(conn)
    except DBAPIError:
        err.print("[dim]no segment build found: segment names are not checked[/]")
        return None


@app.command()
def lint(
    campaign: str | None = typer.Argument(None, help="Campaign name (default: all)."),
) -> None:
    """Check syntax, declared fields, blocks per segment and the brand footer."""
    rt = Runtime()
    root = rt.settings.templates_dir / "campaigns"
    names = [campaign] if campaign else sorted(p.name for p in root.iterdir() if p.is_dir())
    known = _known_segments(rt)
    failed = False
    templates_dir = rt.settings.templates_dir
    for name in names:

        def run(name: str = name) -> list[list[str]]:
            report = lint_template(templates_dir, name, known)
            return [[f.level, f.where, f.message] for f in report.findings]

        try:
            findings = bounded(run, f"lint {name}")
        except TactError as exc:
            findings = [["error", f"campaigns/{name}", str(exc)]]
        errors = sum(1 for level, _, _ in findings if level == "error")
        # One line per finding, never wrapped: "error campaigns/x/blocks/b/default.html.j2:3: …"
        for level, where, message in findings:
            tag = "[red]error[/]" if level == "error" else level
            out.print(f"{tag} {escape(where)}: {escape(message)}", soft_wrap=True)
        status = "[red]failed[/]" if errors else "[green]ok[/]"
        out.print(f"{name}: {status} ({errors} errors, {len(findings) - errors} notes)")
        failed = failed or bool(errors)
    if failed:
        raise typer.Exit(1)


def preview(
    campaign: str = typer.Argument(..., help="Campaign name (templates/campaigns/NAME)."),
    out_dir: Path = typer.Option(Path("var/preview"), "--out", help="Directory to write to."),
    screenshots: bool = typer.Option(True, help="PNG screenshots with headless Chromium."),
) -> None:
    """Write the HTML, text, .eml (and a PNG) of the standard version and every segment."""
    rt = Runtime()
    keyring = load_keyring(rt.settings)
    known = _known_segments(rt) or set()
    target = out_dir / campaign

    def run() -> list[list[str]]:
        files = write_preview(
            rt.settings,
            TokenSigner(keyring, rt.settings),
            campaign,
            target,
            segments=known,
            screenshots=False,
        )
        return [[f.version, str(f.html), str(f.text), str(f.eml)] for f in files]

    try:
        rows = bounded(run, f"preview {campaign}")
    except TactError as exc:
        err.print(escape(str(exc)), soft_wrap=True)
        raise typer.Exit(2) from None
    files: list[PreviewFile] = []
    warnings: list[str] = []
    for version, html, text, eml in rows:
        png: Path | None = None
        if screenshots:
            shot = Path(html).with_suffix(".png")
            problem = screenshot(Path(html).read_text("utf-8"), shot)
            if problem is None:
                png = shot
            elif problem not in warnings:
                warnings.append(problem)
        files.append(PreviewFile(version, Path(html), Path(text), Path(eml), png))
    table = Table("version", "html", "text", "eml", "png")
    for f in files:
        table.add_row(f.version, f.html.name, f.text.name, f.eml.name, f.png.name if f.png else "-")
    out.print(table)
    out.print(f"written to {target}")
    for warning in warnings:
        err.print(f"warning: {escape(warning)}")
