"""SQL for planned work: the jobs (``planned_outages``) operators create, change and cancel,
each change an event (``planned_outage_events``) that the planned-notice loop consumes; the
outage row each job gets (``planned_notice_outages`` maps planned_id -> outage_id; the row
itself is written by ``store.outages``); and who a job's notices reached.

Functions taking ``conn`` run in the caller's transaction: an event's outage row, its notices
(the notifier's outbox) and its ``handled_at`` commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import LiteralString, NamedTuple

from psycopg import AsyncConnection

from gridwatch.core.clock import utc_datetime
from gridwatch.store.audit import Actor, record_audit_in
from gridwatch.store.database import Database, Row, event_time, fetch_row, fetch_rows
from gridwatch.store.outages import ActionRefused

# --- jobs, as operators schedule them ------------------------------------------------------


class PlannedRow(NamedTuple):
    planned_id: str
    device_id: str
    zone: str
    starts_s: float
    ends_s: float
    reason: str = ""


async def add_planned_outage(db: Database, row: PlannedRow, *, now_s: float) -> None:
    """``now_s``: when it was scheduled (the service clock), its created_at/updated_at."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO planned_outages (planned_id, device_id, zone, starts_at, ends_at, reason,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                row.planned_id,
                row.device_id,
                row.zone,
                event_time(row.starts_s),
                event_time(row.ends_s),
                row.reason,
                event_time(now_s),
                event_time(now_s),
            ],
        )


async def planned_outages_between(db: Database, from_s: float, to_s: float) -> list[PlannedRow]:
    """Planned outages whose window overlaps [from, to)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT planned_id, device_id, zone, starts_at, ends_at, reason FROM planned_outages"
            " WHERE starts_at < %s AND ends_at > %s ORDER BY starts_at, planned_id",
            [event_time(to_s), event_time(from_s)],
        )
        return [
            PlannedRow(str(p), str(d), str(z), s.timestamp(), e.timestamp(), str(r))
            for p, d, z, s, e, r in await cur.fetchall()
        ]


_PLANNED_COLUMNS: LiteralString = (
    "planned_id, device_id, zone, starts_at, ends_at, reason, created_at, updated_at, version,"
    " notice_override, created_by"
)


async def _planned_event(
    conn: AsyncConnection, kind: str, row: Row, short_notice: bool, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO planned_outage_events (planned_id, kind, version, device_id, zone,"
        " starts_at, ends_at, reason, short_notice, at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            row["planned_id"],
            kind,
            row["version"],
            row["device_id"],
            row["zone"],
            row["starts_at"],
            row["ends_at"],
            row["reason"],
            short_notice,
            at,
        ],
    )


async def create_planned(
    db: Database,
    actor: Actor,
    *,
    planned_id: str,
    device_id: str,
    zone: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    override: bool,
    warnings: Sequence[str],
    at: datetime,
) -> Row:
    """``at``: when the operator acted (service clock): created_at, updated_at, the event's
    and the audit row's time."""
    async with db.connection() as conn:
        exists = await fetch_row(
            conn, "SELECT 1 AS x FROM planned_outages WHERE planned_id = %s", [planned_id]
        )
        if exists is not None:
            raise ActionRefused(f"planned outage {planned_id} already exists")
        row = await fetch_row(
            conn,
            "INSERT INTO planned_outages (planned_id, device_id, zone, starts_at, ends_at, reason,"
            " notice_override, created_by, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING " + _PLANNED_COLUMNS,
            [planned_id, device_id, zone, starts_at, ends_at, reason, override, actor.name, at, at],
        )
        assert row is not None
        await _planned_event(conn, "created", row, bool(warnings), at)
        await record_audit_in(
            conn,
            actor,
            action="planned.create",
            target_kind="planned_outage",
            target_id=planned_id,
            reason=reason,
            at=at,
            detail={"override": override, "warnings": list(warnings)},
        )
    return row


async def get_planned(db: Database, planned_id: str) -> Row | None:
    async with db.connection() as conn:
        return await fetch_row(
            conn,
            "SELECT " + _PLANNED_COLUMNS + " FROM planned_outages WHERE planned_id = %s",
            [planned_id],
        )


async def list_planned(
    db: Database, *, ends_after: datetime, zone: str | None, limit: int
) -> list[Row]:
    async with db.connection() as conn:
        return await fetch_rows(
            conn,
            "SELECT " + _PLANNED_COLUMNS + " FROM planned_outages WHERE ends_at > %(after)s"
            " AND (%(zone)s::text IS NULL OR zone = %(zone)s)"
            " ORDER BY starts_at, planned_id LIMIT %(limit)s",
            {"after": ends_after, "zone": zone, "limit": limit},
        )


