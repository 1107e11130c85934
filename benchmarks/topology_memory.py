"""Topology memory and speed: a 1,000,000-meter / ~115,000-device city from columns.

    python -m benchmarks.topology_memory [--meters 1000000] [--db-meters 100000]

Reports resident memory (psutil RSS) before and after building, bytes per meter, build /
validate time and derived-array times, side by side with a naive one-object-per-meter model
of the same network; then times save_topology / load_topology against the real PostgreSQL
(GRIDWATCH_TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test), side by side
with a plain executemany INSERT of the same meter rows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from gridwatch.store import Database, drop_schema
from gridwatch.store.migrations import available_migrations
from gridwatch.store.topology import copy_meters as _copy_meters
from gridwatch.topology import Topology, build_topology, load_topology, save_topology

_PROC = psutil.Process()


def rss_mib() -> float:
    gc.collect()
    return float(_PROC.memory_info().rss) / 2**20


def city_columns(
    n_meters: int, *, substations: int = 20, feeders_per_sub: int = 10, customers: bool = False
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """Per feeder: breaker, 4 reclosers in series, a normally-open tie to the next feeder's
    last recloser, 95 fused laterals of 5 transformers each (576 devices per feeder)."""
    ids: list[str] = []
    parent: list[str | None] = []
    kind: list[str] = []
    zone: list[str] = []
    alt: list[str | None] = []
    transformers: list[str] = []
    n_feeders = substations * feeders_per_sub
    for s in range(substations):
        z = f"Z{s:02d}"
        sub = f"{z}-SUB"
        ids.append(sub), parent.append(None), kind.append("substation"), zone.append(z)
        alt.append(None)
        for f in range(feeders_per_sub):
            fid = f"{z}-F{f:02d}"
            chain = [f"{fid}-BRK"] + [f"{fid}-R{r}" for r in range(1, 5)]
            for i, dev in enumerate(chain):
                ids.append(dev), parent.append(sub if i == 0 else chain[i - 1])
                kind.append("breaker" if i == 0 else "recloser"), zone.append(z), alt.append(None)
            g = s * feeders_per_sub + f
            nxt = (g + 1) % n_feeders
            other = f"Z{nxt // feeders_per_sub:02d}-F{nxt % feeders_per_sub:02d}-R4"
            ids.append(f"{fid}-TIE"), parent.append(chain[-1]), kind.append("switch")
            zone.append(z), alt.append(other)
            for lat in range(95):
                fuse = f"{fid}-L{lat:02d}-FU"
                ids.append(fuse), parent.append(chain[1 + lat % 4]), kind.append("fuse")
                zone.append(z), alt.append(None)
                for t in range(5):
                    tx = f"{fid}-L{lat:02d}-T{t}"
                    ids.append(tx), parent.append(fuse), kind.append("transformer")
                    zone.append(z), alt.append(None)
                    transformers.append(tx)
    normally_open = [a is not None for a in alt]
    devices = {"id": ids, "parent": parent, "kind": kind, "zone": zone, "alt_parent": alt,
               "normally_open": normally_open}  # fmt: skip
    meter_ids = [f"M-{i:07d}" for i in range(n_meters)]
    meters: dict[str, Any] = {
        "id": meter_ids,
        "device": [transformers[i % len(transformers)] for i in range(n_meters)],
    }
    if not customers:
        return devices, meters, None
    cust_ids = [f"C-{i:07d}" for i in range(n_meters)]
    meters["customer"] = cust_ids
    rng = np.random.default_rng(7)
    phones = [f"+849{n:08d}" for n in rng.integers(0, 10**8, n_meters).tolist()]
    cust = {
        "id": cust_ids,
        "account_no": [f"PE01{i:09d}" for i in range(n_meters)],
        "name": [f"Khách hàng {i}" for i in range(n_meters)],
        "phone": phones,
        "language": ["vi" if i % 5 else "en" for i in range(n_meters)],
        "channels": [["sms"] if i % 3 else ["sms", "push"] for i in range(n_meters)],
        "critical": [i % 1000 == 0 for i in range(n_meters)],
    }
    return devices, meters, cust


@dataclass(slots=True)
class NaiveMeter:
    """The per-object model the columnar design avoids (for the side-by-side figure)."""

    meter_id: str
    device_id: str
    zone: str
    customer_id: str | None


def timed(label: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"  {label:<46} {time.perf_counter() - start:8.3f} s")
    return result


def memory_section(n_meters: int) -> None:
    print(f"\n== build from columns: {n_meters:,} meters ==")
    base = rss_mib()
    cols = timed("generate columns (benchmark only)", city_columns, n_meters)
    with_cols = rss_mib()
    topology: Topology = timed("build_topology (validate + build)", build_topology, *cols)
    del cols
    after = rss_mib()
    grow = (after - base) * 2**20
    print(f"  devices {len(topology.devices):,}, meters {len(topology.meters):,}")
    print(f"  RSS before {base:.1f} MiB, with input columns {with_cols:.1f} MiB,"
          f" after build (columns freed) {after:.1f} MiB")  # fmt: skip
    print(f"  growth {grow / 2**20:.1f} MiB = {grow / n_meters:.0f} bytes/meter (devices included)")
    t = topology
    timed("children CSR + BFS order + depth", lambda: (t.child_ptr, t.order, t.depth))
    timed("meters-per-device CSR", lambda: t.meter_ptr)
    timed("downstream meter counts", lambda: t.downstream_meters)
    timed("feeder heads", lambda: t.feeder)
    timed("energised (all devices)", t.energised)
    tie = str(t.devices.ids[t.devices.alt_parent >= 0][0])
    r3 = tie.replace("-TIE", "-R3")
    switched = timed("with_switching(close tie, open recloser)", t.with_switching, [tie], [r3])
    assert switched.energised()[switched.device_index[tie.replace("-TIE", "-R4")]]
    derived = rss_mib()
    print(f"  RSS with derived arrays {derived:.1f} MiB"
          f" ({(derived - base) * 2**20 / n_meters:.0f} bytes per meter)")  # fmt: skip

    # Side by side: one Python object per meter plus a dict by id (what we avoid).
    del switched
    base2 = rss_mib()
    ids, dev = t.meters.ids.tolist(), t.meters.device.tolist()
    dev_ids, zones = t.devices.ids.tolist(), t.devices.zone.tolist()
    start = time.perf_counter()
    naive = {m: NaiveMeter(m, dev_ids[d], zones[d], None) for m, d in zip(ids, dev, strict=True)}
    naive_s = time.perf_counter() - start
    del ids, dev
    naive_grow = (rss_mib() - base2) * 2**20
    print(f"  naive per-meter objects (ids shared): +{naive_grow / 2**20:.1f} MiB ="
          f" {naive_grow / n_meters:.0f} bytes/meter on top, built in {naive_s:.3f} s")  # fmt: skip
    del naive


def customers_section(n_meters: int) -> None:
    print(f"\n== build with 1 customer per meter: {n_meters:,} ==")
    base = rss_mib()
    cols = city_columns(n_meters, customers=True)
    topology = timed("build_topology with customers", build_topology, *cols)
    del cols
    grow = (rss_mib() - base) * 2**20
    print(f"  growth {grow / 2**20:.1f} MiB = {grow / n_meters:.0f} bytes per meter+customer")
    assert len(topology.customers) == n_meters


async def db_section(n_meters: int) -> None:
    url = os.environ.get("GRIDWATCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"gwbench_topo_{uuid.uuid4().hex[:10]}"
    print(f"\n== PostgreSQL ({url.rsplit('@', 1)[-1]}, schema {schema}): {n_meters:,} meters ==")
    topology = build_topology(*city_columns(n_meters, customers=True))
    db = await Database.open(url, schema, create_schema=True, max_size=2)
    try:
        core = next(m for m in available_migrations() if m.version == 1)
        async with db.connection() as conn:
            await conn.execute(core.text)  # type: ignore[arg-type]
        for label in ("save_topology (empty tables)", "save_topology (replace)"):
            start = time.perf_counter()
            await save_topology(db, topology)
            save_s = time.perf_counter() - start
            print(f"  {label:<46} {save_s:8.3f} s  ({n_meters / save_s:,.0f} meters/s)")
        for customers in (False, True):
            start = time.perf_counter()
            loaded = await load_topology(db, customers=customers)
            load_s = time.perf_counter() - start
            label = f"load_topology(customers={customers})"
            print(f"  {label:<46} {load_s:8.3f} s  ({n_meters / load_s:,.0f} meters/s)")
            assert len(loaded.meters) == n_meters
        # Side by side: the same meter rows through a plain executemany INSERT.
        rows = [
            (m, str(topology.devices.ids[d]), None, str(topology.devices.zone[d]))
            for m, d in zip(
                topology.meters.ids.tolist(), topology.meters.device.tolist(), strict=True
            )
        ]
        async with db.connection() as conn:
            await conn.execute("TRUNCATE meters")
            start = time.perf_counter()
            await _copy_meters(conn, topology)
            copy_s = time.perf_counter() - start
            await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred checks
            await conn.execute("TRUNCATE meters")
            start = time.perf_counter()
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO meters (meter_id, device_id, customer_id, zone)"
                    " VALUES (%s, %s, %s, %s)",
                    rows,
                )
            ins_s = time.perf_counter() - start
            await conn.rollback()
        print(f"  {'meters table only: our COPY':<46} {copy_s:8.3f} s"
              f"  ({n_meters / copy_s:,.0f} meters/s)")  # fmt: skip
        print(f"  {'meters table only: raw executemany INSERT':<46} {ins_s:8.3f} s"
              f"  ({n_meters / ins_s:,.0f}/s); COPY {ins_s / copy_s:.1f}x faster")  # fmt: skip
    finally:
        await drop_schema(db)
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meters", type=int, default=1_000_000)
    parser.add_argument("--db-meters", type=int, default=100_000)
    args = parser.parse_args()
    print(f"topology benchmark: {os.cpu_count()} CPUs, numpy {np.__version__}")
    memory_section(args.meters)
    customers_section(args.meters)
    if args.db_meters:
        asyncio.run(db_section(args.db_meters))


if __name__ == "__main__":
    main()
