"""SQL for restoration-time estimation: models and the outage history they are fitted on,
ETR history, overrides, crew status (``etr_crew_status``, also the dispatch board's), and
what customers were told (``etr_notices``). The current ETR on the outage row and the
timeline entries are written through ``store.outages``, in the same transaction.

Times cross this boundary as epoch seconds (float); the database holds timestamptz.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from gridwatch.core.clock import utc_datetime
from gridwatch.core.errors import StoreError
from gridwatch.store.database import Database, Row
from gridwatch.store.outages import CurrentEtr, add_timeline_in, set_current_etrs_in


def _s(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(frozen=True)
class HistoryRow:
    started_at_s: float
    restored_at_s: float | None
    device_kind: str | None
    cause: str | None
    zone: str = "all"
    customers_affected: int = 0


@dataclass(frozen=True)
class OpenOutageRow:
    outage_id: int
    device_id: str
    zone: str
    device_kind: str | None
    cause: str | None
    started_at_s: float
    customers_affected: int
    meters_affected: int
    crew_status: str | None = None  # dispatched | on_site | released (etr_crew_status)
    crew_cause: str | None = None  # the cause the crew reported
    # When detection found it still dark under an outage above that came back (timeline
    # "nested" / "nested_linked"): it is recorded from that outage's start.
    nested_at_s: float | None = None


@dataclass(frozen=True)
class EtrRow:
    outage_id: int
    computed_at_s: float
    p10_s: float
    p50_s: float
    p90_s: float
    source: str
    model_version: str | None
    inputs: dict[str, Any]


@dataclass(frozen=True)
class OverrideRow:
    override_id: int
    outage_id: int
    etr_at_s: float
    reason: str
    set_by: str
    set_at_s: float


@dataclass(frozen=True)
class NoticeRow:
    outage_id: int
    first_at_s: float
    last_at_s: float
    window_start_s: float
    window_end_s: float
    p50_s: float
    updates_sent: int


async def save_model(
    db: Database,
    version: str,
    fitted_at_s: float,
    history_from_s: float | None,
    history_to_s: float | None,
    n_outages: int,
    params: dict[str, Any],
    *,
    activate: bool = True,
) -> None:
    async with db.connection() as conn:
        if activate:
            await conn.execute("UPDATE etr_models SET active = false WHERE active")
        # created_at is the fit's own time (the caller's clock: the service clock in the
        # service, a replay's time on a replay), not the database's wall clock.
        await conn.execute(
            "INSERT INTO etr_models (version, fitted_at, history_from, history_to, n_outages,"
            " params, active, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                version,
                utc_datetime(fitted_at_s),
                None if history_from_s is None else utc_datetime(history_from_s),
                None if history_to_s is None else utc_datetime(history_to_s),
                n_outages,
                Jsonb(params),
                activate,
                utc_datetime(fitted_at_s),
            ],
        )


async def load_model(db: Database, version: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The active model (or a given version): (version, params), or None."""
    async with db.connection() as conn:
        if version is None:
            cur = await conn.execute("SELECT version, params FROM etr_models WHERE active")
        else:
            cur = await conn.execute(
                "SELECT version, params FROM etr_models WHERE version = %s", [version]
            )
        row = await cur.fetchone()
    return None if row is None else (str(row[0]), dict(row[1]))


async def list_models(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT version, fitted_at, n_outages, active FROM etr_models ORDER BY fitted_at DESC"
        )
        rows = await cur.fetchall()
    return [
        {"version": r[0], "fitted_at_s": r[1].timestamp(), "n_outages": r[2], "active": r[3]}
        for r in rows
    ]


