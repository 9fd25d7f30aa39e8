"""An ended campaign's report is made once when many requests miss it at the same moment.

At 50 requests/s on a campaign sent to 76,000 people, every request that arrived while
the first was computing the report (about 0.9 s) computed it again: the console's report
page fell behind by tens of seconds (make bench, bench_console). One request makes it; the
others wait for it and read it.
"""

from __future__ import annotations

import threading
import time

from engine.app.campaigns import _Kept


def test_concurrent_misses_make_the_value_once_and_all_read_it() -> None:
    kept = _Kept()
    made: list[int] = []
    start = threading.Barrier(8)

    def make() -> str:
        made.append(1)
        time.sleep(0.2)  # long enough for every thread to miss it
        return "the report"

    answers: list[str] = []

    def ask() -> None:
        start.wait()
        answers.append(kept.keep(("report", 1), ("stamp",), make))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["the report"] * 8
    assert len(made) == 1


def test_a_new_stamp_makes_it_again_and_no_stamp_is_never_kept() -> None:
    kept = _Kept()
    calls: list[str] = []
    assert kept.keep(("report", 1), ("a",), lambda: calls.append("a") or "A") == "A"
    assert kept.keep(("report", 1), ("a",), lambda: calls.append("x") or "X") == "A"
    assert kept.keep(("report", 1), ("b",), lambda: calls.append("b") or "B") == "B"
    assert kept.keep(("report", 1), None, lambda: calls.append("n") or "N") == "N"
    assert kept.keep(("report", 1), None, lambda: calls.append("n") or "N") == "N"
    assert calls == ["a", "b", "n", "n"]


def test_within_fresh_for_the_stamp_is_not_checked_but_the_quick_stamp_always_is() -> None:
    kept = _Kept()
    checked: list[int] = []

    def stamp() -> tuple[str]:
        checked.append(1)
        return ("same",)

    assert kept.keep(("report", 1), stamp, lambda: "A", quick=("row",), fresh_for=60) == "A"
    assert kept.keep(("report", 1), stamp, lambda: "X", quick=("row",), fresh_for=60) == "A"
    assert len(checked) == 1  # the second read trusted the first check
    # The campaign's own row changed (paused, cancelled): made again at once.
    assert kept.keep(("report", 1), stamp, lambda: "B", quick=("row2",), fresh_for=60) == "B"
    # fresh_for 0 (the CLI's): the stamp is checked on every read.
    kept.keep(("report", 1), stamp, lambda: "C", quick=("row2",))
    kept.keep(("report", 1), stamp, lambda: "C", quick=("row2",))
    assert len(checked) == 4


def test_while_one_request_checks_again_the_others_read_the_kept_value() -> None:
    kept = _Kept()
    assert kept.keep(("report", 1), ("a",), lambda: "old", fresh_for=1e-9) == "old"
    checking = threading.Event()
    release = threading.Event()

    def slow_stamp() -> tuple[str]:
        checking.set()
        release.wait(5)
        return ("b",)

    answers: list[str] = []
    first = threading.Thread(
        target=lambda: answers.append(
            kept.keep(("report", 1), slow_stamp, lambda: "new", fresh_for=1e-9)
        )
    )
    first.start()
    assert checking.wait(5)
    # The first request holds the check: this one does not wait for it.
    assert kept.keep(("report", 1), slow_stamp, lambda: "other", fresh_for=1e-9) == "old"
    release.set()
    first.join(5)
    assert answers == ["new"]
