"""SQL for planned-work notices: consuming ``planned_outage_events``, the ``outages`` row each
planned job gets (``planned_notice_outages`` maps planned_id -> outage_id), the job's
customers, and the row's window on event time.

Functions taking ``conn`` run in the caller's transaction: an event's outage row, its notices
(the notifier's outbox) and its ``handled_at`` commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from gridwatch.store._database import Database
from gridwatch.store._places import device_places


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    event_id: int
    planned_id: str
    kind: str  # created | changed | cancelled
    version: int
    device_id: str
    zone: str
    starts_at_s: float
    ends_at_s: float
    reason: str
    short_notice: bool


@dataclass(frozen=True, slots=True)
class PlannedMapping:
    planned_id: str
    outage_id: int
    version: int
    cancelled: bool
    state: str


@dataclass(frozen=True, slots=True)
class PlannedScope:
    """Who a job on a device cuts off: the as-built subtree of the device (as the customer
    status page and the outage filters read it)."""

    place: str  # the place customers know (area, name; "" for none): the notice's "where"
    meters: int
    customer_ids: list[str]


async def claim_next_event(conn: AsyncConnection) -> PlannedEvent | None:
    """The oldest unhandled event, locked (SKIP LOCKED: consumers never share one). An event
    waits while an older event of the same job is unhandled, so a job's changes are told in
    the order they were made."""
    cur = await conn.execute(
        """
        SELECT e.event_id, e.planned_id, e.kind, e.version, e.device_id, e.zone, e.starts_at,
               e.ends_at, e.reason, e.short_notice
        FROM planned_outage_events e
        WHERE e.handled_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM planned_outage_events o
                          WHERE o.planned_id = e.planned_id AND o.handled_at IS NULL
                            AND o.event_id < e.event_id)
        ORDER BY e.event_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """
    )
    r = await cur.fetchone()
    if r is None:
        return None
    return PlannedEvent(
        int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), str(r[5]),
        r[6].timestamp(), r[7].timestamp(), str(r[8]), bool(r[9]),
    )  # fmt: skip


async def unhandled_events(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT count(*) FROM planned_outage_events WHERE handled_at IS NULL")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def mark_event_handled(
    conn: AsyncConnection,
    event_id: int,
    *,
    outage_id: int | None,
    outcome: str,
    detail: str,
    now_s: float,
) -> None:
    await conn.execute(
        "UPDATE planned_outage_events SET handled_at = %s, outage_id = %s, outcome = %s,"
        " detail = %s WHERE event_id = %s",
        [_ts(now_s), outage_id, outcome, detail[:2000], event_id],
    )


async def lock_mapping(conn: AsyncConnection, planned_id: str) -> PlannedMapping | None:
    cur = await conn.execute(
        "SELECT m.planned_id, m.outage_id, m.version, m.cancelled, o.state"
        " FROM planned_notice_outages m JOIN outages o USING (outage_id)"
        " WHERE m.planned_id = %s FOR UPDATE OF m, o",
        [planned_id],
    )
    r = await cur.fetchone()
    return None if r is None else PlannedMapping(str(r[0]), int(r[1]), int(r[2]), bool(r[3]), r[4])


async def device_scope(conn: AsyncConnection, device_id: str) -> PlannedScope:
    cur = await conn.execute(
        """
        WITH RECURSIVE sub(device_id) AS (
            SELECT device_id FROM devices WHERE device_id = %(d)s
            UNION ALL SELECT d.device_id FROM devices d JOIN sub ON d.parent_id = sub.device_id
        )
        SELECT count(*), coalesce(array_agg(DISTINCT m.customer_id)
                                  FILTER (WHERE m.customer_id IS NOT NULL), '{}')
        FROM meters m WHERE m.device_id IN (SELECT device_id FROM sub)
        """,
        {"d": device_id},
    )
    r = await cur.fetchone()
    place = (await device_places(conn, [device_id]))[device_id]
    meters, customers = (int(r[0]), sorted(r[1])) if r else (0, [])
    return PlannedScope(place, meters, customers)


async def _timeline(
    conn: AsyncConnection, outage_id: int, at_s: float, kind: str, detail: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO outage_timeline (outage_id, at, kind, detail) VALUES (%s, %s, %s, %s)",
        [outage_id, _ts(at_s), kind, Jsonb(detail)],
    )


async def create_planned_outage(
    conn: AsyncConnection, event: PlannedEvent, scope: PlannedScope, *, now_s: float
) -> int:
    """The job's outages row ('scheduled', nobody out yet; the ETR is the announced end) and
    its mapping. Returns the outage id."""
    start, end = _ts(event.starts_at_s), _ts(event.ends_at_s)
    cur = await conn.execute(
        "INSERT INTO outages (device_id, zone, state, cause, planned, started_at,"
        " etr_p10, etr_p50, etr_p90, etr_model_version, updated_at)"
        " VALUES (%s, %s, 'scheduled', 'planned', true, %s, %s, %s, %s, 'planned', %s)"
        " RETURNING outage_id",
        [event.device_id, event.zone, start, end, end, end, _ts(now_s)],
    )
    row = await cur.fetchone()
    assert row is not None
    outage_id = int(row[0])
    await conn.execute(
        "INSERT INTO planned_notice_outages"
        " (planned_id, outage_id, version, starts_at, ends_at, meters, customers, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            event.planned_id,
            outage_id,
            event.version,
            _ts(event.starts_at_s),
            _ts(event.ends_at_s),
            scope.meters,
            len(scope.customer_ids),
            _ts(now_s),
        ],
    )
    await _timeline(
        conn,
        outage_id,
        now_s,
        "planned_scheduled",
        {"planned_id": event.planned_id, "version": event.version, "reason": event.reason[:500]},
    )
    return outage_id


async def change_planned_outage(
    conn: AsyncConnection, outage_id: int, event: PlannedEvent, scope: PlannedScope, *, now_s: float
) -> None:
    """Move the job's window (a job not yet started stays 'scheduled')."""
    await conn.execute(
        "UPDATE outages SET started_at = %(s)s, etr_p10 = %(e)s, etr_p50 = %(e)s,"
        " etr_p90 = %(e)s, updated_at = %(now)s WHERE outage_id = %(o)s",
        {
            "s": _ts(event.starts_at_s),
            "e": _ts(event.ends_at_s),
            "o": outage_id,
            "now": _ts(now_s),
        },
    )
    await conn.execute(
        "UPDATE planned_notice_outages SET version = %s, starts_at = %s, ends_at = %s,"
        " meters = %s, customers = %s, updated_at = %s WHERE outage_id = %s",
        [
            event.version,
            _ts(event.starts_at_s),
            _ts(event.ends_at_s),
            scope.meters,
            len(scope.customer_ids),
            _ts(now_s),
            outage_id,
        ],
    )
    await _timeline(
        conn,
        outage_id,
        now_s,
        "planned_changed",
        {
            "planned_id": event.planned_id,
            "version": event.version,
            "starts_at": _ts(event.starts_at_s).isoformat(),
            "ends_at": _ts(event.ends_at_s).isoformat(),
        },
    )


