"""Rule segments: the tokenizer, parser and evaluator, and errors that point at the file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest

from engine.errors import RuleError
from engine.segments.features import BASE_FEATURES, Profiles, share_feature
from engine.segments.rules import BoolOp, Compare, Member, Not, load_rules, parse_rule, parse_rules

REPO = Path(__file__).resolve().parent.parent
CATEGORIES = ("books", "kitchen", "outdoor")
NAN = float("nan")


def _profiles() -> Profiles:
    """Five hand-made contacts, A to E."""
    rows = {
        # days, orders, o365, s365, total, aov, sent, open, click, tenure, books, kitchen, outdoor
        "A": [10, 5, 3, 300, 500, 100, 10, 0.5, 0.2, 900, 0.0, 0.2, 0.8],
        "B": [400, 2, 0, 0, 80, 40, 8, 0.0, 0.0, 1500, 0.5, 0.5, 0.0],
        "C": [NAN, 0, 0, 0, 0, NAN, 0, NAN, NAN, 20, 0.0, 0.0, 0.0],
        "D": [30, 3, 1, 60, 200, 66.67, 12, 0.75, 0.5, 300, 0.0, 0.0, 1.0],
        "E": [31, 12, 9, 900, 1200, 100, 12, 0.9, 0.1, 2000, 0.3, 0.1, 0.6],
    }
    top = {"A": ("outdoor",), "B": ("books", "kitchen"), "C": (), "D": ("outdoor",)}
    top["E"] = ("outdoor", "books")
    names = list(rows)
    ids = np.empty(len(names), dtype=object)
    ids[:] = [UUID(int=i + 1) for i in range(len(names))]
    mask = np.array([[c in top[n] for c in CATEGORIES] for n in names], dtype=np.bool_)
    return Profiles(
        contact_ids=ids,
        features=np.array([rows[n] for n in names], dtype=np.float64),
        feature_names=BASE_FEATURES + tuple(share_feature(c) for c in CATEGORIES),
        top_categories=[top[n] for n in names],
        categories=CATEGORIES,
        top_mask=mask,
        as_of=datetime(2026, 11, 1, tzinfo=UTC),
    )


def _match(rule: str) -> str:
    hit = parse_rule(rule)
    profiles = _profiles()
    from engine.segments.rules import evaluate

    return "".join(name for name, on in zip("ABCDE", evaluate(hit, profiles), strict=True) if on)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('orders >= 3 and days_since_last_order <= 30 and "outdoor" in top_categories', "AD"),
        ("orders >= 3", "ADE"),
        ("3 <= orders", "ADE"),
        ("orders == 0", "C"),
        ("orders != 0", "ABDE"),
        ("days_since_last_order > 365", "B"),
        # No orders: no recency; every comparison with it is false, '!=' too ...
        ("days_since_last_order != 10", "BDE"),
        # ... and 'not' makes it true.
        ("not days_since_last_order <= 30", "BCE"),
        ('"outdoor" in top_categories', "ADE"),
        ('"outdoor" not in top_categories', "BC"),
        ("'Books' in top_categories", "BE"),
        ('"garden" in top_categories', ""),
        ('"garden" not in top_categories', "ABCDE"),
        ("share_outdoor >= 0.6", "ADE"),
        ("share_garden > 0", ""),
        ("open_rate >= 0.5 or orders == 0", "ACDE"),
        ("orders > 1 and (open_rate < 0.1 or click_rate >= 0.5)", "BD"),
        ("not (orders > 1 and open_rate < 0.1)", "ACDE"),
        ("not not orders > 10", "E"),
        ("orders >= 3 and not (days_since_last_order <= 30 or tenure_days < 365)", "E"),
        ("avg_order_value >= 1e2", "AE"),
        ("spend_365 > -1", "ABCDE"),
        ("tenure_days<100or orders>10", "CE"),
    ],
)
def test_valid_rules_evaluate_on_hand_built_profiles(rule: str, expected: str) -> None:
    assert _match(rule) == expected


def test_ast_shape_and_precedence() -> None:
    # 'and' binds tighter than 'or'; comparisons with the number first are flipped.
    node = parse_rule('1 < orders or "kids" in top_categories and not open_rate == 0')
    assert node == BoolOp(
        "or",
        (
            Compare("orders", ">", 1.0),
            BoolOp("and", (Member("kids", False), Not(Compare("open_rate", "==", 0.0)))),
        ),
    )


def _error(rule: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_rule(rule)
    return info.value


@pytest.mark.parametrize(
    ("rule", "column", "words"),
    [
        ("ordrs >= 3", 1, "unknown feature 'ordrs'"),
        ("orders >= 3 and (open_rate > 0.5", 17, "unbalanced '('"),
        ("orders >= 3)", 12, "unbalanced ')'"),
        ("orders = 3", 8, "compare with '=='"),
        ("orders >= three", 11, "expected a number"),
        ("orders >= 3 and", 16, "expected a condition"),
        ("orders >= 3 or or orders < 1", 16, "unexpected 'or'"),
        ("orders >= 3 orders", 13, "expected 'and', 'or' or end"),
        ("orders >= 3 && open_rate > 0", 13, "write 'and'"),
        ('"outdoor" in categories', 14, "only 'top_categories'"),
        ('"outdoor in top_categories', 1, "unterminated string"),
        ("top_categories >= 2", 1, "is a set"),
        ("", 1, "empty rule"),
        ("orders > 1 < 2", 12, "unexpected '<'"),
    ],
)
def test_errors_point_at_the_column(rule: str, column: int, words: str) -> None:
    error = _error(rule)
    assert (error.line, error.column) == (1, column)
    assert words in error.message
    caret = str(error).splitlines()[-1]
    assert caret.index("^") - 4 == column - 1


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("__import__('os')", "calls are not part of the rule language"),
        ("__import__('os').system('true')", "attribute access"),
        ("orders.__class__ > 1", "attribute access"),
        ("open('x')", "calls are not part of the rule language"),
        ("orders > 1 and exec('print(1)')", "calls are not part of the rule language"),
        ("orders[0] > 1", "indexing"),
        ("lambda: 1", "unexpected character ':'"),
        ('"outdoor" in top_categories()', "calls are not part of the rule language"),
        ("orders > 1; import os", "unexpected character ';'"),
        ("orders > 1 if True else 0", "expected 'and', 'or' or end"),
        ("orders > 0x10", "expected 'and', 'or' or end"),
        ("orders > 1e999", "finite"),
        ("f'{orders}' in top_categories", "unknown feature 'f'"),
    ],
)
def test_python_is_refused(rule: str, words: str) -> None:
    assert words in _error(rule).message


def test_deep_nesting_and_long_rules_are_refused() -> None:
    assert "nested" in _error("(" * 40 + "orders > 1" + ")" * 40).message
    assert "not" not in _match("not " * 20 + "orders > 100")  # 20 levels are fine
    assert "longer than" in _error("orders > 1 or " * 200 + "orders > 2").message


RULES = """\
# comment
[outdoor-regulars]
description = "Outdoor regulars"
rule = 'orders >= 3 and days_since_last_order <= 30 and "outdoor" in top_categories'

