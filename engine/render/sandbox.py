"""The one environment marketer templates render in, its limits, and the errors it raises.

``ImmutableSandboxedEnvironment`` (jinja2 >= 3.1.6) refuses attribute access to
internals (``__class__``, ``__globals__``, ``str.format``) and mutation of
containers; ``autoescape=True`` escapes every value that is not marked safe;
``StrictUndefined`` turns a missing field into an error instead of an empty
string. Tact adds what the sandbox lacks:

*Templates read only their own files.* A campaign template is compiled from
text the campaign loader read itself (:func:`read_source`: no symlink, nothing
outside the campaign or brand folder, UTF-8, a size cap). Its parsed tree is
checked before it is compiled (:func:`check_tree`): ``extends``, ``include``,
``import``, ``from``, ``block``, ``recursive`` loops, the ``safe`` filter and any
``autoescape`` other than a constant ``true`` are refused, so preview, lint and
send all refuse them. The brand base and the notices are ours: they are loaded
by :class:`ConfinedLoader` (same file rules) and may extend each other.

*Every path that can grow or loop is bounded* (constants below): strings built
by filters, ``~``, ``%``, ``+`` and ``*`` are capped before they are built where
the size is known in advance (``center``, ``indent``, ``format``, ``batch``,
``slice``, ``wordwrap``, ``join``, ``replace``, printf widths), and after
otherwise; integers are capped in bits; containers (literals, ``+``, ``*``,
filter results) are capped in their expanded size, so no ``str()`` of a shared
nested list can explode; loop iterations, calls (macros, ``loop()``,
``caller()``) and call depth are capped; buffers (macros, ``{% set %}`` blocks,
``{% filter %}``) are capped like the output. Each render has a CPU-time
deadline, checked every few hundred steps (loop iterations, calls, filters,
operators, output chunks), each step being bounded by the caps. Every
allocation a template makes through these paths is charged to a per-render
byte budget (:data:`MAX_ALLOC_BYTES`), so one render's memory stays below it.

Every error names the template file and line, never the data.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, TemplateNotFound, UndefinedError
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from engine.errors import (
    OutputTooLarge,
    RenderError,
    RenderLimit,
    RenderSecurityError,
    RenderTimeout,
)

MAX_OUTPUT = 256 * 1024  # characters per rendered template
MAX_STRING = MAX_OUTPUT  # longest string any operator or filter may build
MAX_REPEAT = 64 * 1024  # longest string/sequence '*' may build
MAX_EXPONENT = 64
MAX_INT_BITS = 4096  # about 1,233 decimal digits
MAX_ITEMS = 100_000  # expanded size of a container (items, nested items counted)
MAX_ITEM_CHARS = 1024 * 1024  # characters in a container, nested strings counted
MAX_ITERATIONS = 100_000  # loop iterations per render, all loops together
MAX_CALLS = 100_000  # macro / loop() / caller() calls per render
MAX_CALL_DEPTH = 32
MAX_ALLOC_BYTES = 128 * 1024 * 1024  # bytes of strings and lists a render may build
CPU_SECONDS = 2.0  # CPU time per render
MAX_SOURCE = 256 * 1024  # characters per template file
MAX_NESTING = 12  # statements nested in statements (for, if, with, macro...)
MAX_EXPR_DEPTH = 48  # operators and parentheses nested in one expression
_CHECK_EVERY = 255  # steps between two looks at the CPU clock (a mask: 2**n - 1)


# -- files -------------------------------------------------------------------------------------


def read_source(
    root: Path, path: Path, *, label: str | None = None, limit: int = MAX_SOURCE
) -> str:
    """The text of ``path``, a file inside ``root``, read without following any link.

    Refused (RenderSecurityError naming the file): a path that is or passes through
    a symlink below ``root``, a path outside ``root``, anything but a regular file.
    Also refused: more than ``limit`` characters, text that is not UTF-8.
    """
    shown = label or _short(str(path)) or str(path)
    data = read_bytes(root, path, label=shown, limit=limit * 4)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RenderError(
            f"not UTF-8 (byte {exc.start + 1} cannot be decoded)", shown, line
        ) from None
    if len(text) > limit:
        raise OutputTooLarge(f"longer than {limit} characters", shown)
    return text


def read_bytes(root: Path, path: Path, *, label: str | None = None, limit: int) -> bytes:
    """The bytes of ``path`` inside ``root``; see :func:`read_source` for what is refused."""
    shown = label or str(path)
    confined(root, path, label=shown)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise RenderError("not found", shown) from None
    except OSError as exc:  # ELOOP: the last component became a symlink
        raise RenderSecurityError(f"cannot be read safely ({exc.strerror})", shown) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise RenderSecurityError("not a regular file", shown)
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OutputTooLarge(f"larger than {limit} bytes", shown)
    return data


def confined(root: Path, path: Path, *, label: str | None = None) -> Path:
    """``path`` if it lies inside ``root`` and no component below ``root`` is a symlink."""
    shown = label or str(path)
    root_abs = Path(os.path.abspath(root))
    path_abs = Path(os.path.abspath(path))
    try:
        parts = path_abs.relative_to(root_abs).parts
    except ValueError:
        raise RenderSecurityError("outside the campaign and brand folders", shown) from None
    if ".." in parts:
        raise RenderSecurityError("outside the campaign and brand folders", shown)
    current = root_abs
    for part in parts:
        current = current / part
        try:
            if current.is_symlink():
                raise RenderSecurityError(
                    "is a symbolic link (templates read only their own files)", shown
                )
        except OSError:
            raise RenderError("cannot be read", shown) from None
    try:
        real_root = root_abs.resolve()
        if not path_abs.resolve().is_relative_to(real_root):
            raise RenderSecurityError("outside the campaign and brand folders", shown)
    except OSError:
        raise RenderError("cannot be read", shown) from None
    return path_abs


class ConfinedLoader(BaseLoader):
    """Our own templates (brand base, notices) from fixed folders: no links, no escape.

    Only trusted templates are loaded through a loader; campaign templates are
    compiled from text their loader read (:func:`compile_template` with ``source``)
    and can name no other file.
    """

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(r) for r in roots]

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = template.replace("\\", "/").split("/")
        if any(p in ("", ".", "..") for p in pieces) or template.startswith("/"):
            raise TemplateNotFound(template)
        for root in self.roots:
            path = root.joinpath(*pieces)
            if os.path.lexists(path):
                source = read_source(root, path, label=_short(str(path)))
                return source, str(path), lambda: True
        raise TemplateNotFound(template)

    def load(self, environment: Any, name: str, globals: Any = None) -> Template:
        source, filename, uptodate = self.get_source(environment, name)
        code = _compiled(source, name, filename, trusted=True)
        if globals is None:
            globals = environment.make_globals(None)
        return environment.template_class.from_code(  # type: ignore[no-any-return]
            environment, code, globals, uptodate
        )


# -- the per-render budget ---------------------------------------------------------------------


class Budget:
    """What one render (or one message: several renders) has used of its bounds.

    The CPU clock is read at check points only, every 256 steps (a step: a loop
    iteration, a call, a filter, an operator, a buffered output), and starts at the
    first of them: a render of fewer steps (a typical message) never reads it, and
    the steps before it are bounded by the caps, so the deadline is ``cpu_seconds``
    counted from the 256th step.
    """

    __slots__ = ("alloc", "calls", "cpu_seconds", "deadline", "depth", "iterations", "steps")

    def __init__(self, cpu_seconds: float = CPU_SECONDS) -> None:
        self.cpu_seconds = cpu_seconds
        self.deadline: float | None = None
        self.steps = 0
        self.iterations = 0
        self.calls = 0
        self.depth = 0
        self.alloc = 0


_STATE = threading.local()


def _budget() -> Budget | None:
    return getattr(_STATE, "budget", None)


def _step(b: Budget) -> None:
    b.steps += 1
    if not b.steps & _CHECK_EVERY:
        _check_clock(b)


def _check_clock(b: Budget) -> None:
    now = time.process_time()
    if b.deadline is None:
        b.deadline = now + b.cpu_seconds
    elif now > b.deadline:
        raise RenderTimeout(f"render took more than {b.cpu_seconds:g} s of CPU time")


def _charge(b: Budget | None, value: Any) -> None:
    if b is None:
        return
    b.alloc += sys.getsizeof(value)
    if b.alloc > MAX_ALLOC_BYTES:
        raise OutputTooLarge(f"render built more than {MAX_ALLOC_BYTES // 2**20} MB")


def _check_value(value: Any) -> Any:
    """Refuse a result above the caps; charge it to the render's memory budget."""
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise OutputTooLarge(f"string above {MAX_STRING} characters refused")
        _charge(_budget(), value)
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise RenderLimit(f"number above {MAX_INT_BITS} bits refused")
    elif isinstance(value, list | tuple | dict | set | frozenset):
        _check_weight(value)
        _charge(_budget(), value)
    return value


