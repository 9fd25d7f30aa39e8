"""CLI start-up: ``tact --help`` and ``tact topics list`` against ``python -c "import typer"``.

Target (issue 12): ``tact --help`` starts in at most twice the time Python takes to
import Typer alone, because help imports no numpy, scikit-learn, SQLAlchemy or
pipeline module (engine.cli.main loads each command's module on demand).

Each command is run as a fresh process (``python -m engine.cli.main ...``, the
interpreter of this run) in a scratch installation (``tact init`` first, so
``topics list`` reads a real database), best of N wall times. The figures are
ratios measured in the same run, so a slower or busier machine moves numerator and
denominator together; the seconds are in the notes.

Run alone: ``python -m bench.bench_cli`` (or ``make bench``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import PROJECT_ROOT, BenchContext, Figure

BENCH = "cli"
HELP_TARGET = "<= 2.0"
REPEATS = 15
QUICK_REPEATS = 5


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_")}
    env["TACT_CONFIG"] = str(workdir / "tact.toml")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    return env


def best_of(argv: Sequence[str], workdir: Path, repeats: int) -> float:
    """The fastest wall time of ``repeats`` runs of ``argv`` (seconds); a failure stops."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(
            list(argv), cwd=workdir, env=_env(workdir), capture_output=True, check=False
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]!r}")
        best = min(best, elapsed)
    return best


def measure(workdir: Path, repeats: int) -> dict[str, float]:
    tact = [sys.executable, "-m", "engine.cli.main"]
    subprocess.run([*tact, "init"], cwd=workdir, env=_env(workdir), capture_output=True, check=True)
    return {
        "typer": best_of([sys.executable, "-c", "import typer"], workdir, repeats),
        "help": best_of([*tact, "--help"], workdir, repeats),
        "campaigns help": best_of([*tact, "campaigns", "--help"], workdir, repeats),
        "topics list": best_of([*tact, "topics", "list"], workdir, repeats),
    }


def run(ctx: BenchContext) -> list[Figure]:
    workdir = ctx.scratch / "cli"
    workdir.mkdir(parents=True, exist_ok=True)
    repeats = QUICK_REPEATS if ctx.quick else REPEATS
    t = measure(workdir, repeats)
    ctx.log(", ".join(f"{k} {v * 1000:.0f} ms" for k, v in t.items()))
    base = t["typer"]

    def note(key: str) -> str:
        return (
            f"best of {repeats}: {t[key] * 1000:.0f} ms against {base * 1000:.0f} ms for "
            'python -c "import typer"'
        )

    return [
        Figure(
            BENCH, "tact --help / import typer", t["help"] / base, "x", HELP_TARGET, note("help")
        ),
        Figure(
            BENCH,
            "tact campaigns --help / import typer",
            t["campaigns help"] / base,
            "x",
            note=note("campaigns help"),
        ),
        Figure(
            BENCH,
            "tact topics list / import typer",
            t["topics list"] / base,
            "x",
            note=note("topics list"),
        ),
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tact-bench-cli-") as tmp:
        figures = measure(Path(tmp), QUICK_REPEATS if "--quick" in sys.argv else REPEATS)
    base = figures["typer"]
    for key, value in figures.items():
        print(f"{key:16} {value * 1000:7.0f} ms  {value / base:5.2f}x")
