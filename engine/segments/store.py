"""Segment models and assignments in the database, and the renderer's one question.

``segment_for_contacts`` is what the renderer asks at send time: one segment
name per contact, or None for the standard version. It re-checks the objection
to profiling and erasure on every call, so an objection made after the last
build takes effect at once, without waiting for the next build.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Connection, delete, func, insert, select

from engine.models import (
    STANDARD_VERSION,
    ContactPreferences,
    ContactStatus,
    SegmentAssignment,
    SegmentModelRecord,
)
from engine.segments.model import SegmentModel
from engine.vault.vault import contacts

models_t = SegmentModelRecord.__table__  # type: ignore[attr-defined]
assignments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]
prefs_t = ContactPreferences.__table__  # type: ignore[attr-defined]

#: Ids per IN (...) list and rows per INSERT: well inside SQLite's and psycopg's limits.
CHUNK: Final = 2000


class Source:
    RULE = "rule"
    LEARNED = "learned"
    STANDARD = STANDARD_VERSION  # no segment: the contact gets the standard version


@dataclass(frozen=True)
class StoredModel:
    version: int
    created_at: datetime
    model: SegmentModel
    summary: dict[str, Any]


@dataclass(frozen=True)
class Assignment:
    contact_id: UUID
    segment: str | None
    source: str
    cluster: int | None
    distance: float | None


def save_model(conn: Connection, model: SegmentModel, summary: dict[str, Any]) -> int:
    """Store a new model version; returns its number."""
    inserted = conn.execute(
        insert(models_t).values(
            created_at=model.created_at,
            k=model.k,
            seed=model.seed,
            silhouette=model.chosen_silhouette,
            params=model.to_json(),
            summary=summary,
        )
    ).inserted_primary_key
    if inserted is None:
        raise RuntimeError("the database returned no version for the segment model")
    return int(inserted[0])


def latest_model(conn: Connection) -> StoredModel | None:
    row = conn.execute(select(models_t).order_by(models_t.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    model = SegmentModel.from_json({**row.params, "version": row.version})
    return StoredModel(row.version, row.created_at, model, dict(row.summary or {}))


def replace_assignments(
    conn: Connection, version: int, rows: Sequence[Assignment], now: datetime | None = None
) -> None:
    """Make ``rows`` the whole assignment table (inside the caller's transaction)."""
    now = now or datetime.now(UTC)
    conn.execute(delete(assignments_t))
    for start in range(0, len(rows), CHUNK):
        conn.execute(
            insert(assignments_t),
            [
                {
                    "contact_id": a.contact_id,
                    "segment": a.segment,
                    "source": a.source,
                    "cluster": a.cluster,
                    "model_version": version,
                    "distance": a.distance,
                    "assigned_at": now,
                }
                for a in rows[start : start + CHUNK]
            ],
        )


def segment_for_contacts(conn: Connection, contact_ids: Iterable[UUID]) -> dict[UUID, str | None]:
    """The segment of each contact, or None for the standard version.

    None as well for a contact who objected to profiling (whatever the last build
    said), an erased one, one imported after the last build, or one in a cluster
    that was folded into the standard audience. Every id asked about is in the answer.
    """
    ids = list(dict.fromkeys(contact_ids))
    answer: dict[UUID, str | None] = dict.fromkeys(ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows = conn.execute(
            select(assignments_t.c.contact_id, assignments_t.c.segment)
            .join(contacts, contacts.c.id == assignments_t.c.contact_id)
            .outerjoin(prefs_t, prefs_t.c.contact_id == assignments_t.c.contact_id)
            .where(
                assignments_t.c.contact_id.in_(chunk),
                assignments_t.c.segment.is_not(None),
                contacts.c.status != ContactStatus.ERASED,
                prefs_t.c.personalization_opt_out.is_not(True),
            )
        )
        for contact_id, segment in rows:
            answer[contact_id] = segment
    return answer


def assignment_of(conn: Connection, contact_id: UUID) -> Any:
    return conn.execute(
        select(assignments_t).where(assignments_t.c.contact_id == contact_id)
    ).first()


def segment_sizes(conn: Connection) -> dict[tuple[str | None, str], int]:
    """Assigned contacts per (segment, source), as stored by the last build."""
    rows = conn.execute(
        select(assignments_t.c.segment, assignments_t.c.source, func.count()).group_by(
            assignments_t.c.segment, assignments_t.c.source
        )
    )
    return {(segment, source): int(n) for segment, source, n in rows}


def forget(conn: Connection, contact_id: UUID) -> None:
    """Drop a contact's assignment (objection to profiling, erasure)."""
    conn.execute(delete(assignments_t).where(assignments_t.c.contact_id == contact_id))


def known_segment_names(conn: Connection) -> set[str] | None:
    """Segment names the last build can assign (rules, unfolded clusters); None before any.

    What template lint checks ``blocks/<block>/<segment>.html.j2`` file names against.
    """
    stored = latest_model(conn)
    if stored is None:
        return None
    names = {c.name for c in stored.model.clusters if c.name}
    names |= {str(r["name"]) for r in stored.summary.get("rules", [])}
    return names