[bookish]
rule = "\\"books\\" in top_categories and orders > 1"

[long-form]
rule = '''
orders >= 3
  and open_rate > 0.5'''
"""


def test_rules_file_in_order() -> None:
    rules = parse_rules(RULES, "segments.toml")
    assert [r.name for r in rules] == ["outdoor-regulars", "bookish", "long-form"]
    assert rules[0].description == "Outdoor regulars"
    assert rules[1].description == rules[1].rule  # no description: the rule itself
    profiles = _profiles()
    assert [list(r.matches(profiles)) for r in rules] == [
        [True, False, False, True, False],
        [False, True, False, False, True],
        [False, False, False, True, True],
    ]


def _file_error(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_rules(text, "templates/segments.toml")
    return info.value


def test_file_errors_point_at_line_and_column_of_the_file() -> None:
    error = _file_error(RULES.replace("days_since_last_order <= 30", "days_since_last_ordr <= 30"))
    assert (error.line, error.column) == (4, 25)
    assert str(error).startswith("templates/segments.toml:4:25: unknown feature")
    lines = str(error).splitlines()
    assert lines[1].strip().startswith("rule = 'orders >= 3 and days_since_last_ordr")
    assert lines[2].index("^") == lines[1].index("days_since_last_ordr")

    # Escapes in a basic string shift the columns: the error still lands on the character.
    error = _file_error(RULES.replace("orders > 1", "orders >> 1"))
    assert (error.line, error.column) == (7, 49)
    assert str(error).splitlines()[1].strip()[48] == ">"

    # A multi-line string: the line within the file, not within the rule.
    error = _file_error(RULES.replace("open_rate > 0.5", "open_rate > 0.5)"))
    assert (error.line, error.column) == (12, 22)
    assert "unbalanced ')'" in error.message

    error = _file_error(RULES + "\n[\"Bad Name\"]\nrule = 'orders > 1'\n")
    assert error.line == 14 and "segment name" in error.message
    error = _file_error(RULES + "\n[extra]\nrules = 'orders > 1'\n")
    assert error.line == 14 and "unknown key(s) rules" in error.message
    error = _file_error(RULES + "\n[standard]\nrule = 'orders > 1'\n")
    assert "segment name 'standard'" in error.message
    error = _file_error("[x]\nrule = = 'orders > 1'\n")
    assert "not valid TOML" in error.message and error.line == 2


def test_shipped_rules_file_parses(tmp_path: Path) -> None:
    rules = load_rules(REPO / "templates" / "segments.toml")
    assert rules and all(r.description for r in rules)
    assert load_rules(tmp_path / "missing.toml") == []
