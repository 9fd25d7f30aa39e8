"""Learned segments on synthetic customers: deterministic, meaningful, stored as JSON only.

One population per backend is imported once for the module (the import dominates
the cost); tests that change data use their own small database.
"""

from __future__ import annotations

import ast
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sqlalchemy import Engine, func, select

from engine.config import Settings
from engine.consent.service import Origin, set_personalization
from engine.db import make_engine
from engine.errors import ModelFormatError
from engine.migrate import upgrade
from engine.models import SegmentAssignment, SegmentModelRecord
from engine.people.erasure import erase_contact
from engine.people.importer import import_file
from engine.segments import (
    BuildOptions,
    Profiles,
    SegmentModel,
    build,
    compute_profiles,
    fit,
    latest_model,
    parse_rules,
    segment_for_contacts,
)
from engine.segments.build import assign, explain, load_exported, overview
from engine.segments.store import known_segment_names
from engine.synthetic import generate_customers, persona_of, write_jsonl
from engine.vault import Keyring, Vault

REPO = Path(__file__).resolve().parent.parent
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 42
#: Customers per backend; the import takes about a second per thousand on either.
COUNT = 2500
assignments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]
models_t = SegmentModelRecord.__table__  # type: ignore[attr-defined]


@dataclass
class Population:
    engine: Engine
    vault: Vault
    settings: Settings
    profiles: Profiles
    persona: dict[UUID, str]
    email: dict[UUID, str]


def _open(root: Path, url: str) -> tuple[Engine, Vault, Settings]:
    settings = Settings(var_dir=root / "var", database_url=url)
    ring = Keyring.generate()
    ring.save(settings.resolved_key_file)
    engine = make_engine(url)
    upgrade(engine)
    vault = Vault(ring)
    with engine.begin() as conn:
        vault.verify(conn)
    return engine, vault, settings


def _load(engine: Engine, vault: Vault, settings: Settings, count: int) -> dict[str, int]:
    path = settings.var_dir.parent / "customers.jsonl"
    records = list(generate_customers(count, seed=SEED))
    write_jsonl(path, records)
    import_file(engine, vault, settings, path)
    return {r["email"]: i for i, r in enumerate(records)}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def population(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Population]:
    root = tmp_path_factory.mktemp(f"segments-{request.param}")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'var' / 'tact.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        template = request.getfixturevalue("pg_template")
        name = f"seg_{uuid.uuid4().hex[:12]}"
        url = server.create_database(name, template=template)
    engine, vault, settings = _open(root, url)
    index = _load(engine, vault, settings, COUNT)
    with engine.connect() as conn:
        profiles = compute_profiles(conn, as_of=AS_OF)
        ids = list(profiles.contact_ids)
        read = vault.read(conn, ids, ["email"], purpose="t")
    email = {cid: str(p.email) for cid, p in read.items()}
    persona = {cid: persona_of(index[email[cid]], SEED) for cid in ids}
    yield Population(engine, vault, settings, profiles, persona, email)
    engine.dispose()
    if name is not None:
        request.getfixturevalue("postgres_server").drop_database(name)


def _personas(pop: Population) -> np.ndarray[Any, np.dtype[Any]]:
    return np.array([pop.persona[cid] for cid in pop.profiles.contact_ids])


