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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from engine.errors import BoundExceeded, LintFailed, TactError
from engine.render.lint import Finding, lint_template
from engine.runtime import Runtime
from engine.segments.store import known_segment_names

__all__ = [
    "CHILD_CPU_SECONDS",
    "CHILD_EXTRA_BYTES",
    "Finding",
    "SegmentNames",
    "TemplateLint",
    "bounded",
    "check_campaign",
    "lint",
    "lint_one",
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


def check_campaign(
    rt: Runtime,
    template: str,
    *,
    segments: Sequence[str] | None = None,
    topic: str | None = None,
    send_at: datetime | None = None,
    now: datetime | None = None,
    allow_past: bool = False,
) -> TemplateLint:
    """The whole check of a campaign about to be created, edited or scheduled.

    Runs the template's lint (in the bounded child) and checks what the campaign adds
    to it: the segments it is limited to and its topic exist, and its send time is not
    in the past (unless ``allow_past``). Returns the findings when there is no error
    (notes and warnings only); raises :class:`~engine.errors.LintFailed` carrying every
    finding when there is one.
    """
    known = segment_names(rt)
    result = lint_one(rt.settings.templates_dir, template, known.names)
    extra: list[Finding] = []
    where = "campaign"
    if segments and known.names is not None:
        for name in segments:
            if name not in known.names:
                extra.append(
                    Finding(
                        "error", where, f"no segment named '{name}' (known: {sorted(known.names)})"
                    )
                )
    if topic is not None and topic not in rt.topics:
        extra.append(
            Finding("error", where, f"no topic named '{topic}' (known: {rt.topics.names})")
        )
    if send_at is not None and not allow_past and send_at < (now or datetime.now(UTC)):
        extra.append(Finding("error", where, "the send time is in the past (--now sends at once)"))
    found = TemplateLint(template, (*extra, *result.findings))
    if found.errors:
        first = next(f for f in found.findings if f.level == "error")
        raise LintFailed(
            f"campaign refused: {first.where}: {first.message}"
            + (f" (and {found.errors - 1} more error(s))" if found.errors > 1 else "")
            + f"; `tact templates lint {template}` lists them",
            found.findings,
        )
    return found
