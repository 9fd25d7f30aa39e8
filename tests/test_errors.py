"""The exception tree: drawn once in engine/errors.py, and every class defined there.

Two checks. The drawing in the docstring and the classes agree (same names, each
drawn under its real parent), so the picture a reader trusts cannot drift. And no
module of Tact defines an exception class of its own: importing every module and
asking each exception class where it was defined finds engine.errors only.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
import re

import pytest

import engine
import engine.errors as errors
import workers
from engine.config import get_settings

_NODE = re.compile(r"^(?P<lead>[ │]*(?:[├└]── )?)(?P<name>[A-Z]\w+)\b")


def drawn_tree() -> dict[str, str | None]:
    """Each class name in the docstring drawing, with the name drawn as its parent."""
    assert errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name)
    for line in errors.__doc__.splitlines():
        if not line.startswith("    ") or ("──" not in line and not re.match(r"^    [A-Z]", line)):
            continue
        match = _NODE.match(line[4:])
        if match is None:
            continue
        column = len(match.group("lead"))
        while stack and stack[-1][0] >= column:
            stack.pop()
        name = match.group("name")
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def defined_classes() -> dict[str, type[BaseException]]:
    return {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == errors.__name__
    }


def test_the_drawing_names_every_class_and_nothing_else() -> None:
    drawn = {name for name in drawn_tree() if not hasattr(builtins, name)}
    assert drawn == set(defined_classes())


def test_every_class_is_drawn_under_its_parent() -> None:
    drawn = drawn_tree()
    for name, cls in defined_classes().items():
        parent = drawn[name]
        base = cls.__mro__[1]
        if parent is None:
            assert base is Exception, f"{name} is drawn as a root but derives from {base}"
        else:
            assert base.__name__ == parent, f"{name} is drawn under {parent}, derives {base}"


def test_no_module_defines_an_exception_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # workers.tasks reads the Celery configuration when it registers its tasks; an
    # unreachable broker URL is enough (nothing connects).
    monkeypatch.setenv("TACT_BROKER_URL", "redis://127.0.0.1:9/0")
    get_settings.cache_clear()
    stray: list[str] = []
    for package in (engine, workers):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" in info.name or info.name == errors.__name__:
                continue  # Alembic scripts run inside Alembic, and define none
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not name.startswith("_")  # a private signal, raised and caught there
                ):
                    stray.append(f"{module.__name__}.{name}")
    get_settings.cache_clear()
    assert stray == []


_KEBAB = re.compile(r"^[a-z]+(?:-[a-z]+)*$")


def test_every_error_names_its_own_stable_code() -> None:
    """``--json`` prints ``error.code``: each class sets one in its own body (so a subclass
    never passes for its parent), kebab-case, and no two classes share one."""
    codes: dict[str, str] = {}
    for name, cls in defined_classes().items():
        if not issubclass(cls, errors.TactError | errors.ConfigurationError):
            continue  # internal signals never reach a face
        assert "code" in vars(cls), f"{name} sets no code of its own"
        code = vars(cls)["code"]
        assert _KEBAB.match(code), f"{name}.code {code!r} is not kebab-case"
        assert code not in codes, f"{name} and {codes[code]} share the code {code!r}"
        codes[code] = name
    assert codes["lint-failed"] == "LintFailed"
    assert codes["campaign-not-found"] == "CampaignNotFound"


def test_a_hint_is_optional_and_kept_apart_from_the_message() -> None:
    plain = errors.CampaignNotFound("no campaign 'x'")
    assert (str(plain), plain.hint) == ("no campaign 'x'", None)
    hinted = errors.IllegalTransition("campaign 'x' is sent", hint="clone it")
    assert (str(hinted), hinted.hint, hinted.code) == (
        "campaign 'x' is sent",
        "clone it",
        "illegal-transition",
    )
    failed = errors.LintFailed("refused", [("error", "campaign", "no topic")])
    assert failed.code == "lint-failed" and failed.findings == (("error", "campaign", "no topic"),)