async def fetch_history(db: Database, since_s: float, as_of_s: float) -> list[HistoryRow]:
    """Unplanned, not-cancelled outages started in [since, as_of): restored ones and those
    still open (the caller censors them at ``as_of``)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.started_at, CASE WHEN o.restored_at <= %s THEN o.restored_at END,"
            " d.kind, o.cause, o.zone, o.customers_affected"
            " FROM outages o LEFT JOIN devices d ON d.device_id = o.device_id"
            " WHERE o.state NOT IN ('scheduled', 'cancelled') AND NOT o.planned"
            "   AND o.started_at >= %s AND o.started_at < %s",
            [utc_datetime(as_of_s), utc_datetime(since_s), utc_datetime(as_of_s)],
        )
        rows = await cur.fetchall()
    return [HistoryRow(r[0].timestamp(), _s(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


async def fetch_open_outages(db: Database) -> list[OpenOutageRow]:
    async with db.connection() as conn:
        cur = await conn.execute(
            # Customers from the meters table too: the runner counts owners as of its
            # start, so customers registered since then would be missed for priority.
            "SELECT o.outage_id, o.device_id, o.zone, d.kind, o.cause, o.started_at,"
            " GREATEST(o.customers_affected, COALESCE(om.customers, 0)),"
            " o.meters_affected, c.status, c.cause,"
            " (SELECT min(t.at) FROM outage_timeline t WHERE t.outage_id = o.outage_id"
            "   AND t.kind IN ('nested', 'nested_linked'))"
            " FROM outages o LEFT JOIN devices d ON d.device_id = o.device_id"
            " LEFT JOIN etr_crew_status c ON c.outage_id = o.outage_id"
            " LEFT JOIN LATERAL (SELECT count(DISTINCT COALESCE(x.customer_id, m.customer_id))"
            "   AS customers FROM outage_meters x LEFT JOIN meters m ON m.meter_id = x.meter_id"
            "   WHERE x.outage_id = o.outage_id) om ON true"
            " WHERE o.state IN ('predicted', 'confirmed', 'partially_restored')"
            " ORDER BY o.outage_id"
        )
        rows = await cur.fetchall()
    return [
        OpenOutageRow(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5].timestamp(),
            r[6],
            r[7],
            r[8],
            r[9],
            nested_at_s=None if r[10] is None else r[10].timestamp(),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class CrewStatusRow:
    outage_id: int
    status: str
    cause: str | None
    set_by: str
    set_at_s: float


async def set_crew_status_in(
    conn: AsyncConnection,
    outage_id: int,
    status: str,
    cause: str | None,
    set_by: str,
    at_s: float,
) -> CrewStatusRow:
    """Upsert the outage's crew status, in the caller's transaction (the operator desk's,
    with its audit row); a report without a cause keeps the one known."""
    cur = await conn.execute(
        "INSERT INTO etr_crew_status (outage_id, status, cause, set_by, set_at)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (outage_id) DO UPDATE SET status = EXCLUDED.status,"
        " cause = COALESCE(EXCLUDED.cause, etr_crew_status.cause),"
        " set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at"
        " RETURNING outage_id, status, cause, set_by, set_at",
        [outage_id, status, cause, set_by, utc_datetime(at_s)],
    )
    r = await cur.fetchone()
    if r is None:  # pragma: no cover - RETURNING always yields a row
        raise StoreError("crew status upsert returned nothing")
    # Each report in the timeline too: the current row keeps only the latest, and an
    # operator reads when the crew was sent and when it arrived.
    await add_timeline_in(
        conn,
        outage_id,
        utc_datetime(at_s),
        "crew_status",
        {"status": r[1], "cause": r[2], "set_by": r[3]},
    )
    return CrewStatusRow(r[0], r[1], r[2], r[3], r[4].timestamp())


_CREW_STATUS_SQL = (
    "SELECT outage_id, status, cause, set_by, set_at FROM etr_crew_status WHERE outage_id = %s"
)


async def get_crew_status(db: Database, outage_id: int) -> CrewStatusRow | None:
    async with db.connection() as conn:
        cur = await conn.execute(_CREW_STATUS_SQL, [outage_id])
        r = await cur.fetchone()
    return None if r is None else CrewStatusRow(r[0], r[1], r[2], r[3], r[4].timestamp())


async def outage_crew(db: Database, outage_id: int) -> Row | None:
    """The outage's latest crew report (status, cause, set_by, set_at), or None."""
    async with db.connection() as conn:
        cur = await conn.execute(_CREW_STATUS_SQL, [outage_id])
        r = await cur.fetchone()
    return (
        None
        if r is None
        else dict(zip(("status", "cause", "set_by", "set_at"), r[1:], strict=True))
    )


async def open_outages_without_etr(db: Database) -> list[int]:
    """Open outages that have no ETR yet (new since the last round)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT outage_id FROM outages"
            " WHERE state IN ('predicted', 'confirmed', 'partially_restored')"
            " AND etr_p50 IS NULL ORDER BY outage_id"
        )
        return [int(r[0]) for r in await cur.fetchall()]


async def fetch_outage_intervals(db: Database, since_s: float) -> list[tuple[float, float | None]]:
    """(start, restored or None) of every outage open at or after ``since`` (storm level)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT started_at, restored_at FROM outages"
            " WHERE state NOT IN ('scheduled', 'cancelled')"
            " AND (restored_at IS NULL OR restored_at >= %s)",
            [utc_datetime(since_s)],
        )
        rows = await cur.fetchall()
    return [(r[0].timestamp(), _s(r[1])) for r in rows]


