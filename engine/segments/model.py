"""Learned segments: k-means over scaled behavioural features, stored as plain numbers.

How the features are prepared, and why:

* **Skewed counts and money are log-transformed** (``log1p``): order counts and
  spend are long-tailed (a few customers order 30 times, most 0–5). On the raw
  scale k-means spends its clusters on the tail; on the log scale "3 orders vs
  10" weighs like "1 vs 3", which is how a marketer reads it.
* **Recency is capped** at :data:`RECENCY_CAP_DAYS` and a contact without
  orders gets the cap: "never" sorts with "very long ago". Missing engagement
  rates (nothing sent in 12 months) get the population mean, so a brand-new
  contact is not mistaken for a disengaged one; a missing average order value is 0.
* **Then standardized** (z-scores with the population mean and standard
  deviation) so that no unit dominates, and the category shares are weighted by
  :data:`SHARE_WEIGHT` so that nine category columns do not outvote the eight
  behavioural ones (the same person spread over more categories must not look
  more different than one who stopped buying).

k is chosen in ``[k_min, k_max]`` by the silhouette score on a seeded sample
of contacts (silhouette is quadratic in the number of points; a few thousand
are plenty to compare k). KMeans uses a fixed ``n_init`` and
``random_state=seed``; clusters are then renumbered by size (largest first),
so a build is reproducible from the data and the seed.

Names and descriptions come from each cluster's members relative to the
population: the z-score of their mean per feature, the strongest aspect
(recency, frequency, money, engagement, tenure) turned into words, plus the
dominant categories when their share stands out. The slug of the words
(``recent-high-spend-outdoor``) is the segment name and the template file name
(``blocks/<block>/<segment>.html.j2``).

The model is plain parameters (JSON): feature names, transforms, imputed
values, weights, scaler mean and scale, centroids, names, descriptions. Never
pickle or joblib: loading a model must not be able to run code, and a JSON
model can be read, diffed and reviewed. Assignment is a numpy nearest-centroid
computation, so a loaded model labels contacts exactly like the one just fitted.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from engine.errors import ModelFormatError, SegmentError
from engine.segments.features import SHARE_PREFIX, BoolArray, FloatArray, IntArray, Profiles

FORMAT: Final = "tact-segments/1"
RECENCY_CAP_DAYS: Final = 1825.0
SHARE_WEIGHT: Final = 0.7
N_INIT: Final = 8
THREADS: Final = 1
#: Clustering inputs and their transforms; every ``share_<category>`` column follows.
CLUSTER_FEATURES: Final[tuple[tuple[str, str], ...]] = (
    ("days_since_last_order", "recency"),
    ("orders", "log1p"),
    ("orders_365", "log1p"),
    ("spend_365", "log1p"),
    ("avg_order_value", "log1p"),
    ("open_rate", "rate"),
    ("click_rate", "rate"),
    ("tenure_days", "log1p"),
)
TRANSFORMS: Final = frozenset({"recency", "log1p", "rate", "share"})

#: Words for a feature well above / below the population, and the aspect it speaks to.
WORDS: Final[dict[str, tuple[str, str, str]]] = {
    "days_since_last_order": ("recency", "lapsed", "recent"),
    "orders_365": ("frequency", "frequent", "infrequent"),
    "orders": ("frequency", "many orders", "few orders"),
    "spend_365": ("money", "high spend", "low spend"),
    "avg_order_value": ("money", "big baskets", "small baskets"),
    "open_rate": ("engagement", "engaged", "low engagement"),
    "click_rate": ("engagement", "clickers", "few clicks"),
    "tenure_days": ("tenure", "long-standing", "new"),
}
ASPECTS: Final = ("recency", "frequency", "money", "engagement", "tenure")
#: A feature speaks for its cluster when its z-score is at least this far from 0.
Z_WORD: Final = 0.5
MAX_WORDS: Final = 3
#: A category is named when the members' mean share is at least this and stands out by Z_CAT.
CAT_SHARE: Final = 0.3
Z_CAT: Final = 0.8
MAX_SLUG: Final = 64

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class Cluster:
    """One learned cluster; ``name`` is None when it was folded into the standard audience."""

    index: int
    name: str | None
    slug: str
    description: str
    size: int
    folded: bool
    #: Members' mean of each raw feature (None where undefined for all of them).
    means: dict[str, float | None]
    #: Members' mean z-score per described feature (log scale for counts and money).
    z: dict[str, float]


@dataclass(frozen=True)
class SegmentModel:
    """A fitted segmentation as plain parameters; see the module docstring."""

    feature_names: tuple[str, ...]
    transforms: tuple[str, ...]
    impute: tuple[float, ...]
    weights: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    centroids: tuple[tuple[float, ...], ...]
    clusters: tuple[Cluster, ...]
    seed: int
    silhouette: dict[int, float]
    created_at: datetime
    as_of: datetime
    n_profiled: int
    min_size: int
    population: dict[str, float | None] = field(default_factory=dict)
    version: int | None = None

    @property
    def k(self) -> int:
        return len(self.centroids)

    @property
    def chosen_silhouette(self) -> float | None:
        return self.silhouette.get(self.k)

    def segment_names(self) -> list[str | None]:
        """Segment of each cluster index (None: folded into the standard audience)."""
        return [c.name for c in self.clusters]

    # -- numbers -------------------------------------------------------------------------

    def raw(self, profiles: Profiles) -> FloatArray:
        """The model's input columns from ``profiles`` (a share of an unseen category is 0)."""
        if not len(profiles):
            return np.zeros((0, len(self.feature_names)))
        columns = [profiles.column(name) for name in self.feature_names]
        return np.asarray(np.column_stack(columns), dtype=np.float64)

    def transform(self, profiles: Profiles) -> FloatArray:
        """Weighted z-scores: the space the centroids live in."""
        prepared = _prepare(self.raw(profiles), self.transforms, np.asarray(self.impute))
        scaled = (prepared - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(scaled * np.asarray(self.weights), dtype=np.float64)

    def distances(self, profiles: Profiles) -> FloatArray:
        """Euclidean distance of every contact to every centroid, ``(n, k)``."""
        return _distances(self.transform(profiles), np.asarray(self.centroids))

    def assign(self, profiles: Profiles) -> tuple[IntArray, FloatArray]:
        """Nearest cluster of each contact and the distance to it."""
        d = self.distances(profiles)
        if not len(d):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        labels = np.argmin(d, axis=1).astype(np.int64)
        return labels, d[np.arange(len(d)), labels]

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "as_of": self.as_of.isoformat(),
            "seed": self.seed,
            "k": self.k,
            "silhouette": {str(k): v for k, v in sorted(self.silhouette.items())},
            "n_profiled": self.n_profiled,
            "min_size": self.min_size,
            "feature_names": list(self.feature_names),
            "transforms": list(self.transforms),
            "impute": list(self.impute),
            "weights": list(self.weights),
            "scaler": {"mean": list(self.mean), "scale": list(self.scale)},
            "centroids": [list(c) for c in self.centroids],
            "population": dict(self.population),
            "clusters": [
                {
                    "index": c.index,
                    "name": c.name,
                    "slug": c.slug,
                    "description": c.description,
                    "size": c.size,
                    "folded": c.folded,
                    "means": c.means,
                    "z": c.z,
                }
                for c in self.clusters
            ],
        }

    @classmethod
    def from_json(cls, doc: Any) -> SegmentModel:
        """Load and check a model document; ModelFormatError if anything does not fit."""
        try:
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ModelFormatError(f"not a {FORMAT} document")
            names = tuple(str(n) for n in doc["feature_names"])
            f = len(names)
            transforms = tuple(str(t) for t in doc["transforms"])
            if set(transforms) - TRANSFORMS:
                raise ModelFormatError(f"unknown transform in {sorted(set(transforms))}")
            impute = _floats(doc["impute"], f, "impute")
            weights = _floats(doc["weights"], f, "weights")
            mean = _floats(doc["scaler"]["mean"], f, "scaler.mean")
            scale = _floats(doc["scaler"]["scale"], f, "scaler.scale")
            if any(s <= 0 for s in scale):
                raise ModelFormatError("scaler.scale must be positive")
            centroids = tuple(_floats(c, f, "centroid") for c in doc["centroids"])
            clusters = tuple(
                Cluster(
                    index=int(c["index"]),
                    name=None if c["name"] is None else str(c["name"]),
                    slug=str(c["slug"]),
                    description=str(c["description"]),
                    size=int(c["size"]),
                    folded=bool(c["folded"]),
                    means={str(k): None if v is None else float(v) for k, v in c["means"].items()},
                    z={str(k): float(v) for k, v in c["z"].items()},
                )
                for c in doc["clusters"]
            )
            if len(transforms) != f or not centroids or len(clusters) != len(centroids):
                raise ModelFormatError("feature, transform, centroid and cluster counts differ")
            if [c.index for c in clusters] != list(range(len(clusters))):
                raise ModelFormatError("clusters must be listed by index")
            version = doc.get("version")
            return cls(
                feature_names=names,
                transforms=transforms,
                impute=impute,
                weights=weights,
                mean=mean,
                scale=scale,
                centroids=centroids,
                clusters=clusters,
                seed=int(doc["seed"]),
                silhouette={int(k): float(v) for k, v in doc["silhouette"].items()},
                created_at=_aware(doc["created_at"]),
                as_of=_aware(doc["as_of"]),
                n_profiled=int(doc["n_profiled"]),
                min_size=int(doc["min_size"]),
                population={
                    str(k): None if v is None else float(v)
                    for k, v in doc.get("population", {}).items()
                },
                version=None if version is None else int(version),
            )
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"invalid segment model: {exc!r}") from None


