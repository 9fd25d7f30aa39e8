"""The bounded child has a wall-clock limit: a child that sleeps or blocks spends no CPU, so
RLIMIT_CPU never ends it; the parent kills it (SIGKILL, its whole process group) past
the limit, reaps it and raises BoundExceeded, instead of holding the caller (a web
request) for ever. A child that ends in time is unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.app import templates
from engine.app.templates import CHILD_CPU_SECONDS, CHILD_WALL_SECONDS, bounded
from engine.errors import BoundExceeded, TactError

LIMIT = 1.0


def _gone(pid: int) -> bool:
    """No such process, or (a grandchild left to init) a zombie: nothing runs under pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _pid_from(path: Path) -> int:
    return int(path.read_text().split()[0])


def test_a_sleeping_child_is_killed_and_reaped_at_the_wall_limit(tmp_path: Path) -> None:
    marker = tmp_path / "pid"

    def sleeps() -> str:
        marker.write_text(str(os.getpid()))
        time.sleep(60)
        return "never"

    started = time.monotonic()
    with pytest.raises(BoundExceeded) as raised:
        bounded(sleeps, "lint slow", wall_seconds=LIMIT)
    took = time.monotonic() - started
    assert LIMIT <= took < LIMIT + 3, took
    text = str(raised.value)
    assert text == "lint slow: stopped at the time limit of the render process (1 s)"
    assert text.count(".") == 0 and "\n" not in text  # one sentence
    pid = _pid_from(marker)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already: not a child of ours any more
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # and no zombie left


def test_a_child_blocked_on_a_pipe_and_what_it_started_are_killed(tmp_path: Path) -> None:
    """The child blocks reading a pipe nobody writes, after starting a process of its own
    that holds the result pipe open: both go at the limit (the child's process group)."""
    marker = tmp_path / "pids"

    def blocks() -> str:
        helper = os.fork()
        if helper == 0:
            time.sleep(60)
            os._exit(0)
        r, _w = os.pipe()
        marker.write_text(f"{os.getpid()} {helper}")
        os.read(r, 1)
        return "never"

    started = time.monotonic()
    with pytest.raises(BoundExceeded, match="time limit"):
        bounded(blocks, "preview stuck", wall_seconds=LIMIT)
    assert time.monotonic() - started < LIMIT + 3
    child, helper = (int(p) for p in marker.read_text().split())
    assert _gone(child)
    deadline = time.monotonic() + 5
    while not _gone(helper):  # init reaps it; it was killed with the child's group
        assert time.monotonic() < deadline, "the child's own process survived the kill"
        time.sleep(0.05)


def test_a_normal_child_still_returns_its_result_and_its_errors() -> None:
    assert bounded(lambda: {"n": 41 + 1}, "lint ok", wall_seconds=LIMIT * 5) == {"n": 42}
    big = "x" * (3 << 20)  # larger than a pipe's buffer: read while the child writes
    assert bounded(lambda: big, "lint big", wall_seconds=10) == big

    def refuses() -> None:
        raise TactError("the template has no base")

    with pytest.raises(TactError, match=r"^the template has no base$") as raised:
        bounded(refuses, "lint bad", wall_seconds=LIMIT * 5)
    assert not isinstance(raised.value, BoundExceeded)


def _children() -> set[int]:
    """Every process (running or zombie) whose parent is this one."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.add(int(entry.name))
    return found


def test_no_child_is_left_behind_after_many_calls() -> None:
    before = _children()
    for _ in range(20):
        assert bounded(lambda: 1, "lint quick") == 1
    with pytest.raises(BoundExceeded):
        bounded(lambda: time.sleep(30), "lint slow", wall_seconds=0.3)
    assert _children() <= before  # none running, none a zombie


def test_the_default_wall_limit_is_a_bit_over_the_cpu_limit() -> None:
    assert CHILD_CPU_SECONDS + 5 < CHILD_WALL_SECONDS <= CHILD_CPU_SECONDS + 30
    assert CHILD_WALL_SECONDS == CHILD_CPU_SECONDS + templates.CHILD_WALL_MARGIN
