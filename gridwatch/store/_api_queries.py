"""SQL behind the control API: the outage list and detail, operator actions on outages,
planned work, topology browse/search, meters, customers, the notification log and the
public summary. Rows come back as dicts keyed by column name; the API shapes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gridwatch._errors import GridwatchError
from gridwatch.store._audit import Actor, record_audit_in
from gridwatch.store._database import Database

Row = dict[str, Any]
OPEN_STATES = ("predicted", "confirmed", "partially_restored")
CLOSED_STATES = ("restored", "cancelled")

_OUTAGE_COLUMNS: LiteralString = (
    "o.outage_id, o.device_id, o.zone, o.state, o.cause, o.planned, o.started_at,"
    " o.confirmed_at, o.restored_at, o.confidence, o.meters_affected, o.customers_affected,"
    " o.meters_restored, o.customers_restored, o.etr_p10, o.etr_p50, o.etr_p90,"
    " o.etr_model_version, o.parent_outage_id, o.updated_at, o.scope"
)


class ActionRefused(GridwatchError):
    """An operator action does not apply (wrong state, unknown target). ``status`` is the
    HTTP status the API answers with (404 unknown, 409 conflict, 422 unusable input)."""

    def __init__(self, reason: str, status: int = 409) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


async def _fetch_all(
    conn: AsyncConnection, query: sql.Composed | sql.SQL | LiteralString, params: Any
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())


async def _fetch_one(
    conn: AsyncConnection, query: sql.Composed | sql.SQL | LiteralString, params: Any
) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


# --- outage list and detail ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutageFilter:
    states: Sequence[str] = ()
    active: bool | None = None
    planned: bool | None = None
    zone: str | None = None
    device_id: str | None = None
    feeder_id: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    min_customers: int | None = None
    max_customers: int | None = None


_SUBTREE: LiteralString = (
    "WITH RECURSIVE sub(device_id) AS ("
    " SELECT device_id FROM devices WHERE device_id = {root}"
    " UNION ALL SELECT d.device_id FROM devices d JOIN sub ON d.parent_id = sub.device_id)"
    " SELECT device_id FROM sub"
)


async def list_outages(
    db: Database, flt: OutageFilter, *, limit: int, after: tuple[datetime, int] | None = None
) -> list[Row]:
    """Newest first by (started_at, outage_id); ``after`` is the last row of the previous
    page. Only the filters given are in the SQL, so each query gets its own good plan."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit}
    if flt.states:
        where.append(sql.SQL("o.state = ANY(%(states)s)"))
        params["states"] = list(flt.states)
    if flt.active is True:
        where.append(sql.SQL("o.state NOT IN ('scheduled', 'restored', 'cancelled')"))
    elif flt.active is False:
        where.append(sql.SQL("o.state IN ('restored', 'cancelled')"))
    if flt.planned is not None:
        where.append(sql.SQL("o.planned = %(planned)s"))
        params["planned"] = flt.planned
    if flt.zone is not None:
        where.append(sql.SQL("o.zone = %(zone)s"))
        params["zone"] = flt.zone
    if flt.device_id is not None:
        where.append(sql.SQL("o.device_id = %(device)s"))
        params["device"] = flt.device_id
    if flt.feeder_id is not None:
        where.append(sql.SQL("o.device_id IN (" + _SUBTREE.format(root="%(feeder)s") + ")"))
        params["feeder"] = flt.feeder_id
    if flt.started_after is not None:
        where.append(sql.SQL("o.started_at >= %(started_after)s"))
        params["started_after"] = flt.started_after
    if flt.started_before is not None:
        where.append(sql.SQL("o.started_at < %(started_before)s"))
        params["started_before"] = flt.started_before
    if flt.min_customers is not None:
        where.append(sql.SQL("o.customers_affected >= %(min_c)s"))
        params["min_c"] = flt.min_customers
    if flt.max_customers is not None:
        where.append(sql.SQL("o.customers_affected <= %(max_c)s"))
        params["max_c"] = flt.max_customers
    if after is not None:
        where.append(sql.SQL("(o.started_at, o.outage_id) < (%(after_ts)s, %(after_id)s)"))
        params["after_ts"], params["after_id"] = after
    query = sql.SQL(
        "SELECT " + _OUTAGE_COLUMNS + " FROM outages o {where}"
        " ORDER BY o.started_at DESC, o.outage_id DESC LIMIT %(limit)s"
    ).format(where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    async with db.connection() as conn:
        return await _fetch_all(conn, query, params)


async def get_outage(db: Database, outage_id: int) -> Row | None:
    async with db.connection() as conn:
        return await _fetch_one(
            conn,
            "SELECT " + _OUTAGE_COLUMNS + ", d.kind AS device_kind, d.name AS device_name,"
            " d.lat AS device_lat, d.lon AS device_lon"
            " FROM outages o LEFT JOIN devices d USING (device_id) WHERE o.outage_id = %s",
            [outage_id],
        )


async def outage_meters_page(
    db: Database, outage_id: int, *, limit: int, after_meter: str | None = None
) -> list[Row]:
    """Affected meters by meter id, with their customer's contact (the API masks it)."""
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT m.meter_id, m.customer_id, m.status, m.restored_at,"
            " c.account_no, c.name AS customer_name, c.phone_e164"
            " FROM outage_meters m LEFT JOIN customers c USING (customer_id)"
            " WHERE m.outage_id = %(id)s AND (%(after)s::text IS NULL OR m.meter_id > %(after)s)"
            " ORDER BY m.meter_id LIMIT %(limit)s",
            {"id": outage_id, "after": after_meter, "limit": limit},
        )