async def cancel_planned_outage(
    conn: AsyncConnection, mapping: PlannedMapping, event: PlannedEvent, *, now_s: float
) -> str:
    """Call the job off: 'cancelled' if it had not started; if customers were already out,
    the interruption happened and ends now ('restored'). Returns the new state."""
    state = "restored" if mapping.state in ("confirmed", "partially_restored") else "cancelled"
    if mapping.state in ("restored", "cancelled"):
        state = mapping.state
    await conn.execute(
        "UPDATE outages SET state = %s, restored_at = CASE WHEN %s = 'restored'"
        " THEN coalesce(restored_at, %s) ELSE restored_at END, updated_at = %s"
        " WHERE outage_id = %s",
        [state, state, _ts(now_s), _ts(now_s), mapping.outage_id],
    )
    await conn.execute(
        "UPDATE planned_notice_outages SET version = %s, cancelled = true, updated_at = %s"
        " WHERE outage_id = %s",
        [event.version, _ts(now_s), mapping.outage_id],
    )
    await _timeline(
        conn,
        mapping.outage_id,
        now_s,
        "planned_cancelled",
        {"planned_id": event.planned_id, "version": event.version},
    )
    return state


async def customers_told(conn: AsyncConnection, outage_id: int) -> list[str]:
    """Customers a notice or reminder of this job reached (or may have: outcome unknown)."""
    cur = await conn.execute(
        "SELECT DISTINCT customer_id FROM notifications WHERE outage_id = %s"
        " AND kind IN ('planned_notice', 'planned_reminder') AND status IN ('sent', 'sending')"
        " ORDER BY customer_id",
        [outage_id],
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def advance_planned_windows(db: Database, now_s: float) -> tuple[int, int]:
    """On event time: jobs whose window began become 'confirmed' with their scope as the
    customers out; jobs whose window ended become 'restored' at the announced end.
    Returns (started, ended)."""
    now = _ts(now_s)
    async with db.connection() as conn:
        cur = await conn.execute(
            """
            UPDATE outages o SET state = 'confirmed', confirmed_at = m.starts_at,
                   meters_affected = m.meters, customers_affected = m.customers,
                   updated_at = %(now)s
            FROM planned_notice_outages m
            WHERE m.outage_id = o.outage_id AND NOT m.cancelled AND o.state = 'scheduled'
              AND m.starts_at <= %(now)s
            RETURNING o.outage_id, m.starts_at
            """,
            {"now": now},
        )
        started = await cur.fetchall()
        cur = await conn.execute(
            """
            UPDATE outages o SET state = 'restored', restored_at = m.ends_at,
                   meters_restored = o.meters_affected,
                   customers_restored = o.customers_affected, updated_at = %(now)s
            FROM planned_notice_outages m
            WHERE m.outage_id = o.outage_id AND NOT m.cancelled AND o.state = 'confirmed'
              AND m.ends_at <= %(now)s
            RETURNING o.outage_id, m.ends_at
            """,
            {"now": now},
        )
        ended = await cur.fetchall()
        for outage_id, at in started:
            await _timeline(conn, int(outage_id), at.timestamp(), "planned_started", {})
        for outage_id, at in ended:
            await _timeline(conn, int(outage_id), at.timestamp(), "planned_ended", {})
    return len(started), len(ended)
