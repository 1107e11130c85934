"""SQL for customer outage reports (``customer_reports``): added by hand or by the
inbound-SMS webhook, read by detection by id cursor (``> after_id``), so the runner picks up
each row once and a restart can start again from a known point."""

from __future__ import annotations

from typing import NamedTuple

from psycopg import AsyncConnection

from gridwatch.store.database import Database, event_time


class CustomerReportRow(NamedTuple):
    report_id: int
    kind: str  # out | on
    reported_s: float
    meter_ids: tuple[str, ...]  # the report's meter, else every meter of the customer


async def add_customer_report(
    db: Database,
    *,
    reported_s: float,
    kind: str,
    customer_id: str | None = None,
    meter_id: str | None = None,
    note: str = "",
) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO customer_reports (customer_id, meter_id, reported_at, kind, note)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING report_id",
            [customer_id, meter_id, event_time(reported_s), kind, note],
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def report_cursor_since(db: Database, since_s: float) -> int:
    """Where a fresh runner starts reading reports: just before the first report made at
    or after ``since_s`` (so recent reports are evidence again after a restart), else after
    the newest report."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce((SELECT min(report_id) - 1 FROM customer_reports"
            "                 WHERE reported_at >= to_timestamp(%s)),"
            "                (SELECT max(report_id) FROM customer_reports), 0)",
            [since_s],
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


_REPORTS_SQL = """
SELECT r.report_id, r.kind, r.reported_at,
       CASE WHEN r.meter_id IS NOT NULL THEN ARRAY[r.meter_id]
            ELSE coalesce((SELECT array_agg(m.meter_id ORDER BY m.meter_id) FROM meters m
                            WHERE m.customer_id = r.customer_id), '{}'::text[]) END
FROM customer_reports r
WHERE r.report_id > %s
ORDER BY r.report_id
LIMIT %s
"""


async def customer_reports_after(
    db: Database, after_id: int, *, limit: int = 5000
) -> list[CustomerReportRow]:
    """Reports with ``report_id > after_id``, oldest first, each with its meters."""
    async with db.connection() as conn:
        cur = await conn.execute(_REPORTS_SQL, [after_id, limit])
        rows = await cur.fetchall()
    return [
        CustomerReportRow(int(r[0]), str(r[1]), r[2].timestamp(), tuple(str(m) for m in r[3]))
        for r in rows
    ]


async def insert_customer_report(
    conn: AsyncConnection,
    *,
    customer_id: str,
    phone_e164: str,
    body: str,
    provider_id: str | None,
    received_at_s: float,
) -> bool:
    """Store an inbound SMS outage report (evidence for the detectors). False if already
    stored (a retried webhook)."""
    cur = await conn.execute(
        "INSERT INTO customer_reports"
        " (customer_id, reported_at, kind, note, phone_e164, provider_id)"
        " VALUES (%s, %s, 'out', %s, %s, %s)"
        " ON CONFLICT (provider_id) WHERE provider_id IS NOT NULL DO NOTHING",
        [customer_id, event_time(received_at_s), body[:2000], phone_e164, provider_id],
    )
    return cur.rowcount == 1
