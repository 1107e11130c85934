"""Planned work's outages: the outage domain owns their lifecycle as it owns detected ones.

A planned job is an outages row from the moment it is announced ('scheduled', nobody out),
moves with its window, starts and ends with it on event time ('confirmed', then 'restored'
at the announced end), and when called off is 'cancelled', or 'restored' now if customers
were already out. The planned-notice consumer (``gridwatch.notices.planned_notices``) calls
these in its transaction, beside the notices it enqueues; the statements are the store's.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from gridwatch.core.clock import utc_datetime
from gridwatch.store import Database
from gridwatch.store import outages as store
from gridwatch.store.planned import (
    PlannedEvent,
    PlannedMapping,
    PlannedScope,
    cancel_planned_mapping_in,
    insert_planned_mapping_in,
    update_planned_mapping_in,
)


async def open_planned_outage(
    conn: AsyncConnection, event: PlannedEvent, scope: PlannedScope, *, now_s: float
) -> int:
    """The job's outages row ('scheduled', nobody out yet; the ETR is the announced end) and
    its mapping. Returns the outage id."""
    outage_id = await store.insert_planned_outage_in(
        conn,
        device_id=event.device_id,
        zone=event.zone,
        starts_at=utc_datetime(event.starts_at_s),
        ends_at=utc_datetime(event.ends_at_s),
        now=utc_datetime(now_s),
    )
    await insert_planned_mapping_in(conn, event, outage_id, scope, now_s=now_s)
    await store.add_timeline_in(
        conn,
        outage_id,
        utc_datetime(now_s),
        "planned_scheduled",
        {"planned_id": event.planned_id, "version": event.version, "reason": event.reason[:500]},
    )
    return outage_id


async def move_planned_outage(
    conn: AsyncConnection, outage_id: int, event: PlannedEvent, scope: PlannedScope, *, now_s: float
) -> None:
    """Move the job's window (a job not yet started stays 'scheduled')."""
    await store.move_planned_outage_in(
        conn,
        outage_id,
        starts_at=utc_datetime(event.starts_at_s),
        ends_at=utc_datetime(event.ends_at_s),
        now=utc_datetime(now_s),
    )
    await update_planned_mapping_in(conn, outage_id, event, scope, now_s=now_s)
    await store.add_timeline_in(
        conn,
        outage_id,
        utc_datetime(now_s),
        "planned_changed",
        {
            "planned_id": event.planned_id,
            "version": event.version,
            "starts_at": utc_datetime(event.starts_at_s).isoformat(),
            "ends_at": utc_datetime(event.ends_at_s).isoformat(),
        },
    )


async def call_off_planned_outage(
    conn: AsyncConnection, mapping: PlannedMapping, event: PlannedEvent, *, now_s: float
) -> str:
    """Call the job off: 'cancelled' if it had not started; if customers were already out,
    the interruption happened and ends now ('restored'). Returns the new state."""
    state = "restored" if mapping.state in ("confirmed", "partially_restored") else "cancelled"
    if mapping.state in ("restored", "cancelled"):
        state = mapping.state
    await store.close_planned_outage_in(conn, mapping.outage_id, state, now=utc_datetime(now_s))
    await cancel_planned_mapping_in(conn, mapping.outage_id, event, now_s=now_s)
    await store.add_timeline_in(
        conn,
        mapping.outage_id,
        utc_datetime(now_s),
        "planned_cancelled",
        {"planned_id": event.planned_id, "version": event.version},
    )
    return state


async def advance_planned_windows(db: Database, now_s: float) -> tuple[int, int]:
    """On event time: jobs whose window began are 'confirmed' with their scope as the
    customers out; jobs whose window ended are 'restored' at the announced end. Returns
    (started, ended)."""
    return await store.advance_planned_windows(db, now_s)