def test_clustering_is_deterministic_and_finds_the_personas(population: Population) -> None:
    profiles = population.profiles
    assert len(profiles) == COUNT
    started = time.perf_counter()
    first = fit(profiles, seed=7)
    seconds = time.perf_counter() - started
    second = fit(profiles, seed=7)
    assert np.array_equal(first.labels, second.labels)
    assert [c.name for c in first.model.clusters] == [c.name for c in second.model.clusters]
    assert first.model.silhouette == second.model.silhouette
    assert seconds < 30

    # The same customers under other ids, in another order: the same segments.
    perm = np.random.default_rng(1).permutation(len(profiles))
    ids = np.empty(len(profiles), dtype=object)
    ids[:] = [uuid.uuid4() for _ in range(len(profiles))]
    shuffled = Profiles(
        contact_ids=ids,
        features=profiles.features[perm],
        feature_names=profiles.feature_names,
        top_categories=[profiles.top_categories[i] for i in perm],
        categories=profiles.categories,
        top_mask=profiles.top_mask[perm],
        as_of=profiles.as_of,
    )
    third = fit(shuffled, seed=7)
    assert np.array_equal(third.labels, first.labels[perm])
    assert [(c.name, c.size) for c in third.model.clusters] == [
        (c.name, c.size) for c in first.model.clusters
    ]

    model = first.model
    named = [c for c in model.clusters if c.name]
    assert 4 <= model.k <= 10 and len(named) >= 4
    assert set(model.silhouette) == set(range(4, 11))
    assert model.chosen_silhouette == max(model.silhouette.values())
    names = [c.name for c in named]
    assert len(set(names)) == len(names)
    for c in named:
        assert c.name is not None and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c.name)
        assert c.description and len(c.name) <= 64

    personas = _personas(population)
    ari = adjusted_rand_score(personas, first.labels)
    # Observed 0.43-0.49 on these 2,500 customers over seeds 1-5, 7 and 42 (0.53 on 5,000).
    assert ari >= 0.35, ari
    # Most lapsed customers share one cluster, and that cluster reads "lapsed".
    lapsed = Counter(first.labels[personas == "lapsed"].tolist())
    cluster, members = lapsed.most_common(1)[0]
    assert members / sum(lapsed.values()) >= 0.8  # observed 0.89-0.95
    assert "lapsed" in model.clusters[cluster].description
    # Category personas land mostly in one cluster named after their category.
    outdoor = Counter(first.labels[personas == "outdoor"].tolist()).most_common(1)[0]
    assert outdoor[1] / (personas == "outdoor").sum() >= 0.75  # observed 0.88-0.90
    assert "outdoor" in model.clusters[outdoor[0]].description
    # Window shoppers never ordered; their cluster says so.
    window = Counter(first.labels[personas == "window"].tolist()).most_common(1)[0]
    assert window[1] / (personas == "window").sum() >= 0.85  # observed 0.93-1.0
    assert "no orders" in model.clusters[window[0]].description


