"""Build, list and explain segments: the functions behind ``tact segments``.

Precedence, one segment per contact (the renderer needs exactly one, or None):

1. the first rule segment of ``templates/segments.toml`` that matches, in file
   order: rules are what the marketer asked for by name, so they win;
2. otherwise the contact's learned cluster, unless that cluster was folded
   (smaller than the minimum size): then the standard audience (None);
3. contacts who objected to profiling have no profile and no row at all, and
   ``segment_for_contacts`` answers None for them whatever was stored.

The clustering itself is fitted on every profiled contact, rule matches
included: the learned segments describe the whole base and do not shift when
a rule is added; rules only take precedence at assignment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from sqlalchemy import Connection, Engine, func, select

from engine.consent.service import personalization_opt_outs, personalization_opted_out
from engine.db import writing
from engine.errors import SegmentError
from engine.models import ContactStatus
from engine.segments.features import Profiles, compute_profiles
from engine.segments.model import SegmentModel, fit
from engine.segments.rules import RESERVED_NAMES, RuleSegment, evaluate, parse_rule
from engine.segments.store import (
    Assignment,
    Source,
    assignment_of,
    latest_model,
    replace_assignments,
    save_model,
    segment_sizes,
)
from engine.vault.vault import contacts

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class BuildOptions:
    k_min: int = 4
    k_max: int = 10
    seed: int = 42
    sample: int = 3000
    min_size: int | None = None
    min_share: float = 0.02
    as_of: datetime | None = None


@dataclass
class BuildReport:
    version: int
    model: SegmentModel
    profiled: int
    opted_out: int
    #: Per rule segment, in file order: (name, matched, assigned after precedence).
    rules: list[tuple[str, int, int]] = field(default_factory=list)
    #: Learned segment name -> contacts assigned to it (after rules took theirs).
    learned: dict[str, int] = field(default_factory=dict)
    standard: int = 0
    seconds: float = 0.0


def assign(
    profiles: Profiles, model: SegmentModel, rules: list[RuleSegment]
) -> tuple[list[Assignment], dict[str, int]]:
    """One segment per profiled contact: first matching rule, else the learned cluster.

    Returns the assignments and, per rule, how many contacts it matched.
    """
    labels, distances = model.assign(profiles)
    names = [c.name for c in model.clusters]
    segment = np.array([names[label] for label in labels], dtype=object)
    source = np.array(
        [Source.LEARNED if names[label] else Source.STANDARD for label in labels], dtype=object
    )
    taken = np.zeros(len(profiles), dtype=np.bool_)
    matched: dict[str, int] = {}
    for rule in rules:
        hit = evaluate(rule.node, profiles)
        matched[rule.name] = int(hit.sum())
        mine = hit & ~taken
        segment[mine] = rule.name
        source[mine] = Source.RULE
        taken |= mine
    rows = [
        Assignment(
            contact_id=cid,
            segment=seg,
            source=str(src),
            cluster=int(label),
            distance=float(dist),
        )
        for cid, seg, src, label, dist in zip(
            profiles.contact_ids, segment, source, labels, distances, strict=True
        )
    ]
    return rows, matched


def build(
    engine: Engine,
    rules: list[RuleSegment],
    options: BuildOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    export: Path | None = None,
) -> BuildReport:
    """Profile every contact, cluster, apply the rules and replace the assignments."""
    options = options or BuildOptions()
    started = time.perf_counter()
    if progress:
        progress("computing profiles")
    with engine.connect() as conn:
        profiles = compute_profiles(conn, as_of=options.as_of)
    reserved = {r.name for r in rules} | set(RESERVED_NAMES)
    result = fit(
        profiles,
        k_min=options.k_min,
        k_max=options.k_max,
        seed=options.seed,
        sample=options.sample,
        min_size=options.min_size,
        min_share=options.min_share,
        reserved=reserved,
        progress=progress,
    )
    model = result.model
    rows, matched = assign(profiles, model, rules)
    if progress:
        progress("storing the model and assignments")
    with writing(engine) as conn:
        # Whoever objected (or was erased) while we computed gets no row.
        gone = personalization_opt_outs(conn) | _erased(conn, [a.contact_id for a in rows])
        rows = [a for a in rows if a.contact_id not in gone]
        summary = _summary(rules, matched, rows)
        version = save_model(conn, model, summary)
        replace_assignments(conn, version, rows)
    stored = SegmentModel.from_json({**model.to_json(), "version": version})
    if export is not None:
        export_model(stored, export)
    report = BuildReport(
        version=version,
        model=stored,
        profiled=len(rows),
        opted_out=profiles.opted_out,
        rules=[(r.name, matched[r.name], summary["assigned"].get(r.name, 0)) for r in rules],
        learned={c.name: summary["assigned"].get(c.name, 0) for c in stored.clusters if c.name},
        standard=summary["standard"],
        seconds=time.perf_counter() - started,
    )
    return report


def _erased(conn: Connection, ids: list[UUID]) -> set[UUID]:
    return set(
        conn.execute(select(contacts.c.id).where(contacts.c.status == ContactStatus.ERASED))
        .scalars()
        .all()
    ) & set(ids)


def _summary(
    rules: list[RuleSegment], matched: dict[str, int], rows: list[Assignment]
) -> dict[str, Any]:
    assigned: dict[str, int] = {}
    standard = 0
    for a in rows:
        if a.segment is None:
            standard += 1
        else:
            assigned[a.segment] = assigned.get(a.segment, 0) + 1
    return {
        "rules": [
            {
                "name": r.name,
                "description": r.description,
                "rule": r.rule,
                "matched": matched[r.name],
            }
            for r in rules
        ],
        "assigned": assigned,
        "standard": standard,
        "profiled": len(rows),
    }


def export_model(model: SegmentModel, path: Path) -> None:
    """Write the model as JSON (plain numbers and names; safe to read, diff and review)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_json(), indent=2, ensure_ascii=False) + "\n", "utf-8")