async def critical_customers(db: Database, outage_ids: Sequence[int]) -> dict[int, int]:
    """Critical customers (``customers.critical``) still out, per outage with any."""
    if not outage_ids:
        return {}
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT om.outage_id, count(DISTINCT om.customer_id)"
            " FROM outage_meters om JOIN customers c ON c.customer_id = om.customer_id"
            " WHERE om.outage_id = ANY(%s) AND c.critical AND om.status = 'out'"
            " GROUP BY om.outage_id",
            [list(outage_ids)],
        )
        rows = await cur.fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


async def record_etrs(db: Database, rows: Sequence[EtrRow]) -> None:
    """Append to the ETR history and set the outages' current ETR, in one transaction."""
    if not rows:
        return
    async with db.connection() as conn:
        await record_etrs_in(conn, rows)


async def record_etrs_in(conn: AsyncConnection, rows: Sequence[EtrRow]) -> None:
    """``record_etrs`` in the caller's transaction (an override's ETR row commits with
    the override)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO etr_history (outage_id, computed_at, p10, p50, p90, source, model_version,"
            " inputs) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    r.outage_id,
                    utc_datetime(r.computed_at_s),
                    utc_datetime(r.p10_s),
                    utc_datetime(r.p50_s),
                    utc_datetime(r.p90_s),
                    r.source,
                    r.model_version,
                    Jsonb(r.inputs),
                )
                for r in rows
            ],
        )
    await set_current_etrs_in(
        conn,
        [
            CurrentEtr(
                r.outage_id,
                utc_datetime(r.p10_s),
                utc_datetime(r.p50_s),
                utc_datetime(r.p90_s),
                r.model_version,
                utc_datetime(r.computed_at_s),  # the ETR's service-clock time
            )
            for r in rows
        ],
    )


_HISTORY_SQL = (
    "SELECT outage_id, computed_at, p10, p50, p90, source, model_version, inputs"
    " FROM etr_history WHERE outage_id = %s"
    " ORDER BY computed_at DESC, etr_id DESC LIMIT %s"
)


async def etr_history(db: Database, outage_id: int, limit: int = 100) -> list[EtrRow]:
    """The newest ETRs of one outage (newest first), with model version and inputs."""
    async with db.connection() as conn:
        cur = await conn.execute(_HISTORY_SQL, [outage_id, limit])
        rows = await cur.fetchall()
    return [
        EtrRow(
            r[0],
            r[1].timestamp(),
            r[2].timestamp(),
            r[3].timestamp(),
            r[4].timestamp(),
            r[5],
            r[6],
            dict(r[7]),
        )
        for r in rows
    ]


async def outage_etrs(db: Database, outage_id: int, *, limit: int) -> list[Row]:
    """``etr_history`` as the outage detail shows it: rows keyed by column, times as
    timestamps."""
    async with db.connection() as conn:
        cur = await conn.execute(_HISTORY_SQL, [outage_id, limit])
        rows = await cur.fetchall()
    keys = ("computed_at", "p10", "p50", "p90", "source", "model_version", "inputs")
    return [dict(zip(keys, r[1:], strict=True)) for r in rows]


# An override's timeline key is ``etr_at``, never ``p50``: the timeline holds no published
# ETRs.


async def clear_override_in(
    conn: AsyncConnection, outage_id: int, at_s: float, reason: str
) -> bool:
    """Clear the override in force with its timeline entry, in the caller's transaction.
    False if none was in force."""
    cur = await conn.execute(
        "UPDATE etr_overrides SET cleared_at = %s, cleared_reason = %s"
        " WHERE outage_id = %s AND cleared_at IS NULL RETURNING override_id, etr_at, set_by",
        [utc_datetime(at_s), reason, outage_id],
    )
    rows = await cur.fetchall()
    for override_id, etr_at, set_by in rows:  # at most one (etr_overrides_active_idx)
        detail = {
            "override_id": int(override_id),
            "etr_at": etr_at.isoformat(),
            "set_by": str(set_by),
            "cleared_reason": reason,
        }
        await add_timeline_in(conn, outage_id, utc_datetime(at_s), "etr_override_cleared", detail)
    return bool(rows)


async def insert_override_in(
    conn: AsyncConnection,
    outage_id: int,
    etr_at_s: float,
    reason: str,
    set_by: str,
    set_at_s: float,
) -> int:
    """A new override replaces the one in force (cleared as 'replaced'). Both leave an
    ``outage_timeline`` entry, in the caller's transaction (the operator desk's, with the
    override's ETR row and its audit row)."""
    await clear_override_in(conn, outage_id, set_at_s, "replaced")
    cur = await conn.execute(
        "INSERT INTO etr_overrides (outage_id, etr_at, reason, set_by, set_at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING override_id",
        [outage_id, utc_datetime(etr_at_s), reason, set_by, utc_datetime(set_at_s)],
    )
    row = await cur.fetchone()
    if row is None:  # pragma: no cover - RETURNING always yields a row
        raise StoreError("override insert returned nothing")
    detail = {
        "override_id": int(row[0]),
        "etr_at": utc_datetime(etr_at_s).isoformat(),
        "reason": reason,
        "set_by": set_by,
    }
    await add_timeline_in(conn, outage_id, utc_datetime(set_at_s), "etr_override_set", detail)
    return int(row[0])


