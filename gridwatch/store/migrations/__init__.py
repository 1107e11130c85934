"""Versioned SQL migrations, applied once each and recorded in ``schema_migrations``.

A migration is ``NNNN_name.sql``; where telemetry storage differs, ``NNNN_name.plain.sql``
and ``NNNN_name.timescale.sql`` are its two variants and the runner picks the one that
fits the server (TimescaleDB when the extension is installable, plain PostgreSQL if not).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import psycopg
from psycopg import sql

from gridwatch.core.errors import StoreError
from gridwatch.store.database import Database

log = logging.getLogger(__name__)

StorageMode = Literal["auto", "plain", "timescaledb"]
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    variant: str | None  # None, "plain" or "timescale"
    text: str


def available_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("gridwatch.store.migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(int(match[1]), match[2], match[3], entry.read_text(encoding="utf-8"))
        )
    return sorted(found, key=lambda m: (m.version, m.variant or ""))


async def timescaledb_available(db: Database) -> bool:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
        )
        row = await cur.fetchone()
    return bool(row and row[0])


async def migrate(db: Database, storage: StorageMode = "auto") -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to run concurrently."""
    use_timescale = (
        await timescaledb_available(db) if storage == "auto" else storage == "timescaledb"
    )
    if use_timescale:
        async with db.connection() as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    variant = "timescale" if use_timescale else "plain"
    applied: list[str] = []
    for migration in available_migrations():
        if migration.variant not in (None, variant):
            continue
        label = f"{migration.version:04d}_{migration.name}"
        async with db.connection() as conn:
            # One migrator at a time per schema; the others wait, then see it applied.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [db.schema])
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", [migration.version]
            )
            if await cur.fetchone():
                continue
            try:
                await conn.execute(sql.SQL(migration.text))
            except psycopg.Error as exc:  # name the migration, not just the SQL error
                raise StoreError(f"migration {label} failed: {exc}") from exc
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                [migration.version, label],
            )
        log.info("applied migration %s", label)
        applied.append(label)
    return applied


async def pending_migrations(db: Database) -> list[str]:
    """Names of migrations not yet applied (either variant of a versioned pair counts)."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cur.fetchone()
        applied: set[int] = set()
        if row and row[0]:
            cur = await conn.execute("SELECT version FROM schema_migrations")
            applied = {int(r[0]) for r in await cur.fetchall()}
    return sorted(
        {f"{m.version:04d}_{m.name}" for m in available_migrations() if m.version not in applied}
    )


async def telemetry_storage(db: Database) -> str:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT value FROM storage_info WHERE key = 'telemetry_storage'")
        row = await cur.fetchone()
    return str(row[0]) if row else "unknown"


async def drop_schema(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(db.schema))
        )
