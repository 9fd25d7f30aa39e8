"""Marketer templates as an operator checks them: lint, and preview every version.

Both render marketer templates on this machine, so both run the rendering in a
child process with an address-space, CPU and wall-clock limit (:func:`bounded`). That limit
belongs here, not in a face: every face that lints or previews a template (the
CLI today, the REST API of issue 13 next) must get it, and none should have to
remember it. The sandbox's own caps keep a render far below the limits; the
limits are the backstop should any path have escaped the caps. Screenshots are
taken by the parent (Chromium needs more address space than a render may use).

:func:`check_campaign` is the whole check of a campaign before launch (``campaigns
create``, ``edit`` and ``schedule`` call it): the template's lint, plus what the
campaign adds to it (its segments exist in the last build, its topic exists, its
send time has not passed). Findings come errors first, then warnings, then notes;
those of the campaign's own settings name the option they came from.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import threading
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from engine.errors import BoundExceeded, LintFailed, TactError
from engine.models import STANDARD_VERSION
from engine.render.lint import Finding, did_you_mean, lint_template
from engine.render.template import TemplateSpec
from engine.runtime import Runtime
from engine.segments.rules import load_rules
from engine.segments.store import known_segment_names

#: A local hour, as ``--local-hour`` takes it (the use-case parses it again, strictly).
_HOUR = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

__all__ = [
    "CHILD_CPU_SECONDS",
    "CHILD_EXTRA_BYTES",
    "CHILD_WALL_SECONDS",
    "Finding",
    "SegmentNames",
    "TemplateLint",
    "bounded",
    "check_campaign",
    "lint",
    "lint_one",
    "rule_segment_names",
    "segment_names",
]

#: Address space a lint or preview child may add to what the parent already uses.
CHILD_EXTRA_BYTES = 512 * 1024 * 1024
#: CPU seconds a lint or preview child may use (every render has its own 2 s deadline).
CHILD_CPU_SECONDS = 120
#: Wall-clock seconds past the CPU limit before a child is killed: one that sleeps or
#: blocks (a pipe, a lock inherited across the fork, a slow filesystem) spends no CPU.
#: More than the 5 s between the CPU limit's soft and hard values, so a child busy on
#: the CPU meets that limit first.
CHILD_WALL_MARGIN = 10
#: Wall-clock seconds a lint or preview child may take.
CHILD_WALL_SECONDS = CHILD_CPU_SECONDS + CHILD_WALL_MARGIN
#: How long a killed child may take to be reaped before a thread is left to wait for it.
_REAP_SECONDS = 5.0


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
    wall_seconds: float | None = None,
) -> Any:
    """``fn()`` in a forked child under RLIMIT_AS / RLIMIT_CPU and a wall-clock limit; its
    JSON result, or an error.

    A TactError raised in the child is raised again here as a TactError with the
    same one-sentence text; a child killed by a limit is a BoundExceeded. The wall-clock
    limit (``wall_seconds``, by default ``cpu_seconds + CHILD_WALL_MARGIN``) is the
    parent's: past it the child's process group is killed (SIGKILL) and the child
    reaped, so a child that sleeps or blocks cannot hold the caller (a web request).
    """
    if not hasattr(os, "fork"):
        return fn()
    wall = float(cpu_seconds + CHILD_WALL_MARGIN) if wall_seconds is None else wall_seconds
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        status = 0
        try:
            os.setpgid(0, 0)  # its own group: a kill reaches whatever it started too
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
    try:
        os.setpgid(pid, pid)  # also here, so that a kill right away finds the group
    except OSError:
        pass  # the child did it already, or has ended
    deadline = clock.monotonic() + wall
    reaped: int | None = None
    try:
        got = _read_until(read_fd, deadline)
        if got is not None:
            reaped = _wait_until(pid, deadline)
    finally:
        os.close(read_fd)
        if reaped is None:  # past the limit, or the parent was interrupted
            _kill(pid)
    if reaped is None or got is None:
        raise BoundExceeded(f"{what}: stopped at the time limit of the render process ({wall:g} s)")
    status, data = reaped, got
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


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to ``fd`` until its end; None when ``deadline`` came first."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    chunks: list[bytes] = []
    while True:
        left = deadline - clock.monotonic()
        if left <= 0:
            return None
        if not poller.poll(max(1, int(left * 1000) + 1)):
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _wait_until(pid: int, deadline: float) -> int | None:
    """The child's wait status once it has ended; None when ``deadline`` came first. (It
    closed the pipe, so it is ending: a child that closed it and went on is waited for
    only until the deadline.)"""
    pause = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        left = deadline - clock.monotonic()
        if left <= 0:
            return None
        clock.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


def _kill(pid: int) -> None:
    """SIGKILL the child's process group (the child itself if it has none yet) and reap
    the child; one that does not end within a few seconds (stuck in the kernel) is reaped
    by a thread left to wait for it, so that the caller is not held."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        ended = _wait_until(pid, clock.monotonic() + _REAP_SECONDS)
    except ChildProcessError:
        return  # reaped already
    if ended is None:
        threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True).start()


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

    def _count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def errors(self) -> int:
        return self._count("error")

    @property
    def warnings(self) -> int:
        return self._count("warning")

    @property
    def notes(self) -> int:
        return self._count("note")

    @property
    def ok(self) -> bool:
        return not self.errors

    def ordered(self) -> tuple[Finding, ...]:
        """Errors first, then warnings, then notes (each kept in the lint's order)."""
        rank = {"error": 0, "warning": 1}
        return tuple(sorted(self.findings, key=lambda f: rank.get(f.level, 2)))

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of one campaign in ``tact templates lint --json``."""
        return {
            "name": self.name,
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
            "notes": self.notes,
            "findings": [
                {"level": f.level, "where": f.where, "message": f.message, "code": f.code or None}
                for f in self.ordered()
            ],
        }


def lint_one(templates_dir: Path, name: str, known: frozenset[str] | None) -> TemplateLint:
    """Lint one template folder in a bounded child; a failure of the child is one error."""

    def run() -> list[list[str]]:
        report = lint_template(templates_dir, name, None if known is None else set(known))
        return [[f.level, f.where, f.message, f.code] for f in report.findings]

    try:
        rows = bounded(run, f"lint {name}")
    except TactError as exc:
        rows = [["error", f"campaigns/{name}", str(exc), ""]]
    return TemplateLint(name, tuple(Finding(*row) for row in rows))


def lint(
    rt: Runtime, names: list[str] | None = None, *, known: SegmentNames | None = None
) -> list[TemplateLint]:
    """Lint template folders (see :mod:`engine.render.lint` for every check).

    ``names`` default to every folder under templates/campaigns/, in name order;
    ``known`` to :func:`segment_names` (pass it to say first that names are unchecked).
    The topic each template names is checked against the topics file too.
    """
    templates_dir = rt.settings.templates_dir
    root = templates_dir / "campaigns"
    names = names or sorted(p.name for p in root.iterdir() if p.is_dir())
    known = known or segment_names(rt)
    results = []
    for name in names:
        result = lint_one(templates_dir, name, known.names)
        try:
            topics = _topic_findings(rt, name, None)
        except TactError:  # no usable topics file: `tact topics list` says why
            topics = []
        results.append(TemplateLint(name, (*result.findings, *topics)))
    return results


def rule_segment_names(rt: Runtime) -> list[str]:
    """The rule segments of templates/segments.toml (none if it is missing or broken:
    ``tact segments build`` reports a broken file)."""
    path = rt.settings.templates_dir / "segments.toml"
    try:
        return [r.name for r in load_rules(path)] if path.exists() else []
    except (TactError, OSError):
        return []


def _segment_findings(rt: Runtime, segments: Sequence[str], known: SegmentNames) -> list[Finding]:
    where = "--segments"
    wanted = [s.strip() for s in segments if s and s.strip()]
    if not wanted:
        return []
    rules = rule_segment_names(rt)
    if known.names is None:
        limited = [s for s in wanted if s != STANDARD_VERSION]
        if not limited:
            return []
        defined = (
            f" (rule segments in templates/segments.toml: {', '.join(rules)})" if rules else ""
        )
        return [
            Finding(
                "error",
                where,
                f"there is no segment build yet, so no contact is in segment "
                f"{', '.join(repr(s) for s in limited)} and the campaign would reach nobody: "
                f"run `tact segments build` first{defined}",
            )
        ]
    names = set(known.names) | {STANDARD_VERSION}
    found: list[Finding] = []
    for name in dict.fromkeys(wanted):
        if name in names:
            continue
        if name in rules:
            found.append(
                Finding(
                    "error",
                    where,
                    f"segment '{name}' is in templates/segments.toml but not in the last "
                    "segment build, so nobody is in it yet: run `tact segments build`",
                )
            )
            continue
        found.append(
            Finding(
                "error",
                where,
                f"no segment named '{name}'{did_you_mean(name, names | set(rules))}: a campaign "
                "limited to it would reach nobody; fix --segments",
            )
        )
    return found


def _topic_findings(rt: Runtime, template: str, topic: str | None) -> list[Finding]:
    """The topic given (``--topic``), else the one the template names, must exist."""
    where = "--topic"
    if topic is None:
        directory = rt.settings.templates_dir / "campaigns" / template
        try:
            topic = TemplateSpec.load(directory, directory.parent).topic
        except TactError:
            return []  # the lint reports the unreadable campaign.toml
        where = f"campaigns/{template}/campaign.toml topic"
        if not topic:
            return [
                Finding(
                    "error",
                    f"campaigns/{template}/campaign.toml",
                    "the template names no topic: set topic in campaign.toml or give --topic"
                    f"{did_you_mean('', rt.topics.names, known='topics')}",
                )
            ]
    if topic in rt.topics:
        return []
    return [
        Finding(
            "error",
            where,
            f"no topic named '{topic}'{did_you_mean(topic, rt.topics.names, known='topics')}: "
            "topics are defined in topics.toml (`tact topics list`)",
        )
    ]


def _time_findings(
    send_at: datetime | None,
    send_date: date | None,
    local_hour: str | None,
    now: datetime,
) -> list[Finding]:
    if send_at is not None:
        if send_at.tzinfo is None:
            return [Finding("error", "--at", "the send time needs a time zone (e.g. 09:00+00:00)")]
        if send_at < now:
            shown = send_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            return [
                Finding(
                    "error",
                    "--at",
                    f"the send time {shown} is in the past: give a later --at, "
                    "or --now to send it at once",
                )
            ]
    if send_date is not None:
        match = _HOUR.match(local_hour or "00:00")
        if match is None:
            return []  # the use-case refuses the hour with its own message
        at_hour = time(int(match.group(1)), int(match.group(2)))
        # The last place where that local time comes is UTC-12.
        latest = datetime.combine(send_date, at_hour, tzinfo=UTC) + timedelta(hours=12)
        if latest < now:
            return [
                Finding(
                    "error",
                    "--date",
                    f"{send_date.isoformat()} at {at_hour:%H:%M} local time has passed in every "
                    "time zone: give a later --date, or --now to send it at once",
                )
            ]
    return []


def check_campaign(
    rt: Runtime,
    template: str,
    *,
    segments: Sequence[str] | None = None,
    topic: str | None = None,
    send_at: datetime | None = None,
    now: datetime | None = None,
    allow_past: bool = False,
    send_date: date | None = None,
    local_hour: str | None = None,
) -> TemplateLint:
    """The whole check of a campaign about to be created, edited or scheduled.

    Runs the template's lint (in the bounded child) and checks what the campaign adds
    to it: the segments it is limited to exist in the last build (with a did-you-mean
    and the known names; with no build at all, it says to run ``tact segments build``),
    its topic exists (``topic``, else the template's), and its send time (``send_at``,
    or ``send_date`` at ``local_hour``) is not in the past (unless ``allow_past``).
    Returns the findings when there is no error (notes and warnings only); raises
    :class:`~engine.errors.LintFailed` carrying every finding, errors first, when there
    is one. Each finding of the campaign's own settings names the option it came from
    (``--segments``, ``--topic``, ``--at``, ``--date``).
    """
    known = segment_names(rt)
    result = lint_one(rt.settings.templates_dir, template, known.names)
    extra: list[Finding] = []
    if segments:
        extra += _segment_findings(rt, segments, known)
    extra += _topic_findings(rt, template, topic)
    if not allow_past:
        extra += _time_findings(send_at, send_date, local_hour, now or datetime.now(UTC))
    found = TemplateLint(template, (*extra, *result.findings))
    found = TemplateLint(template, found.ordered())
    if found.errors:
        first = found.findings[0]
        more = found.errors - 1
        refused = LintFailed(
            f"campaign refused: {first.where}: {first.message}"
            + (f" (and {more} more error{'s' if more > 1 else ''})" if more else ""),
            found.findings,
        )
        refused.hint = (
            "fix the errors and run the command again (`tact templates lint "
            f"{template}` checks the template alone)"
        )
        raise refused
    return found
