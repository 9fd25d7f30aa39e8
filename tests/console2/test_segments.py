"""The segments page over HTTP, on both databases: before a build (the rules of the file,
everyone standard), and after a real build over generated customers (sizes that add up,
rule definitions, learned clusters explained from their centroids); every role reads it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI

from engine.app import contacts as contacts_uc
from engine.app import segments as segments_uc
from engine.synthetic.generator import generate_customers
from tests.console.support import runtime_of
from tests.console2.conftest import Team
from tests.console2.support import signed_in
from tests.helpers import write_jsonl

pytestmark = pytest.mark.anyio

CUSTOMERS = 400


async def test_before_a_build_the_rules_are_shown_and_everyone_is_standard(
    app: FastAPI, team: Team
) -> None:
    async with signed_in(app, team.viewer) as http:
        page = await http.get("/admin/segments")
        assert page.status_code == 200, page.text
        assert "No build yet" in page.text
        assert "outdoor-regulars" in page.text and "win-back" in page.text
        assert "total_spend &gt;= 300 and days_since_last_order &gt; 365" in page.text


async def test_after_a_build_sizes_add_up_and_clusters_are_explained(
    app: FastAPI, team: Team, tmp_path: Path
) -> None:
    rt = runtime_of(app)
    source = write_jsonl(tmp_path / "customers.jsonl", generate_customers(CUSTOMERS, seed=42))
    assert contacts_uc.import_contacts(rt, source).inserted == CUSTOMERS
    segments_uc.build(
        rt,
        segments_uc.BuildOptions(seed=3, k_max=6, as_of=datetime(2026, 11, 1, tzinfo=UTC)),
    )
    view = segments_uc.overview(rt)
    learned = [d for d in segments_uc.definitions(rt) if d.kind == "learned"]
    assert learned
    for role in ("viewer", "admin"):
        async with signed_in(app, team.of(role)) as http:
            page = await http.get("/admin/segments")
            assert page.status_code == 200
            text = page.text
            assert "No build yet" not in text
            total = re.search(
                r'<tfoot><tr><th scope="row">Total</th><td></td><td class="num">'
                r"([\d,]+)</td>",
                text,
            )
            assert total and int(total.group(1).replace(",", "")) == CUSTOMERS
            for s in view.segments:
                if s.name:
                    assert f"<code>{s.name}</code>" in text
            for d in learned:
                assert f"{d.size:,} contacts in the last build." in text
                strongest = d.centroid[0]
                assert str(getattr(strongest, "label", "")) in text
                assert "standard deviations" in text
            # the page explains groups; it names no customer
            for record in list(generate_customers(20, seed=42)):
                assert str(record["email"]) not in text
