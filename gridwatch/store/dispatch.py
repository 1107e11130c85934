"""SQL behind the dispatch board: every active outage with its crew status (the latest
report in ``etr_crew_status``), and how many outages are in each crew status. One
outage's crew report is ``etr.outage_crew``."""

from __future__ import annotations

from typing import Any

from gridwatch.store.database import Database, Row, fetch_rows
from gridwatch.store.outages import OPEN_STATES

# "none": no crew report yet (no etr_crew_status row).
CREW_BOARD_STATUSES = ("none", "dispatched", "on_site", "released")

_BOARD = (
    "SELECT o.outage_id, o.device_id, d.kind AS device_kind, d.name AS device_name, o.zone,"
    " o.state, o.cause, o.planned, o.started_at, o.confirmed_at,"
    " GREATEST(o.customers_affected - o.customers_restored, 0) AS customers_out,"
    " o.etr_p10, o.etr_p50, o.etr_p90, o.etr_model_version,"
    " c.status AS crew_status, c.cause AS crew_cause, c.set_by AS crew_set_by,"
    " c.set_at AS crew_set_at"
    " FROM outages o LEFT JOIN devices d ON d.device_id = o.device_id"
    " LEFT JOIN etr_crew_status c ON c.outage_id = o.outage_id"
    " WHERE o.state = ANY(%(states)s) AND (%(zone)s::text IS NULL OR o.zone = %(zone)s)"
    # Most customers out first: the order a dispatcher sends crews in when nothing else
    # is known; then the oldest.
    " ORDER BY customers_out DESC, o.started_at, o.outage_id"
    " LIMIT %(limit)s"
)
_COUNTS = (
    "SELECT COALESCE(c.status, 'none') AS status, count(*) AS outages"
    " FROM outages o LEFT JOIN etr_crew_status c ON c.outage_id = o.outage_id"
    " WHERE o.state = ANY(%(states)s) AND (%(zone)s::text IS NULL OR o.zone = %(zone)s)"
    " GROUP BY 1"
)


async def dispatch_board(db: Database, *, zone: str | None, limit: int) -> list[Row]:
    """Up to ``limit`` active outages (of ``zone``, or all), most customers out first."""
    params: dict[str, Any] = {"states": list(OPEN_STATES), "zone": zone, "limit": limit}
    async with db.connection() as conn:
        return await fetch_rows(conn, _BOARD, params)


async def crew_status_counts(db: Database, *, zone: str | None) -> dict[str, int]:
    """Active outages per crew status (every status present, zero where none)."""
    params: dict[str, Any] = {"states": list(OPEN_STATES), "zone": zone}
    async with db.connection() as conn:
        rows = await fetch_rows(conn, _COUNTS, params)
    counts = dict.fromkeys(CREW_BOARD_STATUSES, 0)
    for row in rows:
        counts[str(row["status"])] = int(row["outages"])
    return counts
