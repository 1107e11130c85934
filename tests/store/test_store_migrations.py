from __future__ import annotations

import time

from gridwatch.store import (
    Database,
    apply_retention,
    available_migrations,
    migrate,
    telemetry_storage,
)
from gridwatch.store.telemetry import ensure_partitions


async def test_migrate_is_idempotent_and_recorded(db: Database) -> None:
    assert await migrate(db) == []  # the fixture already applied everything
    async with db.connection() as conn:
        cur = await conn.execute("SELECT name FROM schema_migrations ORDER BY version")
        names = [row[0] for row in await cur.fetchall()]
    assert names[:2] == ["0001_core", "0002_telemetry"]


async def test_plain_fallback_partitions_and_retention(db: Database) -> None:
    # This machine has no TimescaleDB: the plain variant must be the one in force.
    assert await telemetry_storage(db) == "plain"
    now_s = time.time()
    old_s = now_s - 100 * 86400
    assert await ensure_partitions(db, old_s, old_s) == 3
    assert await ensure_partitions(db, now_s, now_s) == 3
    assert await ensure_partitions(db, now_s, now_s) == 0  # already there
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO readings (meter_id, ts, v_rms_v) VALUES"
            " ('M1', to_timestamp(%s), 230), ('M1', to_timestamp(%s), 231)",
            [old_s, now_s],
        )
    assert await apply_retention(db, retention_days=90, now_s=now_s) == 3
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*), min(v_rms_v) FROM readings")
        count, v_min = await cur.fetchone()  # type: ignore[misc]
    assert (count, v_min) == (1, 231)


async def test_concurrent_migrators_apply_once(database_url: str, schema_name: str) -> None:
    import asyncio

    first = await Database.open(database_url, schema_name, create_schema=True)
    second = await Database.open(database_url, schema_name)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
        applied = [name for r in results for name in r]
        # Each migration ran exactly once, by one or the other (they may take turns).
        expected = {f"{m.version:04d}_{m.name}" for m in available_migrations()}
        assert sorted(applied) == sorted(expected)
    finally:
        from gridwatch.store import drop_schema

        await drop_schema(first)
        await first.close()
        await second.close()
