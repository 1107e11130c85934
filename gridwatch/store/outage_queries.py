"""SQL that reads outages: the list and detail the control API shows, an outage's meters and
timeline, what a restarted engine takes back, a customer's own outages, the public summary,
and which meters an operator's cancel or restore judged. Writes are in ``store.outages``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from psycopg import sql

from gridwatch.store.database import Database, Row, fetch_row, fetch_rows

_OUTAGE_COLUMNS: LiteralString = (
    "o.outage_id, o.device_id, o.zone, o.state, o.cause, o.planned, o.started_at,"
    " o.confirmed_at, o.restored_at, o.confidence, o.meters_affected, o.customers_affected,"
    " o.meters_restored, o.customers_restored, o.etr_p10, o.etr_p50, o.etr_p90,"
    " o.etr_model_version, o.parent_outage_id, o.updated_at, o.scope"
)


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
        return await fetch_rows(conn, query, params)


async def get_outage(db: Database, outage_id: int) -> Row | None:
    async with db.connection() as conn:
        return await fetch_row(
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
        return await fetch_rows(
            conn,
            "SELECT m.meter_id, m.customer_id, m.status, m.restored_at,"
            " c.account_no, c.name AS customer_name, c.phone_e164"
            " FROM outage_meters m LEFT JOIN customers c USING (customer_id)"
            " WHERE m.outage_id = %(id)s AND (%(after)s::text IS NULL OR m.meter_id > %(after)s)"
            " ORDER BY m.meter_id LIMIT %(limit)s",
            {"id": outage_id, "after": after_meter, "limit": limit},
        )


# One statement for both readers: ``LIMIT NULL`` is no limit.
_TIMELINE_SQL: LiteralString = (
    "SELECT at, kind, detail FROM outage_timeline WHERE outage_id = %s ORDER BY at, seq LIMIT %s"
)


async def outage_timeline(db: Database, outage_id: int, *, limit: int) -> list[Row]:
    async with db.connection() as conn:
        return await fetch_rows(conn, _TIMELINE_SQL, [outage_id, limit])


async def load_timeline(
    db: Database, outage_id: int
) -> list[tuple[datetime, str, dict[str, object]]]:
    """The whole timeline of one outage, oldest first."""
    async with db.connection() as conn:
        cur = await conn.execute(_TIMELINE_SQL, [outage_id, None])
        return [(a, str(k), dict(d)) for a, k, d in await cur.fetchall()]


async def load_open_outages(db: Database) -> list[dict[str, object]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT outage_id, engine_key, device_id, zone, state, cause, started_at,"
            " confirmed_at, confidence, meters_affected, customers_affected, meters_restored,"
            " parent_outage_id, scope FROM outages"
            " WHERE state NOT IN ('scheduled', 'restored', 'cancelled')"
            " ORDER BY started_at, outage_id"
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def load_open_outage_meters(db: Database) -> list[tuple[str, str, str, datetime | None]]:
    """(engine_key, meter_id, status, restored_at) of every open outage: what a restarted
    engine needs to take its open outages back."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.engine_key, m.meter_id, m.status, m.restored_at"
            " FROM outage_meters m JOIN outages o USING (outage_id)"
            " WHERE o.state NOT IN ('scheduled', 'restored', 'cancelled')"
            " AND o.engine_key IS NOT NULL"
            " ORDER BY o.engine_key, m.meter_id"
        )
        return [(str(k), str(m), str(s), r) for k, m, s, r in await cur.fetchall()]


async def load_outage(db: Database, engine_key: str) -> dict[str, object] | None:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT * FROM outages WHERE engine_key = %s", [engine_key])
        row = await cur.fetchone()
        names = [c.name for c in cur.description or []]
    return None if row is None else dict(zip(names, row, strict=True))


async def load_outage_meters(
    db: Database, outage_id: int
) -> list[tuple[str, str, datetime | None]]:
    """(meter_id, status, restored_at) of one outage, by meter id."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT meter_id, status, restored_at FROM outage_meters WHERE outage_id = %s"
            " ORDER BY meter_id",
            [outage_id],
        )
        return [(str(a), str(b), c) for a, b, c in await cur.fetchall()]


async def customer_outages(
    db: Database, customer_id: str, *, since: datetime, limit: int
) -> list[Row]:
    """The customer's outages (open first, then newest), each with this customer's own
    meter status and the crew's last report (its status only: not who sent it); nothing
    about other customers."""
    async with db.connection() as conn:
        return await fetch_rows(
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


async def customers_out_by_zone(db: Database) -> list[Row]:
    """Per zone with open outages: outages and customers still out. No personal data."""
    async with db.connection() as conn:
        return await fetch_rows(
            conn,
            "SELECT zone, count(*) AS active_outages,"
            " sum(greatest(customers_affected - customers_restored, 0)) AS customers_out"
            " FROM outages WHERE state NOT IN ('scheduled', 'restored', 'cancelled')"
            " GROUP BY zone ORDER BY zone",
            [],
        )


async def operator_refuted_at(db: Database, meter_ids: Sequence[str]) -> dict[str, float]:
    """Per meter, the latest time an operator cancelled or restored an outage holding it
    (its ``operator_cancel`` / ``operator_restore`` timeline entry). Dark evidence from
    before that time was judged by the operator and is not fed again."""
    if not meter_ids:
        return {}
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT om.meter_id, max(t.at) FROM outage_meters om"
            " JOIN outage_timeline t ON t.outage_id = om.outage_id"
            " WHERE om.meter_id = ANY(%s)"
            " AND t.kind IN ('operator_cancel', 'operator_restore')"
            " GROUP BY om.meter_id",
            [list(dict.fromkeys(meter_ids))],
        )
        rows = await cur.fetchall()
    return {str(m): at.timestamp() for m, at in rows}