def _weight(
    value: Any, budget_items: int = MAX_ITEMS, budget_chars: int = MAX_ITEM_CHARS
) -> tuple[int, int]:
    """(items, characters) of ``value`` expanded, shared references counted each time.

    Stops as soon as a budget is exceeded, so the walk itself is bounded.
    """
    items = chars = 0
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        items += 1
        if isinstance(v, str):
            chars += len(v)
        elif isinstance(v, list | tuple | set | frozenset):
            items += len(v)
            if items <= budget_items:
                stack.extend(v)
        elif isinstance(v, dict):
            items += 2 * len(v)
            if items <= budget_items:
                stack.extend(v.keys())
                stack.extend(v.values())
        if items > budget_items or chars > budget_chars:
            return items, chars
    return items, chars


def _check_weight(value: Any, factor: int = 1) -> None:
    items, chars = _weight(value)
    if items * factor > MAX_ITEMS or chars * factor > MAX_ITEM_CHARS:
        raise OutputTooLarge(
            f"list or mapping above {MAX_ITEMS} items or {MAX_ITEM_CHARS} characters refused"
        )


def _int_arg(value: Any, cap: int, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > cap:
        raise OutputTooLarge(f"{what} above {cap} refused")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _check_printf(fmt: Any) -> None:
    """Widths and precisions of a printf-style format: at most 1,000, never ``*``."""
    if not isinstance(fmt, str):
        return
    for match in _PRINTF.finditer(fmt):
        for number in (match.group(1), match.group(2)):
            if number == "*":
                raise RenderLimit("'*' width in a format refused")
            if number and (len(number) > 4 or int(number) > 1000):
                raise OutputTooLarge("format width or precision above 1000 refused")


# -- filters -----------------------------------------------------------------------------------


def _pre_center(value: Any, width: Any = 80) -> None:
    _int_arg(width, MAX_STRING, "center width")


def _pre_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    text = str(s)
    pad = len(width) if isinstance(width, str) else width
    _int_arg(pad, MAX_STRING, "indent width")
    if isinstance(pad, int) and len(text) + (text.count("\n") + 1) * max(pad, 0) > MAX_STRING:
        raise OutputTooLarge(f"indent result above {MAX_STRING} characters refused")


def _pre_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(value)


def _pre_batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    _int_arg(linecount, MAX_ITEMS, "batch size")
    if fill_with is not None and isinstance(linecount, int):
        _check_weight(fill_with, max(linecount, 1))


def _pre_slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    _int_arg(slices, MAX_ITEMS, "slice count")
    if fill_with is not None and isinstance(slices, int):
        _check_weight(fill_with, max(slices, 1))


def _pre_wordwrap(
    s: Any,
    width: Any = 79,
    break_long_words: bool = True,
    wrapstring: Any = None,
    break_on_hyphens: bool = True,
) -> None:
    _int_arg(width, MAX_STRING, "wordwrap width")
    text = str(s)
    extra = len(wrapstring) if isinstance(wrapstring, str) else 1
    if len(text) * (1 + extra) > MAX_STRING * 2:
        raise OutputTooLarge(f"wordwrap result above {MAX_STRING} characters refused")


def _pre_truncate(
    s: Any, length: Any = 255, killwords: bool = False, end: Any = "...", leeway: Any = None
) -> None:
    _int_arg(length, MAX_STRING, "truncate length")
    _int_arg(leeway, MAX_STRING, "truncate leeway")


def _pre_join(value: Any, d: Any = "", attribute: Any = None) -> None:
    if (
        isinstance(d, str)
        and isinstance(value, list | tuple | str)
        and len(d) * len(value) > MAX_STRING
    ):
        raise OutputTooLarge(f"join result above {MAX_STRING} characters refused")


def _pre_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old_s, new_s = str(s), str(old), str(new)
    hits = len(text) + 1 if old_s == "" else text.count(old_s)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * max(len(new_s) - len(old_s), 0) > MAX_STRING:
        raise OutputTooLarge(f"replace result above {MAX_STRING} characters refused")


def _pre_list(value: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_ITEMS:
        raise OutputTooLarge(f"list above {MAX_ITEMS} items refused")


def _pre_int(value: Any, default: Any = 0, base: Any = 10) -> None:
    if isinstance(value, str) and len(value) > MAX_INT_BITS // 3:
        raise RenderLimit(f"number above {MAX_INT_BITS} bits refused")


_PRECHECKS: dict[str, Callable[..., None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "format": _pre_format,
    "batch": _pre_batch,
    "slice": _pre_slice,
    "wordwrap": _pre_wordwrap,
    "truncate": _pre_truncate,
    "join": _pre_join,
    "replace": _pre_replace,
    "list": _pre_list,
    "int": _pre_int,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    pre = _PRECHECKS.get(name)
    signature = inspect.signature(pre) if pre is not None else None
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        b = _budget()
        if b is not None:
            _step(b)
        if pre is not None and signature is not None:
            try:
                signature.bind(*args[skip:], **kwargs)
            except TypeError:
                pass  # the filter itself reports a wrong call
            else:
                pre(*args[skip:], **kwargs)
        return _check_value(func(*args, **kwargs))

    return bounded


def _bounded_join(join: Callable[[Iterable[Any]], str]) -> Callable[[Iterable[Any]], str]:
    """``~``: the total length is known before the string is built."""

    def bounded(seq: Iterable[Any]) -> str:
        items = list(seq)
        total = 0
        for item in items:
            total += len(item) if isinstance(item, str) else len(str(item))
        if total > MAX_STRING:
            raise OutputTooLarge(f"'~' result above {MAX_STRING} characters refused")
        b = _budget()
        if b is not None:
            _step(b)
        result = join(items)
        _charge(b, result)
        return result

    return bounded


class _Buffer(list[Any]):
    """What a macro, ``{% set %}`` block, ``{% filter %}`` or ``{% call %}`` collects."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def append(self, item: Any) -> None:
        self.size += len(item) if isinstance(item, str) else 64
        if self.size > MAX_OUTPUT:
            raise OutputTooLarge(f"output above {MAX_OUTPUT} characters")
        b = _budget()
        if b is not None:
            _step(b)
            _charge(b, item)
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)


def _bounded_iter(iterable: Any) -> Iterator[Any]:
    """Every loop's iterable: iterations counted against the render's budget."""
    b = _budget()
    if b is None:
        yield from iterable
        return
    for item in iterable:
        b.iterations += 1
        if b.iterations > MAX_ITERATIONS:
            raise RenderLimit(f"more than {MAX_ITERATIONS} loop iterations")
        _step(b)
        yield item


class _CodeGenerator(CodeGenerator):
    """Buffers that count what goes in."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.tact_buffer()")


class _Template(Template):
    """A template whose ``~`` is bounded."""

    @classmethod
    def from_code(
        cls,
        environment: Any,
        code: CodeType,
        globals: Any,
        uptodate: Callable[[], bool] | None = None,
    ) -> Template:
        namespace: dict[str, Any] = {"environment": environment, "__file__": code.co_filename}
        exec(code, namespace)  # noqa: S102 - Jinja's own step: running the compiled template
        namespace["markup_join"] = _MARKUP_JOIN
        namespace["str_join"] = _STR_JOIN
        rv = cls._from_namespace(environment, namespace, globals)
        rv._uptodate = uptodate
        return rv


def _markup_join(seq: Iterable[Any]) -> str:
    from jinja2.runtime import markup_join

    return markup_join(seq)


def _str_join(seq: Iterable[Any]) -> str:
    return "".join(map(str, seq))


_MARKUP_JOIN = _bounded_join(_markup_join)
_STR_JOIN = _bounded_join(_str_join)


class TactSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus the limits described in the module docstring."""

    intercepted_binops = frozenset({"*", "**", "+", "-", "%", "//", "/"})
    code_generator_class = _CodeGenerator
    template_class = _Template

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["tact_iter"] = _bounded_iter
        self.filters["tact_container"] = _check_value
        self.tact_buffer = _Buffer

    def wrap_str_format(self, value: Any) -> None:
        """No ``str.format``/``format_map`` at all, not even the sandbox's safe wrapper."""
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Templates read data; they call nothing but filters. Methods are refused."""
        if callable(value):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Text compiled without :func:`compile_template` is a campaign's: fully checked."""
        tree = _parse_raw(self, source, name, filename)
        check_tree(tree, name or filename or "template", trusted=False)
        return tree

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        b = _budget()
        if b is None:
            return super().call(__context, __obj, *args, **kwargs)
        b.calls += 1
        if b.calls > MAX_CALLS:
            raise RenderLimit(f"more than {MAX_CALLS} calls")
        if b.depth >= MAX_CALL_DEPTH:
            raise RenderLimit(f"calls nested more than {MAX_CALL_DEPTH} deep (recursion?)")
        _step(b)
        b.depth += 1
        try:
            return _check_value(super().call(__context, __obj, *args, **kwargs))
        finally:
            b.depth -= 1

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        b = _budget()
        if b is not None:
            _step(b)
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise OutputTooLarge(f"exponent above {MAX_EXPONENT} refused")
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                if left.bit_length() * right > MAX_INT_BITS:
                    raise RenderLimit(f"number above {MAX_INT_BITS} bits refused")
            return _check_value(left**right)
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    if len(seq) * count > MAX_REPEAT:
                        raise OutputTooLarge(f"repetition above {MAX_REPEAT} characters refused")
                    if not isinstance(seq, str):
                        _check_weight(seq, max(count, 1))
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                    raise RenderLimit(f"number above {MAX_INT_BITS} bits refused")
            return _check_value(left * right)
        if operator == "+":
            if isinstance(left, str) and isinstance(right, str):
                if len(left) + len(right) > MAX_STRING:
                    raise OutputTooLarge(f"string above {MAX_STRING} characters refused")
            return _check_value(left + right)
        if operator == "%":
            if isinstance(left, str):
                _check_printf(left)
            return _check_value(left % right)
        if operator == "-":
            return _check_value(left - right)
        if operator == "/":
            return left / right
        return _check_value(left // right)


def sandbox(search_path: list[Path]) -> TactSandbox:
    """The environment; ``search_path`` holds our own templates (brand, notices) only."""
    return TactSandbox(
        loader=ConfinedLoader(list(search_path)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        keep_trailing_newline=True,
    )


# -- compile-time checks -----------------------------------------------------------------------

_REFUSED_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
    nodes.Block: "block",
}
_NESTING = (
    nodes.For,
    nodes.If,
    nodes.With,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.Scope,
    nodes.ScopedEvalContextModifier,
    nodes.AssignBlock,
)


def check_tree(tree: nodes.Template, name: str, *, trusted: bool, plain: bool = False) -> None:
    """Refuse what a campaign template may not do, and anything nested too deeply.

    ``plain``: the template is a text part whose outermost node is our own
    ``{% autoescape false %}`` wrapper (:func:`engine.render.template.plain_text`).
    Also wraps every loop's iterable and every built list/tuple/dict in the
    sandbox's counters (the tree is changed in place, before it is compiled).
    """
    label = _short(name)
    wrapper: nodes.Node | None = None
    if plain and len(tree.body) == 1 and isinstance(tree.body[0], nodes.Scope):
        inner = tree.body[0].body
        if len(inner) == 1 and isinstance(inner[0], nodes.ScopedEvalContextModifier):
            wrapper = inner[0]
    stack: list[tuple[nodes.Node, int, int]] = [(tree, 0, 0)]
    while stack:
        node, nesting, depth = stack.pop()
        line = getattr(node, "lineno", None)
        if nesting > MAX_NESTING:
            raise RenderLimit(f"statements nested more than {MAX_NESTING} deep", label, line)
        if depth > MAX_EXPR_DEPTH:
            raise RenderLimit(f"expression nested more than {MAX_EXPR_DEPTH} deep", label, line)
        if not trusted:
            _refuse(node, label, line, wrapper)
        if isinstance(node, nodes.Const) and isinstance(node.value, int):
            if node.value.bit_length() > MAX_INT_BITS:
                raise RenderLimit(f"number above {MAX_INT_BITS} bits refused", label, line)
        if isinstance(node, nodes.For):
            node.iter = nodes.Filter(node.iter, "tact_iter", [], [], None, None, lineno=node.lineno)
        for field in node.fields:
            if isinstance(node, nodes.Filter) and node.name == "tact_container":
                break
            child = getattr(node, field, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, nodes.List | nodes.Dict) or (
                    isinstance(item, nodes.Tuple) and item.ctx == "load"
                ):
                    wrapped = nodes.Filter(
                        item, "tact_container", [], [], None, None, lineno=item.lineno
                    )
                    _replace(node, field, item, wrapped)
        elifs = {id(n) for n in node.elif_} if isinstance(node, nodes.If) else set()
        for child in reversed(list(node.iter_child_nodes())):  # popped in source order
            stack.append(
                (
                    child,
                    nesting + (isinstance(child, _NESTING) and id(child) not in elifs),
                    depth + 1 if isinstance(child, nodes.Expr) else 0,
                )
            )


def _replace(parent: nodes.Node, field: str, old: nodes.Node, new: nodes.Node) -> None:
    value = getattr(parent, field)
    if isinstance(value, list):
        setattr(parent, field, [new if v is old else v for v in value])
    else:
        setattr(parent, field, new)


def _refuse(
    node: nodes.Node, label: str | None, line: int | None, wrapper: nodes.Node | None
) -> None:
    for kind, tag in _REFUSED_TAGS.items():
        if isinstance(node, kind):
            raise RenderSecurityError(
                f"'{tag}' is not allowed in a campaign: templates read only their own "
                "file, and the brand base, its footer and unsubscribe link are the same "
                "for every email",
                label,
                line,
            )
    if isinstance(node, nodes.Filter | nodes.Test) and node.name == "safe":
        raise RenderSecurityError(
            "the 'safe' filter is not allowed in a campaign: every value is escaped", label, line
        )
    if isinstance(node, nodes.For) and node.recursive:
        raise RenderSecurityError("recursive loops are not allowed in a campaign", label, line)
    if isinstance(node, nodes.ScopedEvalContextModifier | nodes.EvalContextModifier):
        if node is wrapper:
            return
        for option in node.options:
            if option.key == "autoescape" and not (
                isinstance(option.value, nodes.Const) and option.value.value is True
            ):
                raise RenderSecurityError(
                    "'autoescape' other than true is not allowed in a campaign: every value "
                    "is escaped",
                    label,
                    line,
                )


_BRACKETS = re.compile(r"[()\[\]{}]")


def _deepest_line(source: str) -> int | None:
    """The line where brackets first nest past the expression limit (for a parse error)."""
    depth = 0
    for match in _BRACKETS.finditer(source):
        depth += 1 if match.group() in "([{" else -1
        if depth > MAX_EXPR_DEPTH:
            return source.count("\n", 0, match.start()) + 1
    return None


def _parse_raw(env: Any, source: str, name: str | None, filename: str | None) -> nodes.Template:
    label = _short(filename or name)
    if len(source) > MAX_SOURCE * 2:
        raise OutputTooLarge(f"template longer than {MAX_SOURCE * 2} characters", label)
    try:
        return Parser(env, source, name, filename).parse()
    except TemplateSyntaxError as exc:
        raise RenderError(f"syntax error: {exc.message}", label, exc.lineno) from None
    except RecursionError:
        raise RenderLimit(
            f"expression nested more than {MAX_EXPR_DEPTH} deep", label, _deepest_line(source)
        ) from None
    except (MemoryError, ValueError, OverflowError) as exc:  # e.g. int literal digit limit
        digits = re.search(r"\d{1000}", source)
        line = source.count("\n", 0, digits.start()) + 1 if digits else None
        raise RenderLimit(f"cannot be compiled ({type(exc).__name__})", label, line) from None


def parse_source(source: str, name: str) -> nodes.Template:
    """The parsed tree of a template's text (for lint); errors name the file and line."""
    return _parse_raw(_PROTOTYPE, source, name, name)


@lru_cache(maxsize=1024)
def _compiled(
    source: str, name: str, filename: str, *, trusted: bool = False, plain: bool = False
) -> CodeType:
    """Template source to code, once per process for a given text and trust.

    Every ``sandbox()`` environment has the same options (and no campaign template
    may pull in another), so the same source always compiles to the same code: a
    worker that builds a renderer for every campaign compiles each template once.
    """
    label = _short(filename or name)
    tree = _parse_raw(_PROTOTYPE, source, name, filename)
    check_tree(tree, filename or name, trusted=trusted, plain=plain)
    try:
        code: CodeType = _PROTOTYPE.compile(tree, name, filename)
    except TemplateSyntaxError as exc:
        raise RenderError(f"syntax error: {exc.message}", label, exc.lineno) from None
    except RecursionError:
        raise RenderLimit("nested too deeply to compile", label) from None
    except (SyntaxError, MemoryError, ValueError, OverflowError) as exc:
        # Python's own limits ("too many statically nested blocks", parentheses)
        raise RenderLimit(f"cannot be compiled ({type(exc).__name__})", label) from None
    return code


_PROTOTYPE = sandbox([])


def compile_template(
    env: TactSandbox,
    name: str,
    source: str | None = None,
    *,
    trusted: bool = False,
    plain: bool = False,
) -> Template:
    """Load ``name`` (one of our own templates, from the loader), or compile ``source``.

    ``source`` is a campaign's text (a block, a subject) unless ``trusted``: it is
    checked by :func:`check_tree`. Every error names the file and line.
    """
    try:
        if source is None:
            if env.loader is None:
                raise RenderError("no template loader", name)
            return env.get_template(name)
        code = _compiled(source, name, name, trusted=trusted, plain=plain)
        return env.template_class.from_code(env, code, env.make_globals(None), None)
    except TemplateNotFound:
        raise RenderError("not found", name) from None
    except TemplateSyntaxError as exc:
        raise RenderError(
            f"syntax error: {exc.message}", _short(exc.filename) or name, exc.lineno
        ) from None


# -- rendering ---------------------------------------------------------------------------------


def _template_frame(tb: Any, fallback: str | None) -> tuple[str | None, int | None]:
    """The innermost frame that belongs to a template file, as (name, line)."""
    name, line = fallback, None
    for frame in traceback.extract_tb(tb):
        if (
            frame.filename.endswith(".j2")
            or frame.filename == "<template>"
            or (fallback is not None and frame.filename == fallback)
        ):
            name, line = Path(frame.filename).name if name is None else name, frame.lineno
            if frame.filename.endswith(".j2"):
                name = frame.filename
    return name, line


def render_capped(
    template: Template,
    context: dict[str, Any],
    *,
    limit: int = MAX_OUTPUT,
    cpu_seconds: float = CPU_SECONDS,
    budget: Budget | None = None,
) -> str:
    """Render with a cap on output and a CPU deadline; errors name file and line.

    ``budget``: one :class:`Budget` shared by several renders (the parts of one
    message); otherwise the render gets its own of ``cpu_seconds``.

    The context is shared as is (``shared=True``): a template sees exactly the names
    it is given, not even Jinja's default globals (``range``, ``cycler``, ``lipsum``…),
    and no dict is copied per render.
    """
    label = template.filename or template.name
    outer = getattr(_STATE, "budget", None)
    _STATE.budget = budget or Budget(cpu_seconds)
    try:
        try:
            parts: list[str] = []
            size = 0
            stream = template.root_render_func(template.new_context(context, shared=True))
            for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise OutputTooLarge(f"output above {limit} characters", label, _at(stream))
                # No clock here: output outside loops and calls is bounded by the
                # template's size, and every loop, call, filter and operator ticks.
                parts.append(chunk)
            return "".join(parts)
        except Exception:  # rewrite the traceback so frames name template files and lines
            template.environment.handle_exception()
    except RenderError as exc:
        name, line = _template_frame(sys.exc_info()[2], label)
        if line is None and exc.line is not None:  # raised here, at the template's yield
            name, line = exc.template, exc.line
        raise type(exc)(exc.message, _short(name), line) from None
    except SecurityError as exc:
        name, line = _template_frame(sys.exc_info()[2], label)
        raise RenderSecurityError(f"not allowed in a template: {exc}", _short(name), line) from None
    except UndefinedError as exc:
        name, line = _template_frame(sys.exc_info()[2], label)
        message = f"{exc} (only declared fields are available)"
        raise RenderError(message, _short(name), line) from None
    except TemplateError as exc:
        name, line = _template_frame(sys.exc_info()[2], label)
        raise RenderError(str(exc), _short(name), line) from None
    except RecursionError:
        name, line = _template_frame(sys.exc_info()[2], label)
        raise RenderLimit("calls nested too deeply (recursion?)", _short(name), line) from None
    except (
        TypeError,
        ValueError,
        ArithmeticError,
        AttributeError,
        MemoryError,
        LookupError,
    ) as exc:
        name, line = _template_frame(sys.exc_info()[2], label)
        raise RenderError(f"{type(exc).__name__}: {_plain(exc)}", _short(name), line) from None
    finally:
        _STATE.budget = outer
    raise RenderError("render failed", _short(label))  # handle_exception always raises


def _at(stream: Any) -> int | None:
    """The template line a suspended render stream stands at (it yielded there)."""
    frame = getattr(stream, "gi_frame", None)
    if frame is None:
        return None
    template = frame.f_globals.get("environment")
    debug = frame.f_globals.get("debug_info", "")
    if template is None or not debug:
        return None
    line = 1
    for pair in debug.split("&"):
        template_line, code_line = (int(x) for x in pair.split("="))
        if code_line > frame.f_lineno:
            break
        line = template_line
    return line


def _plain(exc: BaseException) -> str:
    """An exception's text without quoted data (a KeyError repeats the key)."""
    if isinstance(exc, LookupError):
        return "no such item"
    return str(exc)[:200]


def _short(path: str | None) -> str | None:
    """A template path relative to the templates directory, for messages."""
    if path is None:
        return None
    marker = "/templates/"
    return path.split(marker, 1)[1] if marker in path else path