def _floats(values: Any, length: int, what: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) != length or not all(math.isfinite(v) for v in out):
        raise ModelFormatError(f"{what}: expected {length} finite numbers")
    return out


def _aware(text: Any) -> datetime:
    value = datetime.fromisoformat(str(text))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _prepare(raw: FloatArray, transforms: Iterable[str], impute: FloatArray) -> FloatArray:
    """Impute, cap and log-transform the raw columns (see the module docstring)."""
    out = np.where(np.isnan(raw), impute, raw)
    for j, kind in enumerate(transforms):
        if kind == "recency":
            out[:, j] = np.log1p(np.clip(out[:, j], 0.0, RECENCY_CAP_DAYS))
        elif kind == "log1p":
            out[:, j] = np.log1p(np.maximum(out[:, j], 0.0))
        elif kind in ("rate", "share"):
            out[:, j] = np.clip(out[:, j], 0.0, 1.0)
    return out


def _distances(x: FloatArray, centroids: FloatArray) -> FloatArray:
    diff = x[:, None, :] - centroids[None, :, :]
    return np.asarray(np.sqrt(np.einsum("nkf,nkf->nk", diff, diff)), dtype=np.float64)


# -- fitting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    model: SegmentModel
    #: Cluster index of each profiled contact (row order of the profiles).
    labels: IntArray
    distances: FloatArray


