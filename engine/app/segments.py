"""Segments as an operator handles them: build, list with sizes, explain one contact.

The work is in :mod:`engine.segments` (profiles, rules, clustering, the stored
build); these use-cases open the transaction and return frozen dataclasses that
the CLI prints as tables or ``--json`` (``as_dict``) and the REST API of issue
13 will serialize alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.runtime import Runtime
from engine.segments.build import BuildOptions, BuildReport
from engine.segments.build import build as build_segments
from engine.segments.build import explain as explain_contact
from engine.segments.build import overview as segments_overview
from engine.segments.rules import load_rules

__all__ = [
    "BuildOptions",
    "BuildReport",
    "ContactSegment",
    "ModelInfo",
    "SegmentSize",
    "SegmentsOverview",
    "StandardAudience",
    "build",
    "explain",
    "overview",
]

#: A value of a JSON document: what ``json.loads`` returns.
Json = str | int | float | bool | None | list["Json"] | dict[str, "Json"]


def build(
    rt: Runtime,
    options: BuildOptions,
    *,
    rules_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
    export: Path | None = None,
) -> BuildReport:
    """Profile every contact, cluster, apply the rule segments, store the build.

    The rule file is ``templates/segments.toml`` unless ``rules_path`` names
    another; it is read (and refused if it does not parse) before any work.
    Contacts who objected to profiling are left out and get the standard version.
    """
    rules = load_rules(rules_path or rt.settings.templates_dir / "segments.toml")
    return build_segments(rt.engine, rules, options, progress=progress, export=export)


@dataclass(frozen=True)
class ModelInfo:
    """The stored build that assignments come from."""

    version: int
    created_at: str
    as_of: str
    k: int
    seed: int
    silhouette: float | None
    min_size: int | None
    profiled: int | None


@dataclass(frozen=True)
class SegmentSize:
    """One segment of the build: a rule segment, a learned cluster, or a folded cluster.

    A rule segment has ``matched`` and ``rule``; a cluster has ``cluster``,
    ``cluster_size`` and ``slug``; a folded cluster (too small) has no name, and its
    contacts get the standard version.
    """

    name: str | None
    source: str
    size: int
    description: str
    matched: int | None = None
    rule: str | None = None
    cluster: int | None = None
    cluster_size: int | None = None
    slug: str | None = None

    def as_dict(self) -> dict[str, Json]:
        doc: dict[str, Json] = {"name": self.name, "source": self.source, "size": self.size}
        if self.rule is not None:
            doc.update(matched=self.matched, description=self.description, rule=self.rule)
        else:
            doc.update(
                cluster=self.cluster,
                cluster_size=self.cluster_size,
                description=self.description,
                slug=self.slug,
            )
        return doc


@dataclass(frozen=True)
class StandardAudience:
    """Everyone without a segment, who gets the standard version, and why."""

    size: int
    folded: int
    opted_out: int
    unassigned: int


@dataclass(frozen=True)
class SegmentsOverview:
    """What ``tact segments list`` shows; ``model`` is None before the first build."""

    model: ModelInfo | None
    segments: tuple[SegmentSize, ...]
    standard: StandardAudience

    def as_dict(self) -> dict[str, Json]:
        model = self.model
        return {
            "model": None if model is None else asdict(model),
            "segments": [s.as_dict() for s in self.segments],
            "standard": {
                "size": self.standard.size,
                "opted_out": self.standard.opted_out,
                "folded": self.standard.folded,
                "unassigned": self.standard.unassigned,
            },
        }


def overview(rt: Runtime) -> SegmentsOverview:
    """Every segment of the latest build with its size, and the standard audience."""
    with rt.engine.connect() as conn:
        view = segments_overview(conn)
    model = view["model"]
    std = view["standard"]
    return SegmentsOverview(
        model=None if model is None else ModelInfo(**model),
        segments=tuple(
            SegmentSize(
                name=s["name"],
                source=str(s["source"]),
                size=int(s["size"]),
                description=s["description"],
                matched=s.get("matched"),
                rule=s.get("rule"),
                cluster=s.get("cluster"),
                cluster_size=s.get("cluster_size"),
                slug=s.get("slug"),
            )
            for s in view["segments"]
        ),
        standard=StandardAudience(
            size=std["size"],
            folded=std["folded"],
            opted_out=std["opted_out"],
            unassigned=std["unassigned"],
        ),
    )


@dataclass(frozen=True)
class FeatureValue:
    """One behavioural feature of the contact against the population."""

    feature: str
    value: float | None
    population_median: float | None
    percentile: float | None


@dataclass(frozen=True)
class ClusterDistance:
    cluster: int
    segment: str | None
    description: str
    folded: bool
    distance: float
    nearest: bool


@dataclass(frozen=True)
class RuleMatch:
    name: str
    rule: str
    matches: bool


@dataclass(frozen=True)
class ContactSegment:
    """Why a contact is in its segment (or gets the standard version).

    The sections after ``reason`` are present only as far as the explanation went:
    none for a contact who opted out of personalization, no features before a build
    or for an erased contact.
    """

    contact_id: str
    segment: str | None
    opted_out: bool
    reason: str
    source: str | None = None
    model_version: int | None = None
    assigned_at: str | None = None
    as_of: str | None = None
    features: tuple[FeatureValue, ...] | None = None
    top_categories: tuple[str, ...] | None = None
    clusters: tuple[ClusterDistance, ...] | None = None
    rules: tuple[RuleMatch, ...] | None = None
    recomputed: dict[str, Json] | None = None
    #: The keys the explanation carried, in order: ``as_dict`` writes exactly these.
    shown: tuple[str, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Json]:
        doc: dict[str, Json] = {}
        for key in self.shown:
            value: Any = getattr(self, key)
            if isinstance(value, tuple):
                value = [v if isinstance(v, str) else asdict(v) for v in value]
            doc[key] = value
        return doc


def explain(rt: Runtime, address: str) -> ContactSegment:
    """Explain the segment of the contact with this address (NotFound if none is held)."""
    vault = rt.vault
    with rt.engine.connect() as conn:
        info = explain_contact(conn, vault.find(conn, address).id)
    return ContactSegment(
        contact_id=info["contact_id"],
        segment=info["segment"],
        opted_out=info["opted_out"],
        reason=info["reason"],
        source=info.get("source"),
        model_version=info.get("model_version"),
        assigned_at=info.get("assigned_at"),
        as_of=info.get("as_of"),
        features=_maybe(info, "features", lambda f: FeatureValue(**f)),
        top_categories=tuple(info["top_categories"]) if "top_categories" in info else None,
        clusters=_maybe(info, "clusters", lambda c: ClusterDistance(**c)),
        rules=_maybe(info, "rules", lambda r: RuleMatch(**r)),
        recomputed=info.get("recomputed"),
        shown=tuple(info),
    )


_T = TypeVar("_T")


def _maybe(
    info: dict[str, Any], key: str, make: Callable[[dict[str, Any]], _T]
) -> tuple[_T, ...] | None:
    return tuple(make(item) for item in info[key]) if key in info else None
