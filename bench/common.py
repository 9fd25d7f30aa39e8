"""What benchmark modules share: figures, the run context, child processes.

A benchmark is a module ``bench/bench_<name>.py`` with a function
``run(ctx: BenchContext) -> list[Figure]``; ``python -m bench.run`` finds it by
its file name. Figures that compare two designs or two sizes are ratios
measured in the same run, because absolute numbers on a small shared machine
are noisy.

This module stays light (standard library only at import time) because
benchmark children import it too, and what they import counts in their peak
memory. The PostgreSQL and Redis helpers import ``support.services`` only when
a benchmark first asks for a server.
"""

from __future__ import annotations

import contextlib
import cProfile
import json
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from support.services import PostgresServer, RedisServer

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent

#: Environment variable naming an existing PostgreSQL server to use instead of
#: a throwaway one (the same one the test suite honours).
DATABASE_URL_ENV = "TACT_TEST_DATABASE_URL"

#: A config path that cannot exist (``/dev/null`` is not a directory): no ``tact.toml``.
NO_CONFIG = "/dev/null/tact.toml"

#: Seconds a benchmark child may run before it is killed and reported as failed.
CHILD_TIMEOUT = 1800.0

_TARGET = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?\d[\d_,]*(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")


def check_target(value: float, target: str | None) -> bool | None:
    """Whether ``value`` meets a numeric target such as ``">= 5000"``; None if not numeric."""
    if target is None:
        return None
    match = _TARGET.match(target)
    if match is None:
        return None
    op, raw = match.groups()
    bound = float(raw.replace("_", "").replace(",", ""))
    if op == ">=":
        return value >= bound
    if op == "<=":
        return value <= bound
    if op == ">":
        return value > bound
    if op == "<":
        return value < bound
    return value == bound


@dataclass
class Figure:
    """One measured number, with its unit and, optionally, the target it must meet."""

    bench: str
    name: str
    value: float
    unit: str
    target: str | None = None
    #: Free text shown in the JSON (sizes, what a ratio divides by...).
    note: str | None = None
    ok: bool | None = field(init=False)

    def __post_init__(self) -> None:
        self.value = float(self.value)
        self.ok = check_target(self.value, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "ok": self.ok,
            "note": self.note,
        }


def size_label(n: int) -> str:
    """``10_000`` → ``"10k"``, ``1_000_000`` → ``"1M"``, ``500`` → ``"500"``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _proc_status_mb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    On Linux this is ``VmHWM`` (the high-water mark of this process's own
    memory), not ``ru_maxrss``: the kernel folds the parent's peak into a
    spawned child's ``ru_maxrss`` (subprocess forks with vfork, and exec records
    the high-water mark of the memory it replaces), so a child spawned by a
    100 MB parent would never report less than 100 MB.
    """
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def current_rss_mb() -> float:
    """This process's resident set size now, in MiB (the peak where /proc is missing)."""
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


class ChildError(RuntimeError):
    """A benchmark child process failed or printed no result."""


def isolated_environment() -> dict[str, str]:
    """The environment for benchmark processes: no developer ``TACT_*`` setting leaks in.

    Benchmarks pass their settings explicitly; a ``tact.toml`` in the working
    directory or a ``TACT_IMPORT_BATCH_SIZE`` in the shell must not change the
    figures. ``TACT_TEST_*`` (the servers to use) is kept.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TACT_") or k.startswith("TACT_TEST_")
    }
    env["TACT_CONFIG"] = NO_CONFIG
    env["PYTHONHASHSEED"] = "0"
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + path if path else "")
    return env


def isolate_this_process() -> None:
    """Apply :func:`isolated_environment` to this process (the runner sets up databases too)."""
    env = isolated_environment()
    for name in list(os.environ):
        if name not in env:
            del os.environ[name]
    os.environ.update(env)


def run_child(
    module: str, args: Sequence[str], *, timeout: float = CHILD_TIMEOUT
) -> dict[str, Any]:
    """Run ``python -m module --child ARGS`` and return the JSON object it prints last.

    Each measurement runs in a fresh interpreter so that its peak RSS is its own
    and no cache warmed by an earlier measurement helps it.
    """
    cmd = [sys.executable, "-m", module, "--child", *args]
    try:
        proc = subprocess.run(
            cmd,
            cwd=PROJECT_ROOT,
            env=isolated_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ChildError(f"{module} {' '.join(args)}: timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise ChildError(
            f"{module} {' '.join(args)}: exit status {proc.returncode}\n{proc.stderr[-4000:]}"
        )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise ChildError(f"{module} {' '.join(args)}: no JSON result on stdout\n{proc.stderr[-4000:]}")


def child_result(result: dict[str, Any]) -> None:
    """Print a child's result where :func:`run_child` looks for it (one JSON line)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BenchContext:
    """What the runner hands each benchmark.

    * ``scratch``: a private temporary directory, removed when the run ends.
      Benchmarks may cache generated inputs there (see :meth:`cached_file`).
    * ``quick``: smaller sizes, for a smoke run (``--quick``).
    * :meth:`postgres` / :meth:`postgres_database`: a throwaway PostgreSQL
      server started on first use (or the one named by ``TACT_TEST_DATABASE_URL``),
      and fresh databases on it, dropped at the end.
    * :meth:`redis`: a throwaway Redis started on first use.
    * :meth:`log`: progress output (stderr), not part of the results.
    """

    def __init__(
        self,
        *,
        quick: bool = False,
        log: Callable[[str], None] | None = None,
        scratch_parent: Path | None = None,
    ) -> None:
        self.quick = quick
        self.scratch = Path(tempfile.mkdtemp(prefix="tact-bench-", dir=scratch_parent))
        self._log = log or _stderr_log
        self._postgres: PostgresServer | None = None
        self._redis: RedisServer | None = None
        self._databases: list[str] = []
        self._files: dict[str, Path] = {}

    # -- output

    def log(self, message: str) -> None:
        self._log(message)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Log ``what`` and how long it took."""
        started = time.perf_counter()
        self.log(f"  {what} ...")
        yield
        self.log(f"  {what}: {time.perf_counter() - started:.1f}s")

    # -- inputs

    def cached_file(self, name: str, make: Callable[[Path], object]) -> Path:
        """``scratch/inputs/name``, made by ``make(path)`` the first time it is asked for."""
        path = self._files.get(name)
        if path is None:
            path = self.scratch / "inputs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            make(path)
            self._files[name] = path
        return path

    def fresh_dir(self, prefix: str) -> Path:
        """A new empty directory under ``scratch``."""
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.scratch))

    # -- servers

    def postgres(self) -> PostgresServer:
        """The PostgreSQL server for this run, started on first call."""
        if self._postgres is None:
            from support.services import PostgresServer

            url = os.environ.get(DATABASE_URL_ENV)
            server = PostgresServer.external(url) if url else PostgresServer()
            with self.step("starting PostgreSQL" if not url else "checking PostgreSQL"):
                if server.is_external:
                    server.check()
                else:
                    server.start()
            self._postgres = server
        return self._postgres

    def postgres_database(self, prefix: str = "bench") -> str:
        """A new empty database (dropped when the run ends); its SQLAlchemy URL."""
        server = self.postgres()
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        url = server.create_database(name)
        self._databases.append(name)
        return url

    def drop_postgres_database(self, url: str) -> None:
        """Drop a database made by :meth:`postgres_database` before the run ends."""
        name = url.rsplit("/", 1)[-1]
        if self._postgres is not None and name in self._databases:
            self._postgres.drop_database(name)
            self._databases.remove(name)

    def redis(self) -> RedisServer:
        """A throwaway Redis server for this run, started on first call."""
        if self._redis is None:
            from support.services import RedisServer

            server = RedisServer()
            with self.step("starting Redis"):
                server.start()
            self._redis = server
        return self._redis

    # -- end

    def close(self) -> None:
        """Drop databases, stop servers, remove the scratch directory."""
        try:
            if self._postgres is not None:
                for name in list(self._databases):
                    with contextlib.suppress(Exception):
                        self._postgres.drop_database(name)
                self._databases.clear()
                self._postgres.close()
                self._postgres = None
            if self._redis is not None:
                self._redis.close()
                self._redis = None
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)


def copy_var_dir(source: Path, target: Path) -> Path:
    """A copy of a closed var directory (database, keystore, keys), without any outbox."""
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns("outbox", "*-wal", "*-shm", "*-journal")
    )
    return target


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    """A benchmark's ``--profile`` output: the top functions by own time, then cumulative."""
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def module_main(
    module: str,
    child: Callable[[list[str]], None],
    profile: Callable[[list[str]], None],
    usage: str,
) -> None:
    """``python -m bench.bench_x --child ... | --profile ...``: the two entry points of a bench."""
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    elif sys.argv[1:2] == ["--profile"]:
        profile(sys.argv[2:])
    else:
        sys.exit(f"usage: python -m {module} --child ... | --profile {usage}")