async def clear_override(db: Database, outage_id: int, at_s: float, reason: str) -> bool:
    """Clear the override in force (``reason`` is ``passed`` when its time went by
    unrestored), with an ``etr_override_cleared`` timeline entry. False if none."""
    async with db.connection() as conn:
        return await clear_override_in(conn, outage_id, at_s, reason)


_ACTIVE_OVERRIDES_SQL = (
    "SELECT override_id, outage_id, etr_at, reason, set_by, set_at FROM etr_overrides"
    " WHERE cleared_at IS NULL AND outage_id = ANY(%s)"
)


async def active_overrides(db: Database, outage_ids: Sequence[int]) -> dict[int, OverrideRow]:
    if not outage_ids:
        return {}
    async with db.connection() as conn:
        cur = await conn.execute(_ACTIVE_OVERRIDES_SQL, [list(outage_ids)])
        rows = await cur.fetchall()
    return {
        r[1]: OverrideRow(r[0], r[1], r[2].timestamp(), r[3], r[4], r[5].timestamp()) for r in rows
    }


async def active_override(db: Database, outage_id: int) -> Row | None:
    """The override in force on one outage (override_id, etr_at, reason, set_by, set_at),
    as the outage detail shows it; at most one is (etr_overrides_active_idx)."""
    async with db.connection() as conn:
        cur = await conn.execute(_ACTIVE_OVERRIDES_SQL, [[outage_id]])
        r = await cur.fetchone()
    if r is None:
        return None
    return {"override_id": r[0], "etr_at": r[2], "reason": r[3], "set_by": r[4], "set_at": r[5]}


async def get_notice(db: Database, outage_id: int) -> NoticeRow | None:
    async with db.connection() as conn:
        return await get_notice_in(conn, outage_id)


async def get_notice_in(conn: AsyncConnection, outage_id: int) -> NoticeRow | None:
    """``get_notice`` in the caller's open transaction."""
    cur = await conn.execute(
        "SELECT outage_id, first_at, last_at, window_start, window_end, p50, updates_sent"
        " FROM etr_notices WHERE outage_id = %s",
        [outage_id],
    )
    r = await cur.fetchone()
    if r is None:
        return None
    return NoticeRow(
        r[0],
        r[1].timestamp(),
        r[2].timestamp(),
        r[3].timestamp(),
        r[4].timestamp(),
        r[5].timestamp(),
        r[6],
    )


async def save_notice(conn: AsyncConnection, notice: NoticeRow) -> None:
    """Record what customers were told, in the caller's transaction (with the outbox)."""
    await conn.execute(
        "INSERT INTO etr_notices"
        " (outage_id, first_at, last_at, window_start, window_end, p50, updates_sent)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (outage_id) DO UPDATE SET last_at = EXCLUDED.last_at,"
        " window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,"
        " p50 = EXCLUDED.p50, updates_sent = EXCLUDED.updates_sent",
        [
            notice.outage_id,
            utc_datetime(notice.first_at_s),
            utc_datetime(notice.last_at_s),
            utc_datetime(notice.window_start_s),
            utc_datetime(notice.window_end_s),
            utc_datetime(notice.p50_s),
            notice.updates_sent,
        ],
    )
