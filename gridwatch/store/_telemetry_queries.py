"""Read-side SQL for telemetry and dead letters (the control API's queries).

Every query here runs under a statement timeout: an operator asking for too much gets a
clear error instead of a database busy for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridwatch.store._database import Database

DEFAULT_STATEMENT_TIMEOUT_MS = 5000
DEAD_LETTER_PAGE_MAX = 1000
MAX_REASONS = 100


@dataclass(frozen=True)
class TableSummary:
    count: int
    latest_ts: datetime | None


@dataclass(frozen=True)
class TelemetrySummary:
    readings: TableSummary
    meter_events: TableSummary
    scada_events: TableSummary
    dead_letters_by_reason: dict[str, int]


@dataclass(frozen=True)
class DeadLetterView:
    dead_letter_id: int
    received_at: datetime
    topic: str
    reason: str
    payload_bytes: int
    payload_head: bytes  # the first ``payload_max_bytes`` bytes


async def telemetry_summary(
    db: Database,
    start: datetime,
    end: datetime,
    *,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
) -> TelemetrySummary:
    """Counts and latest event time per telemetry table for ``start <= ts < end``, and dead
    letters received in the same window grouped by reason (the most frequent first)."""
    async with db.connection() as conn:
        await conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        tables: dict[str, TableSummary] = {}
        # Three fixed table names (never user input), so they are spelled out, not formatted.
        for table, query in (
            ("readings", "SELECT count(*), max(ts) FROM readings WHERE ts >= %s AND ts < %s"),
            (
                "meter_events",
                "SELECT count(*), max(ts) FROM meter_events WHERE ts >= %s AND ts < %s",
            ),
            (
                "scada_events",
                "SELECT count(*), max(ts) FROM scada_events WHERE ts >= %s AND ts < %s",
            ),
        ):
            cur = await conn.execute(query, [start, end])
            row = await cur.fetchone()
            tables[table] = TableSummary(int(row[0]) if row else 0, row[1] if row else None)
        cur = await conn.execute(
            "SELECT reason, count(*) FROM dead_letters"
            " WHERE received_at >= %s AND received_at < %s"
            " GROUP BY reason ORDER BY count(*) DESC, reason LIMIT %s",
            [start, end, MAX_REASONS],
        )
        reasons = {str(reason): int(n) for reason, n in await cur.fetchall()}
    return TelemetrySummary(
        readings=tables["readings"],
        meter_events=tables["meter_events"],
        scada_events=tables["scada_events"],
        dead_letters_by_reason=reasons,
    )


async def dead_letters_page(
    db: Database,
    *,
    limit: int,
    before_id: int | None = None,
    payload_max_bytes: int = 1024,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
) -> list[DeadLetterView]:
    """The newest dead letters first, keyset-paginated by id (``before_id`` exclusive)."""
    limit = max(1, min(int(limit), DEAD_LETTER_PAGE_MAX))
    async with db.connection() as conn:
        await conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        cur = await conn.execute(
            "SELECT dead_letter_id, received_at, topic, reason, octet_length(payload),"
            " substring(payload FROM 1 FOR %s)"
            " FROM dead_letters"
            " WHERE (%s::bigint IS NULL OR dead_letter_id < %s::bigint)"
            " ORDER BY dead_letter_id DESC LIMIT %s",
            [payload_max_bytes, before_id, before_id, limit],
        )
        rows = await cur.fetchall()
    return [
        DeadLetterView(int(r[0]), r[1], str(r[2]), str(r[3]), int(r[4]), bytes(r[5])) for r in rows
    ]


async def insert_dead_letter(
    db: Database, *, topic: str, reason: str, payload: bytes, received_at: datetime
) -> int:
    """Record one rejected message (ingest may batch its own; this is the simple path).
    ``received_at`` is on the service clock, as ingest's own dead letters are."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO dead_letters (topic, reason, payload, received_at)"
            " VALUES (%s, %s, %s, %s) RETURNING dead_letter_id",
            [topic, reason, payload, received_at],
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
