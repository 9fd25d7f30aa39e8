"""Names that become path components: a template, a block, a variant, a language tag.

The console and the API take them from a browser or a script and join them into
paths under templates/. Only plain names pass: lowercase letters, digits, ``-``
and ``_`` (a language tag: letters, digits and ``-``, as BCP 47 writes it). So no
``..``, no ``/``, no absolute path, no NUL, and no dot that could make
``standard.html`` into another file's name, ever reaches ``Path``.
"""

from __future__ import annotations

import re

from engine.errors import TemplateError

_PLAIN = re.compile(r"[a-z0-9_-]{1,64}")
_TAG = re.compile(r"[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8}){0,4}")


def plain_name(value: str, what: str) -> str:
    """``value`` if it is a plain name (``[a-z0-9_-]+``, at most 64); else TemplateError."""
    if not isinstance(value, str) or not _PLAIN.fullmatch(value) or set(value) <= {"-", "_"}:
        raise TemplateError(
            f"{what} name {_shown(value)} is not a plain name: use lowercase letters, digits, "
            "'-' and '_' only"
        )
    return value


def language_tag(value: str, what: str = "language") -> str:
    """``value`` if it is shaped like a language tag (``zh-Hans``, ``en``); else TemplateError."""
    if not isinstance(value, str) or not _TAG.fullmatch(value):
        raise TemplateError(f"{what} {_shown(value)} is not a language tag (such as en or zh-Hans)")
    return value


def _shown(value: object) -> str:
    """The refused value, short and printable (it came from a request)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
