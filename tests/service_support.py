"""A simulated story published over the real Mosquitto into a running service (ingest ->
detection runner -> the real PostgreSQL), with the simulator answering pings. Shared by
the end-to-end detection test and the replay-speed test."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from gridwatch import load_settings
from gridwatch._clock import ReplayClock
from gridwatch._service import running_service
from gridwatch.detection import DetectionSnapshot, PersistedOutages
from gridwatch.store import Database, save_topology
from simulators import PublishStats, Simulation, publish_stream

# One scripted one-hour story on the toy grid (2 feeders, 144 meters): a recloser's
# momentary, a fuse, a breaker lockout with partial restoration through the tie, and a
# transformer failing under the dark breaker (nested; found, and its crew called, only when
# the breaker is back, so it is repaired about 46 minutes in).
STORY: dict[str, Any] = {
    "name": "e2e",
    "seed": 5,
    "start": "2026-11-23T06:00:00Z",
    "duration_s": 3600,
    "grid": {"toy": True},
    "world": {
        "random_faults": False,
        "crew": {
            "crews": 4,
            "dispatch_median_s": 30,
            "travel_median_s": 60,
            "switching_median_s": 60,
            "sigma": 0.1,
        },
        "faults": [
            {"device_id": "Z01-S01-F02-R1", "at_s": 120, "kind": "momentary"},
            {"device_id": "Z01-S01-F02-L003-FU", "at_s": 200, "repair_s": 700},
            {"device_id": "Z01-S01-F01-BRK", "at_s": 400, "repair_s": 700},
            {"device_id": "Z01-S01-F01-L002-T02", "at_s": 500, "repair_s": 1500},
        ],
    },
    "ami": {"direct_fraction": 0.25},
}


@dataclass
class StoryRun:
    stats: PublishStats
    snapshot: DetectionSnapshot
    committed: list[PersistedOutages] = field(default_factory=list)
    falling_behind: int = 0  # the detection runner's LagWatch: steps over its budget
    pings_behind: int = 0  # ping answers slower than half the ping timeout (service clock)
    ping_answers_late: int = 0  # ... slower than the whole timeout: judged as silence


async def outage_rows(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.outage_id, o.engine_key, o.device_id, o.state, o.cause, o.started_at,"
            " o.confirmed_at, o.restored_at, o.meters_affected, o.scope,"
            " p.device_id AS parent_device"
            " FROM outages o LEFT JOIN outages p ON p.outage_id = o.parent_outage_id"
            " ORDER BY o.started_at, o.device_id"
        )
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]


async def run_story(
    sim: Simulation,
    db: Database,
    mqtt_url: str,
    topic_prefix: str,
    *,
    speed: float,
    etr: bool = True,
) -> StoryRun:
    """Publish ``sim`` at ``speed`` into a service on a replay clock started with the
    publisher, and wait (up to 20 s) for the last restorations to be judged."""
    await save_topology(db, sim.grid.topology)
    settings = load_settings(
        mqtt_url=mqtt_url,
        mqtt_prefix=topic_prefix,
        mqtt_client_id=f"story-{uuid.uuid4().hex[:12]}",
        database_schema=db.schema,
        api_port=0,
        ingest_flush_interval_s=0.05,
    )
    committed: list[PersistedOutages] = []
    clock = ReplayClock(sim.start_s, speed, deferred=True)
    async with running_service(settings, db, clock=clock, etr=etr) as service:
        runner = service.detection
        assert runner is not None
        runner.on_committed = committed.append  # observe what reaches PostgreSQL
        assert runner.horizon is not None, "detection must judge at ingest's watermark"
        readiness = service.readiness
        assert readiness is not None
        for _ in range(600):  # what /readyz says: every task that shapes a notice runs
            if readiness.ready():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the service did not get ready: {readiness.tasks()}")
        clock.start()
        stats = await publish_stream(
            sim.messages(),
            mqtt_url,
            speed=speed,
            prefix=topic_prefix,
            pings=sim.telemetry,
            window=(sim.start_s, sim.end_s),
            linger_s=3.0,
        )
        for _ in range(40):
            if not runner.snapshot().open_outages:
                break
            await asyncio.sleep(0.5)
        return StoryRun(
            stats,
            runner.snapshot(),
            committed,
            runner.lag.times_behind,
            runner.ping_lag.times_behind,
            runner.counts["ping_answers_late"],
        )
