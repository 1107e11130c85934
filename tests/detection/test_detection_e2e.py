"""Detection end to end: a simulated feeder publishes over the real Mosquitto into a running
service (ingest -> detection runner -> real PostgreSQL); pings go out on the contract's ping
topic and the simulator answers them.

One scripted one-hour story on the toy grid (2 feeders, 144 meters), replayed at 100x:
- a recloser trip + reclose (a momentary: counted, no outage);
- a fuse whose meters gasp: predicted, confirmed by pings, restored when repaired;
- a breaker lockout (SCADA), partial restoration through the tie, then repair;
- a transformer failing under the dark breaker: a nested outage, its customers never
  marked "restored" when the breaker comes back.
"""

from __future__ import annotations

import pytest

from gridwatch.store import Database
from gridwatch.store.outage_queries import load_outage_meters, load_timeline
from simulators import Simulation
from simulators._scenario import scenario_from_dict
from simulators._scoring import load_recorded_db, score
from tests.service_support import STORY, outage_rows, run_story

SPEED = 100.0


async def test_scripted_story_through_mqtt_and_postgres(
    db: Database, mqtt_url: str, topic_prefix: str
) -> None:
    sim = Simulation(scenario_from_dict(STORY))
    run = await run_story(sim, db, mqtt_url, topic_prefix, speed=SPEED)
    stats, snap = run.stats, run.snapshot
    assert stats.pings_answered > 0, "the simulator answered no ping"

    rows = await outage_rows(db)
    by_device = {r["device_id"]: r for r in rows if r["state"] != "cancelled"}
    text = "\n".join(str(r) for r in rows)
    # The momentary on F02-R1 is counted, never an outage.
    assert "Z01-S01-F02-R1" not in by_device, text
    async with db.connection() as conn:
        cur = await conn.execute("SELECT device_id, cause FROM momentaries")
        moments = await cur.fetchall()
    assert ("Z01-S01-F02-R1", "scada_reclose") in moments
    assert snap.momentaries >= 1

    # The fuse: inferred from gasps, confirmed by the ping sample, restored.
    fuse = by_device["Z01-S01-F02-L003-FU"]
    assert fuse["cause"] == "inferred"
    assert fuse["state"] == "restored", text
    assert fuse["meters_affected"] == 18
    kinds = {k: d for _, k, d in await load_timeline(db, fuse["outage_id"])}
    assert kinds["confirmed"]["why"] in ("ping sample answered dark", "every meter off")
    start = sim.start_s + 200
    # The start is the earliest dark evidence: a meter whose restore after the recloser's
    # momentary (at 120 s) was lost has been "off" since then.
    assert start - 90 <= fuse["started_at"].timestamp() <= start + 60
    # The publisher's own lateness (a loaded machine) delays what it publishes in grid time.
    late_s = stats.max_lag_s * SPEED
    assert fuse["confirmed_at"].timestamp() - start <= 45 + 60 + late_s  # delay + a ping round

    # The breaker: SCADA lockout, confirmed at once, restored after repair.
    brk = by_device["Z01-S01-F01-BRK"]
    assert brk["cause"] == "scada_lockout"
    assert brk["state"] == "restored"
    assert brk["confirmed_at"].timestamp() - (sim.start_s + 400) < 30 + late_s

    # Restore pings answered later than their timeout (a loaded machine at 100x: 30 s of
    # grid time is 0.3 s of wall time) are silence to the engine; the service says so, and
    # then a nested outage may first be named one device up (the fuse above the failed
    # transformer, whose other meters' answers were late) before the transformer nests.
    said = run.ping_answers_late > 0 or run.falling_behind > 0
    text += f"\nping answers late: {run.ping_answers_late}, behind: {run.falling_behind}"
    # The transformer that failed under the dark breaker: nested, never told "restored".
    tx = by_device["Z01-S01-F01-L002-T02"]
    parents = {"Z01-S01-F01-BRK", "Z01-S01-F01-L002-FU"} if said else {"Z01-S01-F01-BRK"}
    assert tx["parent_device"] in parents, text
    tx_meters = {
        m for o in sim.truth().outages if o.device_id == "Z01-S01-F01-L002-T02" for m in o.meter_ids
    }
    in_breaker = {m: s for m, s, _ in await load_outage_meters(db, brk["outage_id"])}
    assert {in_breaker[m] for m in tx_meters} <= {"transferred", "unverified"}
    assert "restored" not in {in_breaker[m] for m in tx_meters}

    # The simulator's scorer agrees.
    truth = sim.truth()
    report = score(truth, await load_recorded_db(db, truth.start_s, truth.end_s), grid=sim.grid)
    assert report.outage_recall == pytest.approx(1.0), report.to_table()
    assert report.outage_precision >= (0.75 if said else 1.0), report.to_table() + text
    assert report.false_restored_notices == 0
