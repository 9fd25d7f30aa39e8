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

from sqlalchemy import func, select

from engine.models import SegmentAssignment
from engine.runtime import Runtime
from engine.segments.build import BuildOptions, BuildReport
from engine.segments.build import build as build_segments
from engine.segments.build import explain as explain_contact
from engine.segments.build import overview as segments_overview
from engine.segments.features import SHARE_PREFIX
from engine.segments.model import WORDS
from engine.segments.rules import load_rules
from engine.segments.store import latest_model

__all__ = [
    "BuildOptions",
    "BuildReport",
    "CentroidFeature",
    "ContactSegment",
    "FeatureValue",
    "ModelInfo",
    "SegmentDefinition",
    "SegmentSize",
    "SegmentsOverview",
    "StandardAudience",
    "build",
    "definitions",
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


# --- definitions: what each segment is (the console's segments page, the API) ---------------

assignments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]

#: How many features explain a learned segment.
TOP_FEATURES = 5


@dataclass(frozen=True)
class CentroidFeature(FeatureValue):
    """One feature that sets a learned segment apart: the members' mean (``value``) against
    everyone's (``population_mean``), how far apart in standard deviations (``z``, on the
    scale the clustering uses: log for counts and money), and the same in words
    (``label``). ``population_median`` and ``percentile`` are not known for a cluster."""

    population_mean: float | None = None
    z: float = 0.0
    label: str = ""


@dataclass(frozen=True)
class SegmentDefinition:
    """One segment of the latest build: a rule (its condition) or a learned cluster (the
    features that set it apart, strongest first), and how many contacts it holds now."""

    name: str
    kind: str  # "rule" or "learned"
    rule: str | None
    description: str
    size: int
    centroid: list[FeatureValue]

    def as_dict(self) -> dict[str, Json]:
        return {
            "name": self.name,
            "kind": self.kind,
            "rule": self.rule,
            "description": self.description,
            "size": self.size,
            "centroid": [asdict(f) for f in self.centroid],
        }


#: Features in words, where the name alone says it badly.
FEATURE_WORDS = {
    "days_since_last_order": "days since the last order",
    "orders": "orders",
    "orders_365": "orders in the last year",
    "spend_365": "spend in the last year (EUR)",
    "total_spend": "total spend (EUR)",
    "avg_order_value": "average order value (EUR)",
    "emails_sent": "emails sent",
    "tenure_days": "days as a customer",
}


def _feature_words(feature: str) -> str:
    if feature.startswith(SHARE_PREFIX):
        return f"share of spend on {feature[len(SHARE_PREFIX) :]}"
    return FEATURE_WORDS.get(feature, feature.replace("_", " "))


def _amount(feature: str, value: float | None) -> str:
    if value is None:
        return "none"
    if feature.startswith(SHARE_PREFIX) or feature.endswith("_rate"):
        return f"{value:.0%}"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def _centroid(cluster: Any, population: dict[str, float | None]) -> list[FeatureValue]:
    """The cluster's strongest features against the population, as numbers and words."""
    strongest = sorted(cluster.z.items(), key=lambda item: (-abs(item[1]), item[0]))
    out: list[FeatureValue] = []
    for feature, z in strongest[:TOP_FEATURES]:
        value = cluster.means.get(feature)
        everyone = population.get(feature)
        words = WORDS.get(feature)
        direction = "above" if z > 0 else "below"
        meaning = f" ({words[1] if z > 0 else words[2]})" if words else ""
        label = (
            f"{_feature_words(feature)}: {_amount(feature, value)} against "
            f"{_amount(feature, everyone)} for everyone, {abs(z):.1f} standard deviations "
            f"{direction}{meaning}"
        )
        out.append(
            CentroidFeature(
                feature=feature,
                value=None if value is None else float(value),
                population_median=None,
                percentile=None,
                population_mean=None if everyone is None else float(everyone),
                z=round(float(z), 3),
                label=label,
            )
        )
    return out


def definitions(rt: Runtime) -> list[SegmentDefinition]:
    """Every segment of the latest build, rules first (in file order), then the learned
    ones (largest first), each with its size now (as ``tact segments list`` counts it:
    one count per segment over the assignments' index). Before any build: the rule
    segments of templates/segments.toml, each of size 0 (no contact is in one yet)."""
    with rt.engine.connect() as conn:
        stored = latest_model(conn)
        sizes: dict[str | None, int] = {}
        if stored is not None:
            sizes = {
                segment: int(n)
                for segment, n in conn.execute(
                    select(assignments_t.c.segment, func.count()).group_by(assignments_t.c.segment)
                ).all()
            }
    if stored is None:
        rules = load_rules(rt.settings.templates_dir / "segments.toml")
        return [SegmentDefinition(r.name, "rule", r.rule, r.description, 0, []) for r in rules]
    found = [
        SegmentDefinition(
            name=str(r["name"]),
            kind="rule",
            rule=str(r["rule"]),
            description=str(r.get("description") or r["rule"]),
            size=sizes.get(str(r["name"]), 0),
            centroid=[],
        )
        for r in stored.summary.get("rules", [])
    ]
    population = stored.model.population
    for cluster in stored.model.clusters:
        if not cluster.name:
            continue  # folded: its members get the standard version
        found.append(
            SegmentDefinition(
                name=cluster.name,
                kind="learned",
                rule=None,
                description=cluster.description,
                size=sizes.get(cluster.name, 0),
                centroid=_centroid(cluster, population),
            )
        )
    return found
