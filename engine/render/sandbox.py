"""The one environment marketer templates render in, and the errors it raises.

``ImmutableSandboxedEnvironment`` (jinja2 >= 3.1.6) refuses attribute access to
internals (``__class__``, ``__globals__``, ``str.format``) and mutation of
containers; ``autoescape=True`` escapes every value that is not marked safe;
``StrictUndefined`` turns a missing field into an error instead of an empty
string. The sandbox does not cap output, so Tact does: rendering streams and
stops at ``MAX_OUTPUT`` characters, and the ``*`` and ``**`` operators refuse
to build huge strings or numbers before they exist (``{{ 'a' * 10**8 }}``).

Every error names the template file and line, never the data.
"""

from __future__ import annotations

import sys
import traceback
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import TactError

MAX_OUTPUT = 256 * 1024  # characters per rendered template
MAX_REPEAT = 64 * 1024  # longest string/sequence '*' may build
MAX_EXPONENT = 64


class RenderError(TactError):
    """A template failed to render; names the template and line, never the data."""

    def __init__(self, message: str, template: str | None = None, line: int | None = None):
        where = f"{template}:{line}" if template and line else (template or "template")
        super().__init__(f"{where}: {message}")
        self.template = template
        self.line = line


class RenderSecurityError(RenderError):
    """A template reached for something outside its context."""


class OutputTooLarge(RenderError):
    """A template produced (or tried to build) more than the cap allows."""


class TactSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus limits on ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

    def wrap_str_format(self, value: Any) -> None:
        """No ``str.format``/``format_map`` at all, not even the sandbox's safe wrapper."""
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Templates read data; they call nothing but filters. Methods are refused."""
        if callable(value):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise OutputTooLarge(f"exponent above {MAX_EXPONENT} refused")
            return left**right
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(count, int):
                if len(seq) * count > MAX_REPEAT:
                    raise OutputTooLarge(f"repetition above {MAX_REPEAT} characters refused")
        return left * right


def sandbox(search_path: list[Path]) -> TactSandbox:
    return TactSandbox(
        loader=FileSystemLoader([str(p) for p in search_path]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        keep_trailing_newline=True,
    )


def _template_frame(tb: Any, fallback: str | None) -> tuple[str | None, int | None]:
    """The innermost frame that belongs to a template file, as (name, line)."""
    name, line = fallback, None
    for frame in traceback.extract_tb(tb):
        if frame.filename.endswith(".j2") or frame.filename == "<template>":
            name, line = Path(frame.filename).name if name is None else name, frame.lineno
            if frame.filename.endswith(".j2"):
                name = frame.filename
    return name, line


def render_capped(template: Template, context: dict[str, Any], *, limit: int = MAX_OUTPUT) -> str:
    """Render with a cap on output; template errors become RenderError naming file and line.

    The context is shared as is (``shared=True``): a template sees exactly the names
    it is given, not even Jinja's default globals (``range``, ``cycler``, ``lipsum``…),
    and no dict is copied per render.
    """
    label = template.filename or template.name
    try:
        try:
            parts: list[str] = []
            size = 0
            for chunk in template.root_render_func(template.new_context(context, shared=True)):
                size += len(chunk)
                if size > limit:
                    raise OutputTooLarge(f"output above {limit} characters")
                parts.append(chunk)
            return "".join(parts)
        except Exception:  # rewrite the traceback so frames name template files and lines
            template.environment.handle_exception()
    except RenderError as exc:
        name, line = _template_frame(sys.exc_info()[2], label)
        raise type(exc)(str(exc).split(": ", 1)[-1], _short(name), line) from None
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
    except (TypeError, ValueError, ArithmeticError, AttributeError, MemoryError) as exc:
        name, line = _template_frame(sys.exc_info()[2], label)
        raise RenderError(f"{type(exc).__name__}: {exc}", _short(name), line) from None
    raise AssertionError("unreachable")  # handle_exception always raises


@lru_cache(maxsize=1024)
def _compiled(source: str, name: str, filename: str) -> CodeType:
    """Template source to code, once per process for a given text.

    Every ``sandbox()`` environment has the same options (and no template may pull
    in another), so the same source always compiles to the same code: a worker that
    builds a renderer for every campaign compiles each template once, not per campaign.
    """
    code: CodeType = _PROTOTYPE.compile(source, name, filename)
    return code


_PROTOTYPE = sandbox([])


def compile_template(env: TactSandbox, name: str, source: str | None = None) -> Template:
    """Load ``name``, or compile ``source`` (a pre-processed version of the file ``name``).

    Syntax errors name the file and line.
    """
    try:
        filename: str | None = name
        if source is None:
            if env.loader is None:
                raise RenderError("no template loader", name)
            source, filename, _ = env.loader.get_source(env, name)
        code = _compiled(source, name, filename or name)
        return env.template_class.from_code(env, code, env.make_globals(None), None)
    except TemplateSyntaxError as exc:
        raise RenderError(
            f"syntax error: {exc.message}", exc.filename or name, exc.lineno
        ) from None


def _short(path: str | None) -> str | None:
    """A template path relative to the templates directory, for messages."""
    if path is None:
        return None
    marker = "/templates/"
    return path.split(marker, 1)[1] if marker in path else path