def test_model_round_trips_through_json_and_assigns_the_same(population: Population) -> None:
    result = fit(population.profiles, seed=SEED, k_max=7)
    text = json.dumps(result.model.to_json())
    loaded = SegmentModel.from_json(json.loads(text))
    labels, distances = loaded.assign(population.profiles)
    assert np.array_equal(labels, result.labels)
    assert np.array_equal(distances, result.distances)
    assert loaded.to_json() == result.model.to_json()
    # Nearest centroid by hand, in the stored parameters' own terms.
    raw = loaded.transform(population.profiles)
    centroids = np.array(json.loads(text)["centroids"])
    by_hand = np.argmin(((raw[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert np.array_equal(by_hand, labels)

    broken = json.loads(text)
    broken["centroids"][0] = broken["centroids"][0][:-1]
    with pytest.raises(ModelFormatError):
        SegmentModel.from_json(broken)
    with pytest.raises(ModelFormatError):
        SegmentModel.from_json({"format": "pickle"})


def test_small_clusters_fold_into_the_standard_audience(population: Population) -> None:
    base = fit(population.profiles, seed=SEED, k_min=8, k_max=8)
    sizes = sorted(c.size for c in base.model.clusters)
    threshold = sizes[2] + 1  # the three smallest clusters are too small
    folded = fit(population.profiles, seed=SEED, k_min=8, k_max=8, min_size=threshold)
    assert np.array_equal(folded.labels, base.labels)
    assert sum(c.folded for c in folded.model.clusters) == 3
    for c in folded.model.clusters:
        assert c.folded == (c.size < threshold)
        assert (c.name is None) == c.folded
    rows, _ = assign(population.profiles, folded.model, [])
    standard = [r for r in rows if r.segment is None]
    assert len(standard) == sum(sizes[:3])
    assert {r.source for r in standard} == {"standard"}
    # The default: 2% of the profiled contacts.
    assert base.model.min_size == int(np.ceil(0.02 * COUNT))


RULES = """\
[big-spenders]
rule = 'spend_365 >= 1000'

[outdoor-fans]
rule = '"outdoor" in top_categories and orders >= 3'
"""


def test_build_stores_json_and_answers_the_renderer(population: Population, tmp_path: Path) -> None:
    rules = parse_rules(RULES)
    export = tmp_path / "model.json"
    options = BuildOptions(seed=SEED, k_max=8, as_of=AS_OF)
    report = build(population.engine, rules, options, export=export)
    profiles = population.profiles
    ids = list(profiles.contact_ids)
    with population.engine.connect() as conn:
        stored = latest_model(conn)
        answer = segment_for_contacts(conn, [*ids, uuid.uuid4()])
        params = conn.execute(select(models_t.c.params)).scalars().all()
        rows = conn.execute(select(func.count()).select_from(assignments_t)).scalar_one()
        view = overview(conn)
        known = known_segment_names(conn)
    assert stored is not None and stored.version == report.version
    assert stored.model.to_json() == report.model.to_json() == load_exported(export).to_json()
    assert isinstance(params[-1], dict) and params[-1]["format"] == "tact-segments/1"
    assert rows == len(ids)
    learned_names = {c.name for c in report.model.clusters if c.name}
    assert known == learned_names | {"big-spenders", "outdoor-fans"}

    # Rules first, in file order; then the learned segment; folded -> None.
    big = profiles.column("spend_365") >= 1000
    outdoor = profiles.in_top("outdoor") & (profiles.column("orders") >= 3)
    labels, _ = report.model.assign(profiles)
    names = [c.name for c in report.model.clusters]
    for i, cid in enumerate(ids):
        if big[i]:
            expected = "big-spenders"
        elif outdoor[i]:
            expected = "outdoor-fans"
        else:
            expected = names[labels[i]]
        assert answer[cid] == expected
    assert len(answer) == len(ids) + 1 and list(answer.values())[-1] is None
    assert report.rules == [
        ("big-spenders", int(big.sum()), int(big.sum())),
        ("outdoor-fans", int(outdoor.sum()), int((outdoor & ~big).sum())),
    ]
    assert sum(report.learned.values()) + report.standard + report.rules[0][2] + report.rules[1][
        2
    ] == len(ids)
    listed = {s["name"]: s for s in view["segments"] if s["name"]}
    assert listed["big-spenders"]["size"] == int(big.sum())
    assert view["standard"]["opted_out"] == 0

    # Same data, same seed: the same segments, name for name.
    again = build(population.engine, rules, options)
    with population.engine.connect() as conn:
        assert segment_for_contacts(conn, ids) == {cid: answer[cid] for cid in ids}
        why = explain(conn, ids[0])
    assert again.version == report.version + 1
    assert why["segment"] == answer[ids[0]]
    assert len(why["clusters"]) == report.model.k
    assert sum(c["nearest"] for c in why["clusters"]) == 1
    assert why["recomputed"]["segment"] == answer[ids[0]]


def test_opted_out_contacts_get_no_profile_and_no_segment(
    engine: Engine, vault: Vault, settings: Settings
) -> None:
    _load(engine, vault, settings, 400)
    with engine.connect() as conn:
        assert known_segment_names(conn) is None  # nothing built yet
    options = BuildOptions(seed=SEED, k_max=6, min_share=0.0, as_of=AS_OF)
    build(engine, [], options)
    with engine.connect() as conn:
        ids = list(compute_profiles(conn, as_of=AS_OF).contact_ids)
        before = segment_for_contacts(conn, ids)
    assert all(before[cid] is not None for cid in ids)  # nothing folded with min_share=0
    objector, erased = ids[0], ids[1]
    with engine.begin() as conn:
        set_personalization(conn, vault, objector, True, Origin(source="admin"))
        address = vault.read(conn, [erased], ["email"], purpose="t")[erased].email
        assert address is not None
        erase_contact(conn, vault, address, actor="test")
    with engine.connect() as conn:
        # Effective at once, before any rebuild.
        now = segment_for_contacts(conn, ids)
        assert now[objector] is None and now[erased] is None
        assert explain(conn, objector)["reason"] == (
            "opted out of personalization: standard version"
        )
    report = build(engine, [], options)
    with engine.connect() as conn:
        profiles = compute_profiles(conn, as_of=AS_OF)
        stored = {r.contact_id for r in conn.execute(select(assignments_t.c.contact_id))}
        view = overview(conn)
    assert profiles.row_of(objector) is None and profiles.row_of(erased) is None
    assert objector not in stored and erased not in stored
    assert report.opted_out == 1 and report.profiled == len(ids) - 2
    assert view["standard"]["opted_out"] == 1


def test_no_pickle_anywhere() -> None:
    """The segment code imports no serializer that can run code and evaluates no text."""
    sources = [*(REPO / "engine" / "segments").glob("*.py"), REPO / "engine/cli/segments_cmd.py"]
    banned_modules = {"pickle", "cPickle", "joblib", "dill", "shelve", "marshal", "cloudpickle"}
    banned_builtins = {"eval", "exec", "compile", "__import__"}
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & banned_modules, (path.name, names)
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name):
                    assert func.id not in banned_builtins, (path.name, func.id)
                if isinstance(func, ast.Attribute):
                    assert func.attr != "literal_eval", path.name