async def change_planned(
    db: Database,
    actor: Actor,
    planned_id: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    change_reason: str,
    override: bool,
    warnings: Sequence[str],
    at: datetime,
) -> Row:
    async with db.connection() as conn:
        old = await fetch_row(
            conn,
            "SELECT " + _PLANNED_COLUMNS + " FROM planned_outages WHERE planned_id = %s FOR UPDATE",
            [planned_id],
        )
        if old is None:
            raise ActionRefused(f"planned outage {planned_id} does not exist", 404)
        row = await fetch_row(
            conn,
            "UPDATE planned_outages SET starts_at = %s, ends_at = %s, reason = %s,"
            " notice_override = notice_override OR %s, version = version + 1, updated_at = %s"
            " WHERE planned_id = %s RETURNING " + _PLANNED_COLUMNS,
            [starts_at, ends_at, reason, override, at, planned_id],
        )
        assert row is not None
        await _planned_event(conn, "changed", row, bool(warnings), at)
        await record_audit_in(
            conn,
            actor,
            action="planned.change",
            target_kind="planned_outage",
            target_id=planned_id,
            reason=change_reason,
            at=at,
            detail={
                "from": {"starts_at": str(old["starts_at"]), "ends_at": str(old["ends_at"])},
                "to": {"starts_at": str(starts_at), "ends_at": str(ends_at)},
                "override": override,
                "warnings": list(warnings),
            },
        )
    return row


async def cancel_planned(
    db: Database, actor: Actor, planned_id: str, reason: str, at: datetime
) -> Row:
    """Remove the job from planned_outages (detection stops suppressing in its window) and
    leave a ``cancelled`` event for the notifier."""
    async with db.connection() as conn:
        row = await fetch_row(
            conn,
            "DELETE FROM planned_outages WHERE planned_id = %s RETURNING " + _PLANNED_COLUMNS,
            [planned_id],
        )
        if row is None:
            raise ActionRefused(f"planned outage {planned_id} does not exist", 404)
        row["version"] = int(row["version"]) + 1
        await _planned_event(conn, "cancelled", row, False, at)
        await record_audit_in(
            conn,
            actor,
            action="planned.cancel",
            target_kind="planned_outage",
            target_id=planned_id,
            reason=reason,
            at=at,
        )
    return row


async def planned_events(db: Database, planned_id: str) -> list[Row]:
    async with db.connection() as conn:
        return await fetch_rows(
            conn,
            "SELECT event_id, kind, version, starts_at, ends_at, short_notice, at, handled_at"
            " FROM planned_outage_events WHERE planned_id = %s ORDER BY event_id",
            [planned_id],
        )


async def customer_planned(db: Database, customer_id: str, *, ends_after: datetime) -> list[Row]:
    """Planned work upstream of any of the customer's meters that has not ended."""
    async with db.connection() as conn:
        return await fetch_rows(
            conn,
            "WITH RECURSIVE up(device_id) AS ("
            " SELECT device_id FROM meters WHERE customer_id = %(c)s"
            " UNION SELECT d.parent_id FROM devices d JOIN up USING (device_id)"
            "  WHERE d.parent_id IS NOT NULL)"
            " SELECT p.planned_id, p.starts_at, p.ends_at, p.reason FROM planned_outages p"
            " WHERE p.device_id IN (SELECT device_id FROM up) AND p.ends_at > %(after)s"
            " ORDER BY p.starts_at LIMIT 20",
            {"c": customer_id, "after": ends_after},
        )


# --- the notice loop's side: events, the job's outage row, who was told --------------------


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
    status page and the outage filters read it). ``gridwatch.topology.device_scope`` makes
    it: the place is the topology's words, the counts ``topology.subtree_customers``."""

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
        [utc_datetime(now_s), outage_id, outcome, detail[:2000], event_id],
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


async def insert_planned_mapping_in(
    conn: AsyncConnection, event: PlannedEvent, outage_id: int, scope: PlannedScope, *, now_s: float
) -> None:
    """The job's mapping to its outages row."""
    await conn.execute(
        "INSERT INTO planned_notice_outages"
        " (planned_id, outage_id, version, starts_at, ends_at, meters, customers, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            event.planned_id,
            outage_id,
            event.version,
            utc_datetime(event.starts_at_s),
            utc_datetime(event.ends_at_s),
            scope.meters,
            len(scope.customer_ids),
            utc_datetime(now_s),
        ],
    )


async def update_planned_mapping_in(
    conn: AsyncConnection, outage_id: int, event: PlannedEvent, scope: PlannedScope, *, now_s: float
) -> None:
    """The job's mapping follows its new version (window and scope)."""
    await conn.execute(
        "UPDATE planned_notice_outages SET version = %s, starts_at = %s, ends_at = %s,"
        " meters = %s, customers = %s, updated_at = %s WHERE outage_id = %s",
        [
            event.version,
            utc_datetime(event.starts_at_s),
            utc_datetime(event.ends_at_s),
            scope.meters,
            len(scope.customer_ids),
            utc_datetime(now_s),
            outage_id,
        ],
    )


async def cancel_planned_mapping_in(
    conn: AsyncConnection, outage_id: int, event: PlannedEvent, *, now_s: float
) -> None:
    """The job's mapping marked called off (at the cancelling version)."""
    await conn.execute(
        "UPDATE planned_notice_outages SET version = %s, cancelled = true, updated_at = %s"
        " WHERE outage_id = %s",
        [event.version, utc_datetime(now_s), outage_id],
    )


async def customers_told(conn: AsyncConnection, outage_id: int) -> list[str]:
    """Customers a notice or reminder of this job reached (or may have: outcome unknown)."""
    cur = await conn.execute(
        "SELECT DISTINCT customer_id FROM notifications WHERE outage_id = %s"
        " AND kind IN ('planned_notice', 'planned_reminder') AND status IN ('sent', 'sending')"
        " ORDER BY customer_id",
        [outage_id],
    )
    return [str(r[0]) for r in await cur.fetchall()]