def fit(
    profiles: Profiles,
    *,
    k_min: int = 4,
    k_max: int = 10,
    seed: int = 42,
    sample: int = 3000,
    min_size: int | None = None,
    min_share: float = 0.02,
    reserved: Iterable[str] = (),
    progress: ProgressFn | None = None,
) -> FitResult:
    """Cluster ``profiles``; pick k by silhouette; name, describe and fold small clusters.

    A cluster with fewer members than ``min_size`` (default: ``min_share`` of the
    profiled contacts) is folded into the standard audience: too small to be worth a
    template of its own. ``reserved`` names (rule segments) are not reused as slugs.
    """
    # Imported here: scikit-learn takes a second or two to import, and only a build needs it.
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    n = len(profiles)
    if k_min < 2 or k_max < k_min:
        raise SegmentError("need 2 <= k-min <= k-max")
    if sample < 2:
        raise SegmentError("the silhouette sample needs at least 2 contacts")
    if n <= k_min:
        raise SegmentError(
            f"{n} profiled contacts are too few to find {k_min} segments; import more first"
        )
    k_max = min(k_max, n - 1)
    names = tuple(name for name, _ in CLUSTER_FEATURES) + tuple(
        name for name in profiles.feature_names if name.startswith(SHARE_PREFIX)
    )
    transforms = tuple(kind for _, kind in CLUSTER_FEATURES) + ("share",) * (
        len(names) - len(CLUSTER_FEATURES)
    )
    raw = np.column_stack([profiles.column(name) for name in names])
    impute = np.zeros(len(names))
    for j, kind in enumerate(transforms):
        if kind == "recency":
            impute[j] = RECENCY_CAP_DAYS
        elif kind == "rate":
            col = raw[:, j]
            impute[j] = float(np.nanmean(col)) if np.any(~np.isnan(col)) else 0.0
    prepared = _prepare(raw, transforms, impute)
    mean = prepared.mean(axis=0)
    scale = prepared.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    weights = np.array([SHARE_WEIGHT if t == "share" else 1.0 for t in transforms])
    x = (prepared - mean) / scale * weights

    # KMeans' seeding and the silhouette sample depend on row order, and rows come sorted
    # by contact id (random UUIDs). Fitting on rows sorted by their values instead makes
    # the result a function of the data and the seed alone: a re-import of the same
    # customers under new ids gives the same segments.
    x_fit = x[np.lexsort(x.T[::-1])]
    scores: dict[int, float] = {}
    fitted: dict[int, FloatArray] = {}
    size = min(sample, n)
    # One thread: on small shared machines OpenMP's spinning threads made KMeans 30-50x
    # slower than a single one, and at these sizes one thread takes well under a second.
    with threadpool_limits(limits=THREADS), warnings.catch_warnings():
        # Fewer distinct points than k: KMeans warns and returns duplicate centres; the
        # silhouette then ranks that k low or it is skipped below. Not the user's concern.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(k_min, k_max + 1):
            if progress:
                progress(f"k={k}: clustering {n:,} contacts")
            km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(x_fit)
            labels = np.asarray(km.labels_)
            if len(np.unique(labels)) < 2:
                continue
            try:
                score = silhouette_score(x_fit, labels, sample_size=size, random_state=seed)
            except ValueError:  # the sample holds a single cluster
                continue
            scores[k] = float(score)
            fitted[k] = np.asarray(km.cluster_centers_, dtype=np.float64)
    if not scores:
        raise SegmentError("the contacts are all alike: no clustering separates them")
    best = max(scores, key=lambda k: (scores[k], -k))
    centroids = fitted[best]

    # Renumber by size (largest first; ties by centroid), with nearest-centroid labels.
    d = _distances(x, centroids)
    labels = np.argmin(d, axis=1)
    sizes = np.bincount(labels, minlength=best)
    order = sorted(range(best), key=lambda c: (-int(sizes[c]), tuple(centroids[c])))
    centroids = centroids[order]
    d = d[:, order]
    labels = np.argmin(d, axis=1).astype(np.int64)
    sizes = np.bincount(labels, minlength=best)
    threshold = min_size if min_size is not None else math.ceil(min_share * n)

    described = _describable(profiles)
    population = _nanmeans(profiles.features, profiles.feature_names)
    shares = [name for name in names if name.startswith(SHARE_PREFIX)]
    taken = set(reserved)
    clusters: list[Cluster] = []
    for c in range(best):
        members = labels == c
        z = _cluster_z(described, members)
        means = _nanmeans(profiles.features[members], profiles.feature_names)
        description, slug = describe(z, means, population, shares)
        unique = _unique_slug(slug, taken)
        folded = int(sizes[c]) < threshold
        if not folded:
            taken.add(unique)
        clusters.append(
            Cluster(
                index=c,
                name=None if folded else unique,
                slug=unique,
                description=description,
                size=int(sizes[c]),
                folded=folded,
                means=means,
                z=z,
            )
        )
    model = SegmentModel(
        feature_names=names,
        transforms=transforms,
        impute=tuple(float(v) for v in impute),
        weights=tuple(float(v) for v in weights),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        centroids=tuple(tuple(float(v) for v in row) for row in centroids),
        clusters=tuple(clusters),
        seed=seed,
        silhouette=scores,
        created_at=datetime.now(UTC),
        as_of=profiles.as_of,
        n_profiled=n,
        min_size=threshold,
        population=population,
    )
    # Labels as a loaded model computes them (same floats, same code path).
    labels, dist = model.assign(profiles)
    return FitResult(model=model, labels=labels, distances=dist)


