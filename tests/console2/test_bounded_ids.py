"""Ids in console paths and cursors are bounded: a number past the database's integers is a
400 page, not an overflow in the driver answered as a 500 (hostile review of issue 13)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from tests.console2.conftest import Team
from tests.console2.support import signed_in

pytestmark = pytest.mark.anyio

HUGE = "99999999999999999999"


async def test_an_id_past_the_databases_integers_is_a_400(app: FastAPI, team: Team) -> None:
    async with signed_in(app, team.admin) as client:
        for path in (
            f"/admin/imports/{HUGE}",
            f"/admin/imports/{HUGE}/progress.json",
            f"/admin/imports/{HUGE}/rejects",
            f"/admin/audit?before={HUGE}",
        ):
            response = await client.get(path)
            assert response.status_code == 400, (path, response.status_code)
            assert "Overflow" not in response.text and "Traceback" not in response.text