def load_exported(path: Path) -> SegmentModel:
    return SegmentModel.from_json(json.loads(path.read_text(encoding="utf-8")))


# -- list ----------------------------------------------------------------------------------


def overview(conn: Connection) -> dict[str, Any]:
    """What ``tact segments list`` shows: every segment, its size and description."""
    stored = latest_model(conn)
    opted_out = len(personalization_opt_outs(conn))
    active = int(
        conn.execute(
            select(func.count())
            .select_from(contacts)
            .where(contacts.c.status != ContactStatus.ERASED)
        ).scalar_one()
    )
    if stored is None:
        return {
            "model": None,
            "segments": [],
            "standard": {"size": active, "opted_out": opted_out, "folded": 0, "unassigned": active},
        }
    sizes = segment_sizes(conn)
    by_name: dict[str, int] = {}
    folded = 0
    for (segment, _source), n in sizes.items():
        if segment is None:
            folded += n
        else:
            by_name[segment] = by_name.get(segment, 0) + n
    assigned_total = sum(sizes.values())
    segments: list[dict[str, Any]] = []
    for rule in stored.summary.get("rules", []):
        segments.append(
            {
                "name": rule["name"],
                "source": Source.RULE,
                "size": by_name.get(rule["name"], 0),
                "matched": rule.get("matched"),
                "description": rule.get("description") or rule["rule"],
                "rule": rule["rule"],
            }
        )
    for cluster in stored.model.clusters:
        segments.append(
            {
                "name": cluster.name,
                "source": Source.LEARNED if cluster.name else "folded",
                "size": by_name.get(cluster.name, 0) if cluster.name else 0,
                "cluster": cluster.index,
                "cluster_size": cluster.size,
                "description": cluster.description,
                "slug": cluster.slug,
            }
        )
    # Everyone without a segment: folded clusters, opted out, or imported since the build.
    unassigned = max(active - assigned_total - opted_out, 0)
    model = stored.model
    return {
        "model": {
            "version": stored.version,
            "created_at": stored.created_at.isoformat(),
            "as_of": model.as_of.isoformat(),
            "k": model.k,
            "seed": model.seed,
            "silhouette": model.chosen_silhouette,
            "min_size": model.min_size,
            "profiled": stored.summary.get("profiled"),
        },
        "segments": segments,
        "standard": {
            "size": folded + opted_out + unassigned,
            "folded": folded,
            "opted_out": opted_out,
            "unassigned": unassigned,
        },
    }


