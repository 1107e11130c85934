"""SQL for telemetry: partitions and retention. Bulk writes live here too (ingest calls them)."""

from __future__ import annotations

from datetime import UTC, datetime

from gridwatch.store._database import Database


async def ensure_partitions(db: Database, from_s: float, to_s: float) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT ensure_telemetry_partitions(%s, %s)",
            [datetime.fromtimestamp(from_s, UTC), datetime.fromtimestamp(to_s, UTC)],
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def apply_retention(db: Database, retention_days: int, now_s: float) -> int:
    """Drop telemetry older than the retention window; returns partitions/chunks dropped."""
    cutoff = datetime.fromtimestamp(now_s - retention_days * 86400.0, UTC)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT drop_telemetry_partitions_before(%s)", [cutoff])
        row = await cur.fetchone()
    return int(row[0]) if row else 0
