"""Chart data for ``static/console-charts.js``: a JSON block a page embeds, never a script.

The block is ``<script type="application/json">`` (a data block: the CSP's
``script-src`` does not run it), and ``<``, ``>`` and ``&`` are written as JSON
escapes so that no value can close the element. Every chart repeats a table on
the same page (the table is what screen readers and pages without JavaScript read).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup


def epoch(iso: str) -> int:
    """Unix seconds of an ISO date or time (a date is its UTC midnight)."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def chart(
    *,
    kind: str,
    x: Sequence[int | str],
    series: Sequence[tuple[str, Sequence[int | float]]],
    x_kind: str = "time",
) -> Markup:
    """The JSON of one chart, safe inside ``<script type="application/json">``."""
    text = json.dumps(
        {
            "kind": kind,
            "x_kind": x_kind,
            "x": list(x),
            "series": [{"label": label, "values": list(values)} for label, values in series],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # noqa: S704 - JSON with every markup character escaped
