"""What gridwatch recorded about outages in a time window, read back for scoring: the
outages, their timelines or published ETRs, their meters and notices. Harness-only (the
product never reads its history this way), so it lives with the scorer, not in the store.

Tolerant of schema growth: ``outage_meters`` (detection's migration) is used when present.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gridwatch.store.database import Database


def _dt(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, UTC)


async def fetch_outages(db: Database, from_s: float, to_s: float) -> list[dict[str, Any]]:
    """Outages that overlap ``[from_s, to_s]``, oldest first."""
    async with db.connection() as conn:
        cur = await conn.execute(
            """
            SELECT outage_id, device_id, zone, state, cause, planned, started_at, confirmed_at,
                   restored_at, meters_affected, customers_affected, etr_p10, etr_p50, etr_p90,
                   updated_at
            FROM outages
            WHERE started_at <= %s AND (restored_at IS NULL OR restored_at >= %s)
            ORDER BY started_at, outage_id
            """,
            [_dt(to_s), _dt(from_s)],
        )
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]


async def fetch_outage_timeline(db: Database, outage_ids: list[int]) -> list[dict[str, Any]]:
    if not outage_ids:
        return []
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT outage_id, at, kind, detail FROM outage_timeline"
            " WHERE outage_id = ANY(%s) ORDER BY outage_id, at",
            [outage_ids],
        )
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]


async def fetch_etr_history(db: Database, outage_ids: list[int]) -> list[dict[str, Any]]:
    """Every published ETR (``etr_history``, when the ETR migration is applied), as timeline
    rows ``{"outage_id", "at", "detail": {"p10", "p50", "p90"}}``."""
    if not outage_ids:
        return []
    async with db.connection() as conn:
        cur = await conn.execute("SELECT to_regclass('etr_history') IS NOT NULL")
        row = await cur.fetchone()
        if not row or not row[0]:
            return []
        cur = await conn.execute(
            "SELECT outage_id, computed_at, p10, p50, p90 FROM etr_history"
            " WHERE outage_id = ANY(%s) ORDER BY outage_id, computed_at, etr_id",
            [outage_ids],
        )
        return [
            {"outage_id": oid, "at": at, "detail": {"p10": p10, "p50": p50, "p90": p90}}
            for oid, at, p10, p50, p90 in await cur.fetchall()
        ]


async def fetch_outage_meters(db: Database, outage_ids: list[int]) -> dict[int, list[str]] | None:
    """Meter ids per outage, or None when the schema has no ``outage_meters`` table."""
    if not outage_ids:
        return {}
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'outage_meters'"
        )
        columns = {str(r[0]) for r in await cur.fetchall()}
        if not {"outage_id", "meter_id"} <= columns:
            return None
        cur = await conn.execute(
            "SELECT outage_id, meter_id FROM outage_meters WHERE outage_id = ANY(%s)",
            [outage_ids],
        )
        out: dict[int, list[str]] = {}
        for oid, mid in await cur.fetchall():
            out.setdefault(int(oid), []).append(str(mid))
        return out


async def fetch_notifications(db: Database, outage_ids: list[int]) -> list[dict[str, Any]]:
    """The notices of these outages, each with ``told_at``: the service-clock time it could
    go out (``not_before``: the change's time, or the end of the customer's quiet hours).
    ``created_at`` is the database's wall clock, which on a replay is not event time."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT customer_id, outage_id, kind, channel, status, not_before AS told_at"
            " FROM notifications WHERE outage_id = ANY(%s) ORDER BY not_before, notification_id",
            [outage_ids],
        )
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]
