"""SQL for customers and their meters as the control API and the status page read them: a
meter (with the open outage holding it) and its recent readings and events, a customer and
their meters, lookup by account number, and customers served per zone."""

from __future__ import annotations

from datetime import datetime

from gridwatch.store.database import Database, Row, fetch_row, fetch_rows


async def get_meter(db: Database, meter_id: str) -> Row | None:
    async with db.connection() as conn:
        return await fetch_row(
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
        return await fetch_rows(
            conn,
            "SELECT ts, v_rms_v, energy_kwh FROM readings WHERE meter_id = %s"
            " AND ts >= %s AND ts < %s ORDER BY ts DESC LIMIT %s",
            [meter_id, start, end, limit],
        )


async def meter_events(
    db: Database, meter_id: str, *, start: datetime, end: datetime, limit: int
) -> list[Row]:
    async with db.connection() as conn:
        return await fetch_rows(
            conn,
            "SELECT ts, kind, supply_on FROM meter_events WHERE meter_id = %s"
            " AND ts >= %s AND ts < %s ORDER BY ts DESC LIMIT %s",
            [meter_id, start, end, limit],
        )


async def get_customer(db: Database, customer_id: str) -> Row | None:
    async with db.connection() as conn:
        return await fetch_row(
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
        return await fetch_row(
            conn,
            "SELECT customer_id, account_no, name, phone_e164, language FROM customers"
            " WHERE account_no = %s",
            [account_no],
        )


async def customers_served_by_zone(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await fetch_rows(
            conn,
            "SELECT zone, count(DISTINCT customer_id) AS n FROM meters"
            " WHERE customer_id IS NOT NULL GROUP BY zone",
            [],
        )
    return {str(r["zone"]): int(r["n"]) for r in rows}
