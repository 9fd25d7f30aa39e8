"""The dashboard, ``GET /admin/``: where campaigns stand and what the last 30 days did.

One use-case (:func:`engine.app.dashboard.dashboard`), counts only: campaigns by
status, messages sent per day (a chart and its table), skips and deferrals by
reason, unsubscribes, bounces and complaints, and the size of each segment.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from engine.app import dashboard as dashboard_uc
from engine.web.console.charts import chart, epoch
from engine.web.console.context import Staff

router = APIRouter()


@router.get("/")
def dashboard(c: Staff) -> Response:
    c.check("dashboard.show")
    with c.acting():
        board = dashboard_uc.dashboard(c.rt, now=c.now())
    sent_chart = chart(
        kind="bars",
        x=[epoch(day) for day, _ in board.sent_by_day],
        series=[(c.t("dashboard.sent"), [n for _, n in board.sent_by_day])],
    )
    return c.page("dashboard.html", board=board, sent_chart=sent_chart)
