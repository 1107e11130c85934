"""SQL for the notification log as the control API reads it: notices newest first (for an
outage or a customer) and an outage's notices counted by status."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from gridwatch.store.database import Database, Row, fetch_rows


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
        return await fetch_rows(conn, query, params)


async def notification_counts(db: Database, outage_id: int) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await fetch_rows(
            conn,
            "SELECT status, count(*) AS n FROM notifications WHERE outage_id = %s GROUP BY status",
            [outage_id],
        )
    return {str(r["status"]): int(r["n"]) for r in rows}