# -- explain -------------------------------------------------------------------------------


def explain(conn: Connection, contact_id: UUID, *, as_of: datetime | None = None) -> dict[str, Any]:
    """Why a contact is in its segment: features vs the population, distances, rules.

    Features are recomputed as of the build's date (default), so they show what the
    build saw, plus anything imported since; the stored assignment is what the
    renderer uses until the next build.
    """
    if personalization_opted_out(conn, contact_id):
        return {
            "contact_id": str(contact_id),
            "segment": None,
            "opted_out": True,
            "reason": "opted out of personalization: standard version",
        }
    stored = latest_model(conn)
    stored_row = assignment_of(conn, contact_id)
    out: dict[str, Any] = {
        "contact_id": str(contact_id),
        "opted_out": False,
        "segment": stored_row.segment if stored_row is not None else None,
        "source": stored_row.source if stored_row is not None else None,
        "model_version": stored_row.model_version if stored_row is not None else None,
        "assigned_at": stored_row.assigned_at.isoformat() if stored_row is not None else None,
    }
    if stored is None:
        out["reason"] = "no segments built yet (tact segments build): standard version"
        return out
    profiles = compute_profiles(conn, as_of=as_of or stored.model.as_of)
    out["as_of"] = profiles.as_of.isoformat()
    row = profiles.row_of(contact_id)
    if row is None:
        out["reason"] = "no profile (erased): standard version"
        return out
    values = profiles.values(row)
    features = []
    for j, name in enumerate(profiles.feature_names):
        col = profiles.features[:, j]
        ok = ~np.isnan(col)
        value = values[name]
        features.append(
            {
                "feature": name,
                "value": value,
                "population_median": float(np.median(col[ok])) if ok.any() else None,
                "percentile": float((col[ok] < value).mean() * 100)
                if value is not None and ok.any()
                else None,
            }
        )
    out["features"] = features
    out["top_categories"] = list(profiles.top_categories[row])
    one = _single(profiles, row)
    distances = stored.model.distances(one)[0]
    nearest = int(np.argmin(distances))
    out["clusters"] = [
        {
            "cluster": c.index,
            "segment": c.name,
            "description": c.description,
            "folded": c.folded,
            "distance": float(distances[c.index]),
            "nearest": c.index == nearest,
        }
        for c in stored.model.clusters
    ]
    rules = []
    for rule in stored.summary.get("rules", []):
        matched = bool(evaluate(parse_rule(rule["rule"]), one)[0])
        rules.append({"name": rule["name"], "rule": rule["rule"], "matches": matched})
    out["rules"] = rules
    first_rule = next((r["name"] for r in rules if r["matches"]), None)
    cluster = stored.model.clusters[nearest]
    if stored_row is None:
        out["reason"] = "imported after the last build: standard version until the next build"
    elif stored_row.source == Source.RULE:
        out["reason"] = (
            f"matched rule segment {stored_row.segment!r} (rules come first, in file order)"
        )
    elif stored_row.source == Source.LEARNED:
        out["reason"] = f"nearest learned cluster {stored_row.cluster}: {stored_row.segment!r}"
    else:
        out["reason"] = (
            f"nearest cluster {stored_row.cluster} was too small (folded): standard version"
        )
    out["recomputed"] = {
        "rule": first_rule,
        "nearest_cluster": nearest,
        "segment": first_rule or cluster.name,
    }
    return out


def _single(profiles: Profiles, row: int) -> Profiles:
    return Profiles(
        contact_ids=profiles.contact_ids[row : row + 1],
        features=profiles.features[row : row + 1],
        feature_names=profiles.feature_names,
        top_categories=profiles.top_categories[row : row + 1],
        categories=profiles.categories,
        top_mask=profiles.top_mask[row : row + 1],
        as_of=profiles.as_of,
    )


__all__ = [
    "BuildOptions",
    "BuildReport",
    "SegmentError",
    "assign",
    "build",
    "explain",
    "export_model",
    "load_exported",
    "overview",
]