async def outage_timeline(db: Database, outage_id: int, *, limit: int) -> list[Row]:
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT at, kind, detail FROM outage_timeline WHERE outage_id = %s"
            " ORDER BY at, seq LIMIT %s",
            [outage_id, limit],
        )


async def outage_etrs(db: Database, outage_id: int, *, limit: int) -> list[Row]:
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT computed_at, p10, p50, p90, source, model_version, inputs FROM etr_history"
            " WHERE outage_id = %s ORDER BY computed_at DESC, etr_id DESC LIMIT %s",
            [outage_id, limit],
        )


async def active_override(db: Database, outage_id: int) -> Row | None:
    async with db.connection() as conn:
        return await _fetch_one(
            conn,
            "SELECT override_id, etr_at, reason, set_by, set_at FROM etr_overrides"
            " WHERE outage_id = %s AND cleared_at IS NULL",
            [outage_id],
        )


async def notifications_page(
    db: Database,
    *,
    outage_id: int | None = None,
    customer_id: str | None = None,
    limit: int,
    before_id: int | None = None,
) -> list[Row]:
    """Notifications newest first; ``address`` is the phone/endpoint (the API masks it)."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit}
    if outage_id is not None:
        where.append(sql.SQL("outage_id = %(outage)s"))
        params["outage"] = outage_id
    if customer_id is not None:
        where.append(sql.SQL("customer_id = %(customer)s"))
        params["customer"] = customer_id
    if before_id is not None:
        where.append(sql.SQL("notification_id < %(before)s"))
        params["before"] = before_id
    query = sql.SQL(
        "SELECT notification_id, customer_id, outage_id, kind, channel, language, status,"
        " attempts, created_at, sent_at, address, delivery_status FROM notifications {where}"
        " ORDER BY notification_id DESC LIMIT %(limit)s"
    ).format(where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    async with db.connection() as conn:
        return await _fetch_all(conn, query, params)


async def notification_counts(db: Database, outage_id: int) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await _fetch_all(
            conn,
            "SELECT status, count(*) AS n FROM notifications WHERE outage_id = %s GROUP BY status",
            [outage_id],
        )
    return {str(r["status"]): int(r["n"]) for r in rows}


# --- operator actions on outages ----------------------------------------------------------


async def _lock_outage(conn: AsyncConnection, outage_id: int) -> Row:
    row = await _fetch_one(
        conn,
        "SELECT outage_id, state, started_at, zone FROM outages WHERE outage_id = %s FOR UPDATE",
        [outage_id],
    )
    if row is None:
        raise ActionRefused(f"outage {outage_id} does not exist", 404)
    return row


async def _timeline(
    conn: AsyncConnection, outage_id: int, at: datetime, kind: str, detail: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO outage_timeline (outage_id, at, kind, detail) VALUES (%s, %s, %s, %s)",
        [outage_id, at, kind, Jsonb(detail)],
    )


_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "confirm": ("predicted",),
    "cancel": ("predicted", "confirmed"),
    "restore": OPEN_STATES,
}


async def apply_outage_action(
    db: Database, actor: Actor, outage_id: int, action: str, reason: str, at: datetime
) -> str:
    """confirm / cancel (a false positive) / restore, with timeline and audit rows, in one
    transaction. Returns the new state; raises ActionRefused."""
    if action not in _ALLOWED_FROM:
        raise ActionRefused(f"unknown action {action!r}", 422)
    async with db.connection() as conn:
        row = await _lock_outage(conn, outage_id)
        state = str(row["state"])
        if state not in _ALLOWED_FROM[action]:
            raise ActionRefused(
                f"cannot {action} outage {outage_id}: it is {state}"
                f" (allowed from {', '.join(_ALLOWED_FROM[action])})"
            )
        acted_at = at  # the row's updated_at and the audit row: when the operator acted
        if at < row["started_at"]:
            at = row["started_at"]  # an action never predates the outage it acts on
        if action == "confirm":
            new_state = "confirmed"
            await conn.execute(
                "UPDATE outages SET state = 'confirmed', confirmed_at = coalesce(confirmed_at, %s),"
                " updated_at = %s WHERE outage_id = %s",
                [at, acted_at, outage_id],
            )
        elif action == "cancel":
            new_state = "cancelled"
            await conn.execute(
                "UPDATE outages SET state = 'cancelled', updated_at = %s WHERE outage_id = %s",
                [acted_at, outage_id],
            )
        else:
            new_state = "restored"
            await conn.execute(
                "UPDATE outage_meters SET status = 'restored', restored_at = %s"
                " WHERE outage_id = %s AND status IN ('out', 'unverified')",
                [at, outage_id],
            )
            await conn.execute(
                "UPDATE outages SET state = 'restored', restored_at = %s,"
                " meters_restored = meters_affected, customers_restored = customers_affected,"
                " updated_at = %s WHERE outage_id = %s",
                [at, acted_at, outage_id],
            )
        detail = {"by": actor.name, "reason": reason, "from": state, "operator": True}
        await _timeline(conn, outage_id, at, f"operator_{action}", detail)
        await record_audit_in(
            conn,
            actor,
            action=f"outage.{action}",
            target_kind="outage",
            target_id=str(outage_id),
            reason=reason,
            at=acted_at,
            detail={"from": state, "to": new_state},
        )
    return new_state


async def merge_outages(
    db: Database, actor: Actor, outage_id: int, into_id: int, reason: str, at: datetime
) -> int:
    """Fold ``outage_id`` into ``into_id``: its meters move over, it becomes cancelled with
    ``merged_into``. Returns the surviving outage's customers_affected."""
    if outage_id == into_id:
        raise ActionRefused("an outage cannot be merged into itself", 422)
    async with db.connection() as conn:
        # Lock in id order so two opposite merges cannot deadlock.
        first, second = sorted((outage_id, into_id))
        rows = {first: await _lock_outage(conn, first), second: await _lock_outage(conn, second)}
        for oid in (outage_id, into_id):
            if rows[oid]["state"] not in OPEN_STATES:
                raise ActionRefused(f"cannot merge: outage {oid} is {rows[oid]['state']}")
        await conn.execute(
            "INSERT INTO outage_meters (outage_id, meter_id, customer_id, status, restored_at)"
            " SELECT %s, meter_id, customer_id, status, restored_at FROM outage_meters"
            " WHERE outage_id = %s ON CONFLICT (outage_id, meter_id) DO NOTHING",
            [into_id, outage_id],
        )
        await conn.execute(
            "UPDATE outages SET state = 'cancelled', parent_outage_id = %s, updated_at = %s"
            " WHERE outage_id = %s",
            [into_id, at, outage_id],
        )
        counted = await _fetch_one(
            conn,
            "UPDATE outages o SET meters_affected = greatest(o.meters_affected, c.meters),"
            " customers_affected = greatest(o.customers_affected, c.customers),"
            " started_at = least(o.started_at, %(started)s), updated_at = %(at)s"
            " FROM (SELECT count(*) AS meters, count(DISTINCT customer_id) AS customers"
            "       FROM outage_meters WHERE outage_id = %(into)s) c"
            " WHERE o.outage_id = %(into)s RETURNING o.customers_affected",
            {"into": into_id, "started": rows[outage_id]["started_at"], "at": at},
        )
        detail = {"by": actor.name, "reason": reason, "operator": True}
        await _timeline(conn, outage_id, at, "merged_into", {**detail, "into": into_id})
        await _timeline(conn, into_id, at, "merged", {**detail, "merged": [outage_id]})
        await record_audit_in(
            conn,
            actor,
            action="outage.merge",
            target_kind="outage",
            target_id=str(outage_id),
            reason=reason,
            at=at,
            detail={"into": into_id},
        )
    assert counted is not None
    return int(counted["customers_affected"])