def _describable(profiles: Profiles) -> dict[str, FloatArray]:
    """Per-feature z-scores for descriptions: log scale for counts and money, NaN kept.

    Unlike the clustering input nothing is imputed, so "lapsed" compares the members'
    last order with that of everyone who ordered, not with the never-ordered too.
    """
    out: dict[str, FloatArray] = {}
    for name in profiles.feature_names:
        if name not in WORDS and not name.startswith(SHARE_PREFIX):
            continue
        col = profiles.column(name)
        if name not in ("open_rate", "click_rate") and not name.startswith(SHARE_PREFIX):
            col = np.log1p(np.maximum(col, 0.0))
        ok = ~np.isnan(col)
        if not ok.any():
            continue
        std = float(col[ok].std())
        out[name] = (col - float(col[ok].mean())) / (std if std > 1e-12 else 1.0)
    return out


def _cluster_z(described: dict[str, FloatArray], members: BoolArray) -> dict[str, float]:
    """Members' mean z per feature, where at least half of them have a value."""
    z: dict[str, float] = {}
    for name, col in described.items():
        values = col[members]
        ok = ~np.isnan(values)
        if ok.sum() * 2 >= len(values) and ok.any():
            z[name] = float(values[ok].mean())
    return z


def _nanmeans(matrix: FloatArray, names: tuple[str, ...]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for j, name in enumerate(names):
        col = matrix[:, j]
        ok = ~np.isnan(col)
        out[name] = float(col[ok].mean()) if ok.any() else None
    return out


def describe(
    z: dict[str, float],
    means: dict[str, float | None],
    population: dict[str, float | None],
    share_names: list[str],
) -> tuple[str, str]:
    """Readable description and slug of a cluster from its z-scores and member means."""
    never_ordered = (means.get("orders") or 0.0) < 0.5
    best: dict[str, tuple[float, str]] = {}
    for feature, (aspect, high, low) in WORDS.items():
        if feature not in z:
            continue
        if never_ordered and aspect in ("recency", "frequency", "money"):
            continue
        value = z[feature]
        if abs(value) >= Z_WORD and abs(value) > abs(best.get(aspect, (0.0, ""))[0]):
            best[aspect] = (value, high if value > 0 else low)
    strongest = sorted(best, key=lambda a: -abs(best[a][0]))[: MAX_WORDS - int(never_ordered)]
    words = (["no orders"] if never_ordered else []) + [
        best[a][1] for a in ASPECTS if a in strongest
    ]
    standing_out = sorted(
        (
            (z[name], name[len(SHARE_PREFIX) :])
            for name in share_names
            if z.get(name, 0.0) >= Z_CAT
            and (means.get(name) or 0.0) >= CAT_SHARE
            and (means.get(name) or 0.0) > (population.get(name) or 0.0)
        ),
        reverse=True,
    )[:2]
    # Alphabetical, so the slug (a template file name) does not flip with small shifts.
    categories = sorted(name for _, name in standing_out)
    if categories:
        words.append(" & ".join(categories))
    if not words:
        words = ["average"]
    description = ", ".join(words)
    return description, slugify(description)


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug or "segment")[:MAX_SLUG].rstrip("-")


def _unique_slug(slug: str, taken: set[str]) -> str:
    if slug not in taken:
        return slug
    n = 2
    while f"{slug[: MAX_SLUG - 4]}-{n}" in taken:
        n += 1
    return f"{slug[: MAX_SLUG - 4]}-{n}"


def without_version(model: SegmentModel) -> SegmentModel:
    return replace(model, version=None)
