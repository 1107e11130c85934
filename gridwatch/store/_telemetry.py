"""SQL for telemetry: partitions and retention. Bulk writes live here too (ingest calls them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from gridwatch.store._database import Database


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


# -- bulk writes (ingest) ------------------------------------------------------------
# Rows arrive already validated by ingest/ (ids, finite numbers, UTF-8 text). Each batch is
# COPYed into per-connection temp staging tables and moved with INSERT ... ON CONFLICT DO
# NOTHING, so a redelivered or replayed record changes nothing. Times travel as float epoch
# seconds and become timestamptz in SQL (to_timestamp rounds to the microsecond).

ReadingRow = tuple[str, float, float | None, float | None, int | None]
MeterEventRow = tuple[str, float, str, int | None, bool | None, str | None]
ScadaEventRow = tuple[str, float, str, str | None]
DeadLetterRow = tuple[str, str, bytes]  # topic, reason, payload
EventKey = tuple[str, int, str]  # (meter or device id, ts in whole microseconds, kind)

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


class TelemetryWriteResult(NamedTuple):
    readings_inserted: int
    meter_events_inserted: set[EventKey]
    scada_events_inserted: set[EventKey]
    dead_letters_inserted: int


def event_key_us(ts_s: float) -> int:
    """The microsecond an event time is stored at (matches PostgreSQL's to_timestamp)."""
    return round(ts_s * 1_000_000)


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