# --- planned work -------------------------------------------------------------------------

_PLANNED_COLUMNS: LiteralString = (
    "planned_id, device_id, zone, starts_at, ends_at, reason, created_at, updated_at, version,"
    " notice_override, created_by"
)


async def device_zone(db: Database, device_id: str) -> str | None:
    async with db.connection() as conn:
        row = await _fetch_one(conn, "SELECT zone FROM devices WHERE device_id = %s", [device_id])
    return None if row is None else str(row["zone"])


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
        exists = await _fetch_one(
            conn, "SELECT 1 AS x FROM planned_outages WHERE planned_id = %s", [planned_id]
        )
        if exists is not None:
            raise ActionRefused(f"planned outage {planned_id} already exists")
        row = await _fetch_one(
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
        return await _fetch_one(
            conn,
            "SELECT " + _PLANNED_COLUMNS + " FROM planned_outages WHERE planned_id = %s",
            [planned_id],
        )


async def list_planned(
    db: Database, *, ends_after: datetime, zone: str | None, limit: int
) -> list[Row]:
    async with db.connection() as conn:
        return await _fetch_all(
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
        old = await _fetch_one(
            conn,
            "SELECT " + _PLANNED_COLUMNS + " FROM planned_outages WHERE planned_id = %s FOR UPDATE",
            [planned_id],
        )
        if old is None:
            raise ActionRefused(f"planned outage {planned_id} does not exist", 404)
        row = await _fetch_one(
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
        row = await _fetch_one(
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
        return await _fetch_all(
            conn,
            "SELECT event_id, kind, version, starts_at, ends_at, short_notice, at, handled_at"
            " FROM planned_outage_events WHERE planned_id = %s ORDER BY event_id",
            [planned_id],
        )


# --- topology -----------------------------------------------------------------------------

_DEVICE_COLUMNS: LiteralString = (
    "d.device_id, d.parent_id, d.kind, d.zone, d.name, d.normally_open, d.is_open,"
    " d.has_scada, d.lat, d.lon"
)


async def get_device(db: Database, device_id: str) -> Row | None:
    async with db.connection() as conn:
        return await _fetch_one(
            conn,
            "SELECT " + _DEVICE_COLUMNS + ","
            " (SELECT count(*) FROM devices c WHERE c.parent_id = d.device_id) AS children,"
            " (SELECT count(*) FROM meters m WHERE m.device_id = d.device_id) AS meters,"
            " (SELECT count(*) FROM outages o WHERE o.device_id = d.device_id"
            "   AND o.state NOT IN ('scheduled', 'restored', 'cancelled')) AS open_outages"
            " FROM devices d WHERE d.device_id = %s",
            [device_id],
        )


async def device_children(
    db: Database, parent_id: str | None, *, limit: int, after: str | None
) -> list[Row]:
    """Children of ``parent_id`` (roots when None), by id, with their open outage count."""
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT " + _DEVICE_COLUMNS + ","
            " (SELECT count(*) FROM outages o WHERE o.device_id = d.device_id"
            "   AND o.state NOT IN ('scheduled', 'restored', 'cancelled')) AS open_outages"
            " FROM devices d WHERE d.parent_id IS NOT DISTINCT FROM %(parent)s"
            " AND (%(after)s::text IS NULL OR d.device_id > %(after)s)"
            " ORDER BY d.device_id LIMIT %(limit)s",
            {"parent": parent_id, "after": after, "limit": limit},
        )


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """WGS84 degrees, min < max (checked by the API); no wrap across the antimeridian."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float


async def device_map_page(
    db: Database, *, bbox: BoundingBox | None, limit: int, after: str | None
) -> tuple[list[Row], int, int]:
    """What a map draws: devices by id (``limit + 1`` rows, so the caller sees whether there
    are more), each with the worst open outage state on it; plus how many devices match and
    how many of those have a position. Without ``bbox`` every device comes, positioned or
    not, so the client can follow the tree through devices that have no position."""
    box = {
        "has_box": bbox is not None,
        "min_lat": bbox.min_lat if bbox else None,
        "max_lat": bbox.max_lat if bbox else None,
        "min_lon": bbox.min_lon if bbox else None,
        "max_lon": bbox.max_lon if bbox else None,
    }
    where: LiteralString = (
        " (NOT %(has_box)s OR (d.lat BETWEEN %(min_lat)s AND %(max_lat)s"
        "  AND d.lon BETWEEN %(min_lon)s AND %(max_lon)s))"
    )
    async with db.connection() as conn:
        rows = await _fetch_all(
            conn,
            # Same ranking as the dashboard's tree: confirmed > partly restored > predicted.
            "WITH worst AS ("
            " SELECT device_id, max(CASE state WHEN 'confirmed' THEN 3"
            "   WHEN 'partially_restored' THEN 2 ELSE 1 END) AS rank"
            " FROM outages WHERE state IN ('predicted', 'confirmed', 'partially_restored')"
            " GROUP BY device_id)"
            " SELECT d.device_id, d.parent_id, d.kind, d.name, d.lat, d.lon,"
            " CASE w.rank WHEN 3 THEN 'confirmed' WHEN 2 THEN 'partially_restored'"
            "   WHEN 1 THEN 'predicted' END AS open_state"
            " FROM devices d LEFT JOIN worst w ON w.device_id = d.device_id"
            " WHERE" + where + " AND (%(after)s::text IS NULL OR d.device_id > %(after)s)"
            " ORDER BY d.device_id LIMIT %(limit)s",
            {**box, "after": after, "limit": limit + 1},
        )
        counts = await _fetch_one(
            conn,
            "SELECT count(*) AS total,"
            " count(*) FILTER (WHERE d.lat IS NOT NULL AND d.lon IS NOT NULL) AS positioned"
            " FROM devices d WHERE" + where,
            box,
        )
    assert counts is not None
    return rows, int(counts["total"]), int(counts["positioned"])


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_devices(db: Database, query: str, *, kind: str | None, limit: int) -> list[Row]:
    """Devices whose id starts with ``query`` or whose name starts with it (any case)."""
    prefix = _like_prefix(query)
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT * FROM ("
            " SELECT " + _DEVICE_COLUMNS + ", 0 AS open_outages FROM devices d"
            "  WHERE d.device_id LIKE %(p)s"
            " UNION"
            " SELECT " + _DEVICE_COLUMNS + ", 0 AS open_outages FROM devices d"
            "  WHERE lower(d.name) LIKE lower(%(p)s)) s"
            " WHERE (%(kind)s::text IS NULL OR s.kind = %(kind)s)"
            " ORDER BY s.device_id LIMIT %(limit)s",
            {"p": prefix, "kind": kind, "limit": limit},
        )


# --- meters and customers -----------------------------------------------------------------


async def get_meter(db: Database, meter_id: str) -> Row | None:
    async with db.connection() as conn:
        return await _fetch_one(
            conn,
            "SELECT m.meter_id, m.device_id, m.customer_id, m.zone,"
            " (SELECT o.outage_id FROM outage_meters om JOIN outages o USING (outage_id)"
            "   WHERE om.meter_id = m.meter_id AND om.status = 'out'"
            "   AND o.state NOT IN ('scheduled', 'restored', 'cancelled')"
            "   ORDER BY o.started_at DESC LIMIT 1) AS open_outage_id"
            " FROM meters m WHERE m.meter_id = %s",
            [meter_id],
        )


async def meter_readings(
    db: Database, meter_id: str, *, start: datetime, end: datetime, limit: int
) -> list[Row]:
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT ts, v_rms_v, energy_kwh FROM readings WHERE meter_id = %s"
            " AND ts >= %s AND ts < %s ORDER BY ts DESC LIMIT %s",
            [meter_id, start, end, limit],
        )


async def meter_events(
    db: Database, meter_id: str, *, start: datetime, end: datetime, limit: int
) -> list[Row]:
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT ts, kind, supply_on FROM meter_events WHERE meter_id = %s"
            " AND ts >= %s AND ts < %s ORDER BY ts DESC LIMIT %s",
            [meter_id, start, end, limit],
        )


async def get_customer(db: Database, customer_id: str) -> Row | None:
    async with db.connection() as conn:
        return await _fetch_one(
            conn,
            "SELECT c.customer_id, c.account_no, c.name, c.phone_e164, c.language, c.channels,"
            " c.critical, coalesce(array_agg(m.meter_id ORDER BY m.meter_id)"
            "   FILTER (WHERE m.meter_id IS NOT NULL), '{}') AS meter_ids"
            " FROM customers c LEFT JOIN meters m USING (customer_id)"
            " WHERE c.customer_id = %s GROUP BY c.customer_id",
            [customer_id],
        )


async def customer_by_account(db: Database, account_no: str) -> Row | None:
    async with db.connection() as conn:
        return await _fetch_one(
            conn,
            "SELECT customer_id, account_no, name, phone_e164, language FROM customers"
            " WHERE account_no = %s",
            [account_no],
        )


async def customer_outages(
    db: Database, customer_id: str, *, since: datetime, limit: int
) -> list[Row]:
    """The customer's outages (open first, then newest), each with this customer's own
    meter status and the crew's last report (its status only: not who sent it); nothing
    about other customers."""
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT o.outage_id, o.state, o.planned, o.cause, o.started_at, o.restored_at,"
            " o.etr_p10, o.etr_p50, o.etr_p90, bool_or(om.status = 'out') AS still_out,"
            " max(om.restored_at) AS my_restored_at, c.status AS crew_status"
            " FROM outage_meters om JOIN outages o USING (outage_id)"
            " LEFT JOIN etr_crew_status c USING (outage_id)"
            " WHERE om.customer_id = %(c)s AND o.state NOT IN ('scheduled', 'cancelled')"
            " AND (o.started_at >= %(since)s"
            "      OR o.state NOT IN ('scheduled', 'restored', 'cancelled'))"
            " GROUP BY o.outage_id, c.status"
            " ORDER BY (o.state IN ('restored', 'cancelled')), o.started_at DESC LIMIT %(limit)s",
            {"c": customer_id, "since": since, "limit": limit},
        )


async def customer_planned(db: Database, customer_id: str, *, ends_after: datetime) -> list[Row]:
    """Planned work upstream of any of the customer's meters that has not ended."""
    async with db.connection() as conn:
        return await _fetch_all(
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


# --- public summary -----------------------------------------------------------------------


async def customers_out_by_zone(db: Database) -> list[Row]:
    """Per zone with open outages: outages and customers still out. No personal data."""
    async with db.connection() as conn:
        return await _fetch_all(
            conn,
            "SELECT zone, count(*) AS active_outages,"
            " sum(greatest(customers_affected - customers_restored, 0)) AS customers_out"
            " FROM outages WHERE state NOT IN ('scheduled', 'restored', 'cancelled')"
            " GROUP BY zone ORDER BY zone",
            [],
        )


async def customers_served_by_zone(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await _fetch_all(
            conn,
            "SELECT zone, count(DISTINCT customer_id) AS n FROM meters"
            " WHERE customer_id IS NOT NULL GROUP BY zone",
            [],
        )
    return {str(r["zone"]): int(r["n"]) for r in rows}
