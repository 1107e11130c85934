"""End-to-end detection latency: MQTT publish of the deciding event -> outage row committed
in PostgreSQL, on a running service (real Mosquitto, real PostgreSQL, detection runner).

Deciding events are SCADA lockouts (confirmed at once, so no deliberate declaration delay
is inside the figure) on zone Z02 breakers, one every 0.5 s. Measured side by side:
  idle  - lockouts alone;
  storm - the same lockouts while 100,000 meter readings arrive in 10 s (100 batches of
          1,000, zone Z01) through the same ingest and detection path.
Latency = wall time the outage row is committed (runner's ``on_committed``) minus wall time
the lockout was handed to the MQTT client. Run: ``python -m benchmarks.detect_e2e_bench``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import numpy as np
import orjson

from gridwatch import load_settings
from gridwatch.app.service import running_service
from gridwatch.core.clock import SystemClock
from gridwatch.detection import PersistedOutages
from gridwatch.store import Database, drop_schema, migrate
from gridwatch.topology import save_topology
from simulators import generate_grid
from simulators._publish import mqtt_client

DB_URL = os.environ.get("GRIDWATCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_URL = os.environ.get("GRIDWATCH_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
EVENTS = 100_000
SECONDS = 10.0
PER_BATCH = 1000


async def _phase(
    name: str, storm: bool, topo: object, settings_kw: dict[str, object]
) -> dict[str, float]:
    t = topo  # Topology
    schema = f"gwbench_{uuid.uuid4().hex[:10]}"
    prefix = f"gwbench/{uuid.uuid4().hex[:8]}/v1"
    db = await Database.open(DB_URL, schema, create_schema=True, max_size=8)
    try:
        await migrate(db)
        await save_topology(db, t)  # type: ignore[arg-type]
        settings = load_settings(
            database_schema=schema,
            mqtt_prefix=prefix,
            mqtt_client_id=f"bench-{schema}",
            api_port=0,
            **settings_kw,
        )
        published: dict[str, float] = {}
        committed: dict[str, float] = {}

        def on_committed(p: PersistedOutages) -> None:
            now = time.perf_counter()
            for row in p.outages:
                committed.setdefault(row.device_id, now)

        breakers = [d for d in t.devices.ids.tolist() if d.startswith("Z02") and d.endswith("BRK")]  # type: ignore[attr-defined]
        z01 = [
            str(m)
            for m, dev in zip(t.meters.ids.tolist(), t.meters.device.tolist(), strict=True)  # type: ignore[attr-defined]
            if str(t.devices.zone[dev]) == "Z01"  # type: ignore[attr-defined]
        ]
        async with running_service(settings, db, clock=SystemClock()) as service:
            runner = service.detection
            assert runner is not None
            runner.on_committed = on_committed
            for _ in range(600):
                if service.ingest.ready and runner.ready:
                    break
                await asyncio.sleep(0.1)
            async with mqtt_client(MQTT_URL) as client:
                client.pending_calls_threshold = 1_000_000

                async def lockouts() -> None:
                    for dev in breakers:
                        body = orjson.dumps({"ts": time.time(), "type": "lockout"})
                        published[dev] = time.perf_counter()
                        await client.publish(f"{prefix}/Z02/scada/{dev}/event", body, qos=1)
                        await asyncio.sleep(SECONDS / len(breakers))

                async def readings() -> None:
                    rng = np.random.default_rng(1)
                    n_batches = EVENTS // PER_BATCH
                    for b in range(n_batches):
                        ts = time.time()
                        pick = rng.choice(len(z01), size=PER_BATCH, replace=False)
                        items = [{"meter": z01[i], "ts": ts, "v": 230.0} for i in pick.tolist()]
                        await client.publish(
                            f"{prefix}/Z01/batch", orjson.dumps({"readings": items}), qos=1
                        )
                        target = (b + 1) * SECONDS / n_batches
                        await asyncio.sleep(max(0.0, target - (time.perf_counter() - t0)))

                t0 = time.perf_counter()
                jobs = [lockouts()] + ([readings()] if storm else [])
                await asyncio.gather(*jobs)
                load_s = time.perf_counter() - t0
                for _ in range(600):
                    if len(committed) >= len(breakers):
                        break
                    await asyncio.sleep(0.05)
            stats = service.ingest.stats()
        lat = np.array([committed[d] - published[d] for d in breakers if d in committed]) * 1e3
        return {
            "phase": name,  # type: ignore[dict-item]
            "lockouts": len(breakers),
            "rows": int(lat.size),
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "max_ms": float(lat.max()),
            "load_s": load_s,
            "readings_written": float(
                stats.get("records_written", stats.get("readings_written", 0))
            ),
        }
    finally:
        await drop_schema(db)
        await db.close()


async def main() -> None:
    grid = generate_grid(
        1,
        zones=2,
        substations=1,
        feeders=20,
        laterals=10,
        reclosers=1,
        transformers_per_lateral=10,
        meters_per_transformer=25,
        dcu_size=500,
    )
    topo = grid.topology
    print(f"network: {len(topo.meters):,} meters, {len(topo.devices):,} devices")
    kw: dict[str, object] = {"mqtt_url": MQTT_URL, "database_url": DB_URL}
    results = [
        await _phase("idle", False, topo, kw),
        await _phase("storm", True, topo, kw),
    ]
    print(f"{'phase':<6} {'rows':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'load s':>7}")
    for r in results:
        print(
            f"{r['phase']:<6} {r['rows']:>5.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            f" {r['max_ms']:>8.1f} {r['load_s']:>7.1f}"
        )
    idle, storm = results
    print(f"storm/idle p50 ratio {storm['p50_ms'] / idle['p50_ms']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
