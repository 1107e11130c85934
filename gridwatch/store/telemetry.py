"""The telemetry aggregate: readings, meter and SCADA events, and dead letters.

Partitions and retention, ingest's bulk writes (and its PostgreSQL ``TelemetrySink``), the
control API's reads, and the event-time stream a replay publishes from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gridwatch.store.database import Database
from ingest import DeadLetterRow, EventKey, TelemetryWriteResult

# -- partitions and retention ----------------------------------------------------------


async def ensure_partitions(db: Database, from_s: float, to_s: float) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT ensure_telemetry_partitions(%s, %s)",
            [datetime.fromtimestamp(from_s, UTC), datetime.fromtimestamp(to_s, UTC)],
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def apply_retention(db: Database, retention_days: int, now_s: float) -> int:
    """Drop telemetry older than the retention window; returns partitions/chunks dropped."""
    cutoff = datetime.fromtimestamp(now_s - retention_days * 86400.0, UTC)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT drop_telemetry_partitions_before(%s)", [cutoff])
        row = await cur.fetchone()
    return int(row[0]) if row else 0


# -- bulk writes (ingest's sink) -----------------------------------------------------
# Rows arrive already validated by ingest/ (ids, finite numbers, UTF-8 text). Each batch is
# COPYed into per-connection temp staging tables and moved with INSERT ... ON CONFLICT DO
# NOTHING, so a redelivered or replayed record changes nothing. Times travel as float epoch
# seconds and become timestamptz in SQL (to_timestamp rounds to the microsecond).

ReadingRow = tuple[str, float, float | None, float | None, int | None]
MeterEventRow = tuple[str, float, str, int | None, bool | None, str | None]
ScadaEventRow = tuple[str, float, str, str | None]

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS gw_stage_readings (
    meter_id text, ts_s float8, v_rms_v float4, energy_kwh float8, seq int8
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS gw_stage_meter_events (
    meter_id text, ts_s float8, kind text, seq int8, supply_on bool, request_id text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS gw_stage_scada_events (
    device_id text, ts_s float8, kind text, phases text
) ON COMMIT DELETE ROWS;
"""


async def write_telemetry(
    db: Database,
    readings: Sequence[ReadingRow] = (),
    meter_events: Sequence[MeterEventRow] = (),
    scada_events: Sequence[ScadaEventRow] = (),
    dead_letters: Sequence[DeadLetterRow] = (),
    *,
    received_s: float,
) -> TelemetryWriteResult:
    """Write one batch in one transaction; duplicates of stored rows are skipped.

    ``received_s`` is the service-clock time the batch arrived: every row's ``received_at``
    (on a replay, the replay's time, so a screen counting by it sees the replay's rows).

    The partitions for the batch's days must exist (``ensure_partitions``). Raises
    StoreUnavailable when the database cannot be reached (retry the same batch) and
    StoreError when it refuses the data.
    """
    readings_inserted = 0
    meter_keys: set[EventKey] = set()
    scada_keys: set[EventKey] = set()
    received_at = datetime.fromtimestamp(received_s, UTC)
    async with db.connection() as conn, conn.cursor() as cur:
        if readings or meter_events or scada_events:
            await cur.execute(_STAGING_DDL)
        if readings:
            async with cur.copy(
                "COPY gw_stage_readings (meter_id, ts_s, v_rms_v, energy_kwh, seq) FROM STDIN"
            ) as copy:
                for row in readings:
                    await copy.write_row(row)
            await cur.execute(
                "INSERT INTO readings (meter_id, ts, v_rms_v, energy_kwh, seq, received_at)"
                " SELECT meter_id, to_timestamp(ts_s), v_rms_v, energy_kwh, seq, %s"
                " FROM gw_stage_readings ORDER BY ts_s ON CONFLICT DO NOTHING",
                [received_at],
            )
            readings_inserted = max(cur.rowcount, 0)
        if meter_events:
            async with cur.copy(
                "COPY gw_stage_meter_events (meter_id, ts_s, kind, seq, supply_on, request_id)"
                " FROM STDIN"
            ) as copy:
                for event in meter_events:
                    await copy.write_row(event)
            await cur.execute(
                "INSERT INTO meter_events"
                " (meter_id, ts, kind, seq, supply_on, request_id, received_at)"
                " SELECT meter_id, to_timestamp(ts_s), kind, seq, supply_on, request_id, %s"
                " FROM gw_stage_meter_events ORDER BY ts_s ON CONFLICT DO NOTHING"
                " RETURNING meter_id, (extract(epoch FROM ts) * 1000000)::int8, kind",
                [received_at],
            )
            meter_keys = {(r[0], int(r[1]), r[2]) for r in await cur.fetchall()}
        if scada_events:
            async with cur.copy(
                "COPY gw_stage_scada_events (device_id, ts_s, kind, phases) FROM STDIN"
            ) as copy:
                for scada in scada_events:
                    await copy.write_row(scada)
            await cur.execute(
                "INSERT INTO scada_events (device_id, ts, kind, phases, received_at)"
                " SELECT device_id, to_timestamp(ts_s), kind, phases, %s"
                " FROM gw_stage_scada_events ORDER BY ts_s ON CONFLICT DO NOTHING"
                " RETURNING device_id, (extract(epoch FROM ts) * 1000000)::int8, kind",
                [received_at],
            )
            scada_keys = {(r[0], int(r[1]), r[2]) for r in await cur.fetchall()}
        if dead_letters:
            async with cur.copy(
                "COPY dead_letters (topic, reason, payload, received_at) FROM STDIN"
            ) as copy:
                for topic, reason, payload in dead_letters:
                    await copy.write_row((topic, reason, payload, received_at))
    return TelemetryWriteResult(readings_inserted, meter_keys, scada_keys, len(dead_letters))


