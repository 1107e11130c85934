"""Stored telemetry comes back as contract messages in event-time order."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from gridwatch.store import Database
from gridwatch.store.telemetry import ensure_partitions
from simulators._db_replay import messages_from_db


async def test_replay_from_database(db: Database) -> None:
    t0 = 1795420800.0
    await ensure_partitions(db, t0, t0 + 3600)
    at = [datetime.fromtimestamp(t0 + k, UTC) for k in range(3)]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone, has_scada) VALUES"
            " ('S1', 'substation', 'Z01', false), ('B1', 'breaker', 'Z01', true)"
        )
        await conn.execute("UPDATE devices SET parent_id = 'S1' WHERE device_id = 'B1'")
        await conn.execute(
            "INSERT INTO meters (meter_id, device_id, zone) VALUES ('M1', 'B1', 'Z01')"
        )
        await conn.execute(
            "INSERT INTO readings (meter_id, ts, v_rms_v, energy_kwh, seq)"
            " VALUES ('M1', %s, 231.5, 10.5, 7)",
            [at[2]],
        )
        await conn.execute(
            "INSERT INTO meter_events (meter_id, ts, kind, seq) VALUES ('M1', %s, 'last_gasp', 8)",
            [at[1]],
        )
        await conn.execute(
            "INSERT INTO scada_events (device_id, ts, kind, phases)"
            " VALUES ('B1', %s, 'trip', 'ABC')",
            [at[0]],
        )
    msgs = [m async for m in messages_from_db(db, t0 - 10, t0 + 3600)]
    assert [m.topic for m in msgs] == [
        "Z01/scada/B1/event",
        "Z01/meters/M1/event",
        "Z01/meters/M1/reading",
    ]
    assert orjson.loads(msgs[1].payload) == {
        "ts": "2026-11-23T08:00:01.000Z",
        "type": "last_gasp",
        "seq": 8,
    }
    assert orjson.loads(msgs[2].payload)["v"] == 231.5
