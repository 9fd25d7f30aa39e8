"""Alembic environment: runs on the connection Tact hands it (see engine.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import engine.models  # noqa: F401  (registers the tables on the metadata)
from engine.db import make_engine
from engine.models import KEYSTORE_SCHEMA

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {KEYSTORE_SCHEMA}")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_schemas=True,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "", pool=False)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Tact runs migrations online only: `tact db upgrade`")
run_migrations_online()
