"""Subscription topics, defined in ``templates/topics.toml`` (``tact topics list``)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.errors import (
    TactError,
    UnknownTopic,
)
from engine.models import Cadence

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: A reserved scope in the ledger: the objection to profiling (GDPR Art. 21).
PERSONALIZATION = "personalization"
#: A reserved scope in the ledger: the permission to measure opens and clicks.
TRACKING = "tracking"
#: Scopes of the ledger that are not topics: no mail is sent "for" them, unsubscribing
#: from everything leaves them as they are, and they are never a topic's name.
RESERVED_SCOPES = (PERSONALIZATION, TRACKING)


@dataclass(frozen=True)
class Topic:
    name: str
    title: str
    purpose: str
    cadence: Cadence
    double_opt_in: bool
    consent_text: str
    titles: dict[str, str]
    purposes: dict[str, str]
    consent_texts: dict[str, str]
    #: Optional per-topic cap (``max_per_window`` sends per ``window_hours``, rolling).
    max_per_window: int | None = None
    window_hours: int | None = None

    def title_in(self, lang: str) -> str:
        return self.titles.get(lang, self.title)

    def purpose_in(self, lang: str) -> str:
        return self.purposes.get(lang, self.purpose)

    def consent_text_in(self, lang: str) -> str:
        """The wording shown in ``lang``; the ledger records the hash of exactly this text."""
        return self.consent_texts.get(lang, self.consent_text)


@dataclass(frozen=True)
class Topics:
    by_name: dict[str, Topic]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def get(self, name: str) -> Topic:
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownTopic(
                f"unknown topic {name!r}; known: {', '.join(sorted(self.by_name))}"
            ) from None

    @property
    def names(self) -> list[str]:
        return list(self.by_name)


def load_topics(path: Path) -> Topics:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise TactError(f"topics file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise TactError(f"topics file {path}: {exc}") from None
    topics: dict[str, Topic] = {}
    for name, spec in data.items():
        if not _NAME.match(name) or name in RESERVED_SCOPES:
            raise TactError(f"topics file {path}: invalid or reserved topic name {name!r}")
        try:
            cadence = Cadence(spec.get("cadence", Cadence.AS_IT_HAPPENS))
        except ValueError:
            raise TactError(f"topics file {path}: topic {name}: unknown cadence") from None
        titles = {k.removeprefix("title_"): v for k, v in spec.items() if k.startswith("title_")}
        purposes = {
            k.removeprefix("purpose_"): v for k, v in spec.items() if k.startswith("purpose_")
        }
        texts = {
            k.removeprefix("consent_text_"): v
            for k, v in spec.items()
            if k.startswith("consent_text_")
        }
        max_per_window = spec.get("max_per_window")
        window_hours = spec.get("window_hours", 168 if max_per_window is not None else None)
        for key, value in (("max_per_window", max_per_window), ("window_hours", window_hours)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise TactError(f"topics file {path}: topic {name}: {key} must be >= 1")
        topics[name] = Topic(
            name=name,
            title=spec.get("title", name),
            purpose=spec.get("purpose", ""),
            cadence=cadence,
            double_opt_in=bool(spec.get("double_opt_in", False)),
            consent_text=spec.get("consent_text", ""),
            titles=titles,
            purposes=purposes,
            consent_texts=texts,
            max_per_window=max_per_window,
            window_hours=window_hours,
        )
    return Topics(topics)


@lru_cache(maxsize=8)
def cached_topics(path: Path) -> Topics:
    return load_topics(path)
