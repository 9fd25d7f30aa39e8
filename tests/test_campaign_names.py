"""Campaign names become path segments of the console and the API: one rule, in the use-case.

Found by the hostile review of issue 13: a name with "/" was created and could never be
opened, edited or deleted again from either face; a Chinese name broke the API's Location.
"""

from __future__ import annotations

import pytest

from engine.app.campaigns import check_name
from engine.errors import BadOption


@pytest.mark.parametrize("name", ["autumn-2026", "秋季促销", "Promo_2", "é-été", "a.b"])
def test_names_a_marketer_would_type_are_accepted(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        " lead",
        "a/b",
        "..",
        ".",
        "new",
        "a?b",
        "a#b",
        "50%",
        "a\\b",
        "x\ny",
        "\u202eevil",
        "a\u200bb",
        "x" * 65,
    ],
)
def test_names_that_could_not_be_addressed_or_read_as_they_show_are_refused(name: str) -> None:
    with pytest.raises(BadOption) as caught:
        check_name(name)
    assert caught.value.code == "bad-option"
    assert name.strip() == "" or name not in str(caught.value)  # never echoed back
