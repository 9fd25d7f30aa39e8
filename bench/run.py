"""Run the benchmarks: ``python -m bench.run [--quick] [--only NAME ...]`` (``make bench``).

Finds every module ``bench/bench_<name>.py`` and calls its
``run(ctx: BenchContext) -> list[Figure]``; prints one table of figures and
writes them, with the machine they were measured on, to
``bench/results/latest.json``. Exit status: 0 when every benchmark ran and
every figure with a numeric target met it, 1 otherwise.

Adding a benchmark: create ``bench/bench_<name>.py`` with a ``run`` function
(see bench/common.py and bench/bench_import.py); nothing to register. Only
modules named ``bench_*`` are benchmarks: give a helper module (a baseline's
Celery app, shared code) any other name.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import BENCH_DIR, PROJECT_ROOT, BenchContext, Figure, isolate_this_process

PREFIX = "bench_"
DEFAULT_OUT = BENCH_DIR / "results" / "latest.json"
#: Scratch space beside the product's own var/ (git-ignored). Not the system's /tmp:
#: on the benchmark machine creating a file there cost 117-781 us against 52 us under
#: the project (same disk, measured 2026-11-23), which made every Maildir figure a
#: measure of /tmp rather than of the code. Floor, pipeline and textbook all write here.
DEFAULT_SCRATCH = PROJECT_ROOT / "var" / "bench"

RunFn = Callable[[BenchContext], list[Figure]]


@dataclass
class Outcome:
    name: str
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None


class DiscoveryError(RuntimeError):
    """A ``bench_*`` module that is not a benchmark (no top-level ``run``)."""


def defines_run(path: Path) -> bool:
    """Whether the module's source binds ``run`` at top level (def, assignment or import).

    Read from the source, not by importing: discovery (and ``--list``) must not
    import every benchmark with its dependencies, and a helper misnamed
    ``bench_*`` must be refused before anything runs, not halfway through.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "run":
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "run" for t in targets):
                return True
        if isinstance(node, ast.ImportFrom | ast.Import):
            if any((alias.asname or alias.name) == "run" for alias in node.names):
                return True
    return False


def discover(directory: Path = BENCH_DIR) -> dict[str, str]:
    """Benchmark name → module name, for every ``bench_*.py`` in ``directory``, sorted by name.

    Modules with other names (``common``, ``run``, a baseline's helper app) are
    not benchmarks and are never imported here. A ``bench_*`` module without a
    top-level ``run`` is an error (``DiscoveryError``), naming the file.
    """
    found: dict[str, str] = {}
    missing: list[str] = []
    for info in pkgutil.iter_modules([str(directory)]):
        if not info.name.startswith(PREFIX) or info.ispkg:
            continue
        path = directory / f"{info.name}.py"
        if not path.is_file():  # an extension module or bytecode only: nothing to check
            continue
        if defines_run(path):
            found[info.name.removeprefix(PREFIX)] = f"bench.{info.name}"
        else:
            missing.append(str(path.relative_to(directory.parent)))
    if missing:
        raise DiscoveryError(
            f"{', '.join(missing)}: no top-level run(ctx) function. Modules named "
            f"{PREFIX}*.py are benchmarks and need one; rename a helper module so it "
            f"does not start with {PREFIX!r}."
        )
    return dict(sorted(found.items()))


def load(module_name: str) -> RunFn:
    module = importlib.import_module(module_name)
    fn = getattr(module, "run", None)
    if not callable(fn):
        raise TypeError(f"{module_name} has no run(ctx) function")
    run_fn: RunFn = fn
    return run_fn


def choose(available: dict[str, str], only: Sequence[str]) -> dict[str, str]:
    """The benchmarks named by ``--only`` (``import`` or ``bench_import``; commas allowed)."""
    if not only:
        return available
    wanted = [n.strip().removeprefix(PREFIX) for item in only for n in item.split(",") if n]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}"
        )
    return {n: available[n] for n in available if n in wanted}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
    }


def run_benchmarks(selected: dict[str, str], ctx: BenchContext, console: Console) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for name, module_name in selected.items():
        console.print(f"[bold]{name}[/bold]")
        outcome = Outcome(name)
        started = time.perf_counter()
        try:
            outcome.figures = list(load(module_name)(ctx))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # one broken benchmark must not hide the others
            outcome.error = "".join(traceback.format_exception_only(exc)).strip()
            console.print(f"[red]{name} failed[/red]\n{traceback.format_exc()}", markup=False)
        outcome.seconds = time.perf_counter() - started
        console.print(f"  done in {outcome.seconds:.1f}s")
        outcomes.append(outcome)
    return outcomes


def format_value(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(outcomes: Sequence[Outcome]) -> Table:
    out = Table(title="Tact benchmarks")
    out.add_column("bench")
    out.add_column("figure")
    out.add_column("value", justify="right")
    out.add_column("unit")
    out.add_column("target")
    out.add_column("", justify="center")
    for outcome in outcomes:
        if outcome.error is not None:
            out.add_row(outcome.name, "[red]failed[/red]", "", "", "", "[red]✗[/red]")
        for f in outcome.figures:
            mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: ""}[f.ok]
            out.add_row(f.bench, f.name, format_value(f.value), f.unit, f.target or "", mark)
    return out


def write_results(
    path: Path, outcomes: Sequence[Outcome], info: dict[str, Any], args: argparse.Namespace
) -> None:
    document = {
        "machine": info,
        "quick": args.quick,
        "only": [o.name for o in outcomes] if args.only else None,
        "benches": {o.name: {"seconds": round(o.seconds, 3), "error": o.error} for o in outcomes},
        "figures": [f.as_dict() for o in outcomes for f in o.figures],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark (repeatable, or comma-separated)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        default=DEFAULT_SCRATCH,
        help=(
            "where benchmarks create their databases and outboxes, removed after "
            f"(default {DEFAULT_SCRATCH}: the file system of the product's var/, not /tmp)"
        ),
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        available = discover()
    except DiscoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(available))
        return 0
    selected = choose(available, args.only)
    isolate_this_process()
    console = Console(stderr=True, highlight=False)
    info = machine()
    started = time.perf_counter()
    args.scratch.mkdir(parents=True, exist_ok=True)
    ctx = BenchContext(
        quick=args.quick,
        log=lambda msg: console.print(msg, markup=False),
        scratch_parent=args.scratch,
    )
    try:
        outcomes = run_benchmarks(selected, ctx, console)
    finally:
        ctx.close()
    info["seconds"] = round(time.perf_counter() - started, 1)
    write_results(args.out, outcomes, info, args)
    Console(highlight=False).print(table(outcomes))
    failed = [o.name for o in outcomes if o.error is not None]
    missed = [f"{f.bench}: {f.name}" for o in outcomes for f in o.figures if f.ok is False]
    print(
        f"{sum(len(o.figures) for o in outcomes)} figures in {info['seconds']:.0f}s "
        f"(load average at start {info['load_average']}); written to {args.out}",
        file=sys.stderr,
    )
    for name in failed:
        print(f"FAILED: {name}", file=sys.stderr)
    for name in missed:
        print(f"target missed: {name}", file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
