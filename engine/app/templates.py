"""Marketer templates as an operator checks them: lint, and preview every version.

Both render marketer templates on this machine, so both run the rendering in a
child process with an address-space and CPU limit (:func:`bounded`). That limit
belongs here, not in a face: every face that lints or previews a template (the
CLI today, the REST API of issue 13 next) must get it, and none should have to
remember it. The sandbox's own caps keep a render far below the limits; the
limits are the backstop should any path have escaped the caps. Screenshots are
taken by the parent (Chromium needs more address space than a render may use).
"""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from engine.errors import BoundExceeded, TactError
from engine.links.tokens import TokenSigner
from engine.render.lint import Finding, lint_template
from engine.render.preview import PreviewFile, screenshot, write_preview
from engine.runtime import Runtime
from engine.segments.store import known_segment_names
from engine.vault import load_keyring

__all__ = [
    "CHILD_CPU_SECONDS",
    "CHILD_EXTRA_BYTES",
    "Finding",
    "Preview",
    "PreviewFile",
    "SegmentNames",
    "TemplateLint",
    "bounded",
    "lint",
    "lint_one",
    "preview",
    "segment_names",
]

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


@dataclass(frozen=True)
class SegmentNames:
    """The segment names of the current build, which blocks are checked against.

    ``names`` is None before any build (names are then not checked); ``database``
    is False when there is no usable database at all (a lint before ``tact init``).
    """

    names: frozenset[str] | None
    database: bool


def segment_names(rt: Runtime) -> SegmentNames:
    """The names of the current segment build, if there is a database to ask."""
    try:
        with rt.engine.connect() as conn:
            names = known_segment_names(conn)
    except DBAPIError:
        return SegmentNames(None, database=False)
    return SegmentNames(None if names is None else frozenset(names), database=True)


@dataclass(frozen=True)
class TemplateLint:
    """The findings of one template folder (templates/campaigns/NAME)."""

    name: str
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.level == "error")

    @property
    def ok(self) -> bool:
        return not self.errors


def lint_one(templates_dir: Path, name: str, known: frozenset[str] | None) -> TemplateLint:
    """Lint one template folder in a bounded child; a failure of the child is one error."""

    def run() -> list[list[str]]:
        report = lint_template(templates_dir, name, None if known is None else set(known))
        return [[f.level, f.where, f.message] for f in report.findings]

    try:
        rows = bounded(run, f"lint {name}")
    except TactError as exc:
        rows = [["error", f"campaigns/{name}", str(exc)]]
    return TemplateLint(name, tuple(Finding(level, where, msg) for level, where, msg in rows))


def lint(
    rt: Runtime, names: list[str] | None = None, *, known: SegmentNames | None = None
) -> list[TemplateLint]:
    """Check syntax, declared fields, blocks per segment and the brand footer.

    ``names`` default to every folder under templates/campaigns/, in name order;
    ``known`` to :func:`segment_names` (pass it to say first that names are unchecked).
    """
    templates_dir = rt.settings.templates_dir
    root = templates_dir / "campaigns"
    names = names or sorted(p.name for p in root.iterdir() if p.is_dir())
    known = known or segment_names(rt)
    return [lint_one(templates_dir, name, known.names) for name in names]


@dataclass(frozen=True)
class Preview:
    """The files written for every version of a template, and what could not be done."""

    target: Path
    files: tuple[PreviewFile, ...]
    #: Why a screenshot was not taken (each reason once), e.g. no Chromium installed.
    warnings: tuple[str, ...]


def preview(
    rt: Runtime,
    campaign: str,
    out_dir: Path,
    *,
    screenshots: bool = True,
    known: SegmentNames | None = None,
) -> Preview:
    """Write the HTML, text, .eml (and a PNG) of the standard version and every segment.

    The render runs in a bounded child; a render that fails raises TactError (a
    BoundExceeded past the limits). Links are signed with the keyring's token keys;
    the database is asked only for segment names.
    """
    keyring = load_keyring(rt.settings)
    known = known or segment_names(rt)
    segments = set(known.names or ())
    target = out_dir / campaign
    settings = rt.settings

    def run() -> list[list[str]]:
        files = write_preview(
            settings,
            TokenSigner(keyring, settings),
            campaign,
            target,
            segments=segments,
            screenshots=False,
        )
        return [[f.version, str(f.html), str(f.text), str(f.eml)] for f in files]

    rows = bounded(run, f"preview {campaign}")
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
    return Preview(target=target, files=tuple(files), warnings=tuple(warnings))