class PostgresTelemetrySink:
    """ingest's ``TelemetrySink`` over PostgreSQL: the two functions above on ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_partitions(self, from_s: float, to_s: float) -> None:
        await ensure_partitions(self._db, from_s, to_s)

    async def write(
        self,
        readings: Sequence[ReadingRow],
        meter_events: Sequence[MeterEventRow],
        scada_events: Sequence[ScadaEventRow],
        dead_letters: Sequence[DeadLetterRow],
        *,
        received_s: float,
    ) -> TelemetryWriteResult:
        return await write_telemetry(
            self._db, readings, meter_events, scada_events, dead_letters, received_s=received_s
        )


# -- reads (the control API) ---------------------------------------------------------
# Every query here runs under a statement timeout: an operator asking for too much gets a
# clear error instead of a database busy for minutes.

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


# -- replay: stored telemetry back in event-time order, for replay through MQTT -------

_REPLAY_QUERY = """
SELECT * FROM (
    SELECT r.ts, 'reading' AS what, r.meter_id AS id, m.zone, r.v_rms_v, r.energy_kwh, r.seq,
           NULL::text AS kind, NULL::boolean AS supply_on, NULL::text AS request_id,
           NULL::text AS phases
    FROM readings r JOIN meters m USING (meter_id)
    WHERE r.ts >= %(lo)s AND r.ts < %(hi)s
    UNION ALL
    SELECT e.ts, 'event', e.meter_id, m.zone, NULL, NULL, e.seq, e.kind, e.supply_on,
           e.request_id, NULL
    FROM meter_events e JOIN meters m USING (meter_id)
    WHERE e.ts >= %(lo)s AND e.ts < %(hi)s
    UNION ALL
    SELECT s.ts, 'scada', s.device_id, d.zone, NULL, NULL, NULL, s.kind, NULL, NULL, s.phases
    FROM scada_events s JOIN devices d USING (device_id)
    WHERE s.ts >= %(lo)s AND s.ts < %(hi)s
) t ORDER BY ts, what, id
"""


async def stream_telemetry(
    db: Database, from_s: float, to_s: float, *, step_s: float = 3600.0
) -> AsyncIterator[dict[str, Any]]:
    """Rows of readings, meter events and SCADA events in ``[from_s, to_s)``, by ``ts``,
    fetched one ``step_s`` window at a time so a long replay never loads everything."""
    lo = from_s
    while lo < to_s:
        hi = min(to_s, lo + step_s)
        async with db.connection() as conn:
            cur = await conn.execute(
                _REPLAY_QUERY,
                {"lo": datetime.fromtimestamp(lo, UTC), "hi": datetime.fromtimestamp(hi, UTC)},
            )
            cols = [c.name for c in cur.description or []]
            rows = await cur.fetchall()
        for row in rows:
            yield dict(zip(cols, row, strict=True))
        lo = hi
