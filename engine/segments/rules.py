"""Rule segments: declarative conditions over profile features, from ``templates/segments.toml``.

A rule reads like ``orders >= 3 and days_since_last_order <= 30 and "outdoor" in
top_categories``. Marketers write them, so the language is deliberately tiny and
is parsed here by a tokenizer and a recursive-descent parser into a small AST,
then evaluated with numpy over every profile at once. Rule text is never given to
``eval``, ``exec``, ``ast.literal_eval`` or anything else that runs Python: there
are no names but feature names, no calls, no attributes, no indexing.

Grammar::

    rule       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | atom
    atom       := "(" or ")" | comparison | membership
    comparison := FEATURE OP NUMBER | NUMBER OP FEATURE     OP: < <= > >= == !=
    membership := STRING ["not"] "in" "top_categories"

A comparison with an undefined value (no orders: no ``days_since_last_order``)
is false, ``!=`` included; ``not (...)`` is true for them.

File format (segments are tried in file order; the first that matches wins)::

    [outdoor-regulars]
    description = "Regular outdoor buyers, active this month"
    rule = 'orders >= 3 and days_since_last_order <= 30 and "outdoor" in top_categories'

Errors name the file, line and column of the offending character and show it
with a caret, so the marketer can fix the file without reading Python.
"""

from __future__ import annotations

import operator
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from engine.errors import RuleError
from engine.segments.features import BASE_FEATURES, SHARE_PREFIX, BoolArray, FloatArray, Profiles

MAX_RULE_LENGTH: Final = 2000
MAX_DEPTH: Final = 32
SET_FEATURES: Final = frozenset({"top_categories"})
#: Not segment names: the renderer's name for the standard version, and ours.
RESERVED_NAMES: Final = frozenset({"standard", "default"})
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_SHARE: Final = re.compile(rf"^{SHARE_PREFIX}[a-z0-9_]+$")
_KEYS: Final = frozenset({"rule", "description"})

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"[^"\n]*"|'[^'\n]*')
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
    """,
    re.VERBOSE,
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "in"})
_HINTS: Final = {
    ".": "attribute access is not part of the rule language",
    "=": "compare with '=='",
    "[": "indexing is not part of the rule language",
    "&": "write 'and'",
    "|": "write 'or'",
    "!": "write 'not'",
}
_OPS: Final[dict[str, Callable[[FloatArray, float], BoolArray]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_FLIP: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def is_feature(name: str) -> bool:
    """Features a rule may compare: the base features and any ``share_<category>``."""
    return name in BASE_FEATURES or bool(_SHARE.match(name))


# -- positions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Where a rule's characters are in its file, for error messages."""

    source: str | None
    text: str  # the whole file (or the rule itself)
    offsets: tuple[int, ...]  # file offset of each rule character, plus one past the end

    @classmethod
    def standalone(cls, rule: str, source: str | None = None) -> Where:
        return cls(source, rule, tuple(range(len(rule) + 1)))

    def point(self, pos: int) -> tuple[int, int, str]:
        """1-based line and column of rule position ``pos``, and that line of the file."""
        off = self.offsets[min(max(pos, 0), len(self.offsets) - 1)]
        start = self.text.rfind("\n", 0, off) + 1
        end = self.text.find("\n", off)
        line_text = self.text[start : end if end >= 0 else len(self.text)].rstrip("\r")
        return self.text.count("\n", 0, off) + 1, off - start + 1, line_text


# -- tokens and AST --------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, string, op, lparen, rparen, and, or, not, in, end
    text: str
    pos: int


@dataclass(frozen=True)
class Compare:
    feature: str
    op: str
    value: float


@dataclass(frozen=True)
class Member:
    category: str
    negated: bool


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


Node = Compare | Member | Not | BoolOp


