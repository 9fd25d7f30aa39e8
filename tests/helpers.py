"""Small builders shared by tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from engine.config import Settings
from engine.people.importer import ImportReport, import_file
from engine.vault import Vault
from engine.vault.vault import contacts


def people(n: int, domain: str = "example.com") -> list[dict[str, Any]]:
    return [
        {
            "email": f"person{i}@{domain}",
            "first_name": f"Firstname{i:04d}",
            "last_name": f"Lastname{i:04d}",
            "locale": "en_GB",
            "timezone": "Europe/London",
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def import_rows(
    engine: Engine, vault: Vault, settings: Settings, rows: list[dict[str, Any]], name: str = "in"
) -> ImportReport:
    path = write_jsonl(settings.var_dir.parent / f"{name}.jsonl", rows)
    return import_file(engine, vault, settings, path)


def contact_ids(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars())


def emails(engine: Engine, vault: Vault) -> dict[Any, str | None]:
    ids = contact_ids(engine)
    with engine.connect() as conn:
        return {cid: p.email for cid, p in vault.read(conn, ids, ["email"], purpose="test").items()}
