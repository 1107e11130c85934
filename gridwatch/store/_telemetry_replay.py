"""SQL to read stored telemetry back in event-time order, for replay through MQTT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from gridwatch.store._database import Database

_QUERY = """
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
                _QUERY,
                {"lo": datetime.fromtimestamp(lo, UTC), "hi": datetime.fromtimestamp(hi, UTC)},
            )
            cols = [c.name for c in cur.description or []]
            rows = await cur.fetchall()
        for row in rows:
            yield dict(zip(cols, row, strict=True))
        lo = hi