def tokenize(rule: str, where: Where) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(rule):
        match = _TOKEN.match(rule, pos)
        if match is None:
            char = rule[pos]
            hint = _HINTS.get(char)
            if char in "\"'":
                raise RuleError.at(where, pos, "unterminated string")
            message = f"unexpected character {char!r}" + (f": {hint}" if hint else "")
            raise RuleError.at(where, pos, message)
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "name" and text in _KEYWORDS:
            kind = text
        if kind != "space":
            tokens.append(Token(kind, text, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(rule)))
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token], where: Where) -> None:
        self.tokens = tokens
        self.i = 0
        self.where = where
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, token: Token, message: str) -> RuleError:
        return RuleError.at(self.where, token.pos, message)

    def describe(self, token: Token) -> str:
        return "the end of the rule" if token.kind == "end" else repr(token.text)

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise self.fail(self.token, "empty rule")
        node = self.or_()
        if self.token.kind == "rparen":
            raise self.fail(self.token, "unbalanced ')': no '(' to close")
        if self.token.kind != "end":
            raise self.fail(
                self.token, f"unexpected {self.describe(self.token)}: expected 'and', 'or' or end"
            )
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.token.kind == "or":
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_(self) -> Node:
        items = [self.not_()]
        while self.token.kind == "and":
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def nested(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(token, f"nested more than {MAX_DEPTH} levels deep")

    def not_(self) -> Node:
        if self.token.kind == "not":
            token = self.take()
            self.nested(token)
            node = Not(self.not_())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        token = self.token
        if token.kind == "lparen":
            self.take()
            self.nested(token)
            node = self.or_()
            self.depth -= 1
            if self.token.kind != "rparen":
                if self.token.kind == "end":
                    raise self.fail(token, "unbalanced '(': no ')' closes it")
                raise self.fail(self.token, f"unexpected {self.describe(self.token)}: expected ')'")
            self.take()
            return node
        if token.kind == "name":
            return self.comparison_from_name()
        if token.kind == "number":
            return self.comparison_from_number()
        if token.kind == "string":
            return self.membership()
        if token.kind == "rparen":
            raise self.fail(token, "unbalanced ')': no '(' to close")
        raise self.fail(token, f"unexpected {self.describe(token)}: expected a condition")

    def feature(self, token: Token) -> str:
        if self.tokens[self.i].kind == "lparen":
            raise self.fail(token, f"calls are not part of the rule language: {token.text!r}")
        if token.text in SET_FEATURES:
            raise self.fail(token, f"{token.text} is a set: write '\"name\" in {token.text}'")
        if not is_feature(token.text):
            known = ", ".join((*BASE_FEATURES, "share_<category>", *sorted(SET_FEATURES)))
            raise self.fail(token, f"unknown feature {token.text!r}; known: {known}")
        return token.text

    def operator(self) -> str:
        token = self.take()
        if token.kind != "op":
            raise self.fail(
                token, f"unexpected {self.describe(token)}: expected one of < <= > >= == !="
            )
        return token.text

    def number(self) -> float:
        token = self.take()
        if token.kind != "number":
            raise self.fail(token, f"unexpected {self.describe(token)}: expected a number")
        value = float(token.text)
        if not np.isfinite(value):
            raise self.fail(token, "numbers must be finite")
        return value

    def comparison_from_name(self) -> Node:
        name = self.feature(self.take())
        op = self.operator()
        return Compare(name, op, self.number())

    def comparison_from_number(self) -> Node:
        value = self.number()
        op = self.operator()
        token = self.take()
        if token.kind != "name":
            raise self.fail(token, f"unexpected {self.describe(token)}: expected a feature name")
        return Compare(self.feature(token), _FLIP[op], value)

    def membership(self) -> Node:
        token = self.take()
        category = token.text[1:-1].strip().lower()
        if not category:
            raise self.fail(token, "empty category name")
        negated = False
        if self.token.kind == "not":
            self.take()
            negated = True
        if self.token.kind != "in":
            raise self.fail(self.token, f"unexpected {self.describe(self.token)}: expected 'in'")
        self.take()
        target = self.take()
        if target.kind != "name" or target.text not in SET_FEATURES:
            raise self.fail(target, "only 'top_categories' can follow 'in'")
        if self.token.kind == "lparen":
            raise self.fail(self.token, "calls are not part of the rule language")
        return Member(category, negated)


def parse_rule(rule: str, where: Where | None = None) -> Node:
    """Parse one rule into its AST; RuleError (with line and column) if it is not valid."""
    where = where or Where.standalone(rule)
    if len(rule) > MAX_RULE_LENGTH:
        raise RuleError.at(where, MAX_RULE_LENGTH, f"rule longer than {MAX_RULE_LENGTH} characters")
    return _Parser(tokenize(rule, where), where).parse()


def evaluate(node: Node, profiles: Profiles) -> BoolArray:
    """Which profiles match, as one boolean per contact (row order of ``profiles``)."""
    if isinstance(node, Compare):
        column = profiles.column(node.feature)
        with np.errstate(invalid="ignore"):
            hit = _OPS[node.op](column, node.value)
        return np.asarray(hit & ~np.isnan(column), dtype=np.bool_)
    if isinstance(node, Member):
        found = profiles.in_top(node.category)
        return ~found if node.negated else found
    if isinstance(node, Not):
        return ~evaluate(node.operand, profiles)
    parts = [evaluate(operand, profiles) for operand in node.operands]
    combine = np.logical_and if node.op == "and" else np.logical_or
    return np.asarray(combine.reduce(parts), dtype=np.bool_)


# -- the rules file ------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSegment:
    name: str
    description: str
    rule: str
    node: Node

    def matches(self, profiles: Profiles) -> BoolArray:
        return evaluate(self.node, profiles)


def load_rules(path: Path) -> list[RuleSegment]:
    """Rule segments of ``path`` in file order; none if the file does not exist."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RuleError(
            f"not UTF-8 (byte {exc.start + 1} cannot be decoded)", source=str(path), line=line
        ) from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "segments.toml") -> list[RuleSegment]:
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise RuleError(
            "not valid TOML: arrays or tables nested too deeply", source=source
        ) from None
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        if at is None:
            raise RuleError(f"not valid TOML: {exc}", source=source) from None
        line, column = int(at.group(1)), int(at.group(2))
        lines = text.splitlines()
        raise RuleError(
            f"not valid TOML: {str(exc)[: at.start()].strip()}",
            source=source,
            line=line,
            column=column,
            excerpt=lines[line - 1] if 0 < line <= len(lines) else None,
        ) from None
    headers = _headers(text)
    segments: list[RuleSegment] = []
    for name, table in doc.items():
        header = headers.get(name)
        header_where = Where(source, text, (header.start,) if header else (0,))
        if not isinstance(table, dict):
            raise RuleError.at(header_where, 0, f"{name!r}: expected a [{name}] table")
        if not _NAME.match(name) or name in RESERVED_NAMES:
            raise RuleError.at(
                header_where,
                0,
                f"segment name {name!r}: lowercase letters, digits and '-', at most 64, "
                f"not {', '.join(sorted(RESERVED_NAMES))} (it names template files)",
            )
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise RuleError.at(
                header_where,
                0,
                f"[{name}]: unknown key(s) {', '.join(unknown)}; use rule, description",
            )
        rule = table.get("rule")
        description = table.get("description", "")
        if not isinstance(rule, str) or not isinstance(description, str):
            raise RuleError.at(header_where, 0, f"[{name}]: rule (and description) must be strings")
        where = _rule_where(text, source, header, rule)
        segments.append(RuleSegment(name, description or rule, rule, parse_rule(rule, where)))
    return segments


@dataclass(frozen=True)
class _Header:
    start: int  # offset of the '[' of the table header
    end: int  # offset of the next header, or the end of the file


_HEADER: Final = re.compile(
    r"""^[ \t]*\[[ \t]*(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[A-Za-z0-9_-]+))[ \t]*\]""",
    re.MULTILINE,
)
_RULE_KEY: Final = re.compile(r"""^[ \t]*(?:rule|"rule"|'rule')[ \t]*=[ \t]*""", re.MULTILINE)


def _headers(text: str) -> dict[str, _Header]:
    found = list(_HEADER.finditer(text))
    out: dict[str, _Header] = {}
    for i, match in enumerate(found):
        name = match.group("dq") or match.group("sq") or match.group("bare") or ""
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        out.setdefault(name, _Header(match.start(), end))
    return out


def _rule_where(text: str, source: str, header: _Header | None, rule: str) -> Where:
    """Map each character of the rule to its offset in the file (falls back to the key)."""
    if header is not None:
        key = _RULE_KEY.search(text, header.start, header.end)
        if key is not None:
            mapped = _string_offsets(text, key.end())
            if mapped is not None and mapped[0] == rule:
                return Where(source, text, mapped[1])
            return Where(source, text, (key.end(),) * (len(rule) + 1))
        return Where(source, text, (header.start,) * (len(rule) + 1))
    return Where(source, text, (0,) * (len(rule) + 1))


_ESCAPES: Final = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _string_offsets(text: str, start: int) -> tuple[str, tuple[int, ...]] | None:
    """Decode the TOML string literal at ``start``; each character's file offset too.

    Covers the four TOML string forms; returns None for anything unexpected, and the
    caller then points at the key instead.
    """
    chars: list[str] = []
    offsets: list[int] = []
    for quote in ("'''", '"""', "'", '"'):
        if text.startswith(quote, start):
            break
    else:
        return None
    multi = len(quote) == 3
    basic = quote[0] == '"'
    i = start + len(quote)
    if multi and text.startswith("\r\n", i):
        i += 2
    elif multi and text.startswith("\n", i):
        i += 1
    while i < len(text):
        if text.startswith(quote, i):
            offsets.append(i)
            return "".join(chars), tuple(offsets)
        char = text[i]
        if not multi and char == "\n":
            return None
        if basic and char == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt in _ESCAPES:
                chars.append(_ESCAPES[nxt])
                offsets.append(i)
                i += 2
                continue
            if nxt in ("u", "U"):
                width = 4 if nxt == "u" else 8
                try:
                    chars.append(chr(int(text[i + 2 : i + 2 + width], 16)))
                except ValueError:
                    return None
                offsets.append(i)
                i += 2 + width
                continue
            if multi:  # line-ending backslash: skip whitespace up to the next text
                j = i + 1
                while j < len(text) and text[j] in " \t":
                    j += 1
                if text.startswith("\n", j) or text.startswith("\r\n", j):
                    while j < len(text) and text[j] in " \t\r\n":
                        j += 1
                    i = j
                    continue
            return None
        chars.append(char)
        offsets.append(i)
        i += 1
    return None
