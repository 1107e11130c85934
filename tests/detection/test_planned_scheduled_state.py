"""A planned job waiting for its window (state ``scheduled``) has nobody out: it must not
count as an open outage anywhere (public map, active list, detection's reload, indices)."""

from __future__ import annotations

from gridwatch.store import Database
from gridwatch.store.outage_queries import customers_out_by_zone, load_open_outages


async def test_scheduled_planned_job_is_not_an_open_outage(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO outages (device_id, zone, state, planned, started_at,"
            " customers_affected, meters_affected)"
            " VALUES ('D-PLANNED', 'Z9', 'scheduled', true, now() + interval '6 days', 0, 0),"
            "        ('D-OUT', 'Z1', 'confirmed', false, now(), 12, 12)"
        )
    zones = {row["zone"]: row for row in await customers_out_by_zone(db)}
    assert set(zones) == {"Z1"}
    assert zones["Z1"]["customers_out"] == 12
    assert [row["device_id"] for row in await load_open_outages(db)] == ["D-OUT"]
