"""Outage persistence on the real PostgreSQL (migrated schema per test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import detectors as d
from gridwatch import StoreError
from gridwatch.outages import Names, OutageEngine, momentary_rows, rows_for_changes
from gridwatch.store import Database
from gridwatch.store.customer_reports import add_customer_report
from gridwatch.store.outage_queries import (
    load_open_outages,
    load_outage,
    load_outage_meters,
    load_timeline,
)
from gridwatch.store.outages import OutageRow, save_outages
from gridwatch.store.planned import PlannedRow, add_planned_outage, planned_outages_between
from gridwatch.store.reliability import momentary_customer_interruptions, record_momentaries
from tests.engine_support import FEEDER_METER_DEVICE as METER_DEVICE
from tests.engine_support import T, rows
from tests.engine_support import feeder_meters as meters_of
from tests.engine_support import feeder_network as network

NAMES = Names(
    device_ids=np.array([f"D{i}" for i in range(10)], dtype=object),
    device_zone=np.array(["north"] * 10, dtype=object),
    meter_ids=np.array([f"M-{i:04d}" for i in range(METER_DEVICE.size)], dtype=object),
    customer_ids=np.array([f"C{i}" for i in range(METER_DEVICE.size)], dtype=object),
    meter_customer=np.arange(METER_DEVICE.size, dtype=np.int32),
)


async def test_engine_changes_persist_through_the_lifecycle(db: Database) -> None:
    eng = OutageEngine(network(), now_s=T - 600)
    eng.apply(rows(list(range(METER_DEVICE.size)), T - 600, d.READING, 230.0))
    eng.tick(T)
    eng.apply(rows(meters_of(4)[::2] + meters_of(5)[::2], T + 1, d.LAST_GASP))
    changes = eng.tick(T + 50)
    eng.pings_wanted()
    changes += eng.tick(T + 120)
    ids = await save_outages(db, *rows_for_changes(eng.outages, changes, NAMES))
    (key,) = ids
    (row,) = await load_open_outages(db)
    assert row["state"] == "confirmed"
    assert row["device_id"] == "D3"
    assert row["meters_affected"] == 12
    assert row["started_at"].timestamp() == T + 1
    # Restoration, then a nested outage pointing at its parent.
    eng.tick(T + 600)
    later = eng.apply(rows(meters_of(5), T + 600, d.POWER_RESTORE))
    eng.pings_wanted()  # restore pings to transformer 4 go out, nobody answers
    later += eng.tick(T + 700)
    ids = await save_outages(db, *rows_for_changes(eng.outages, later, NAMES))
    parent = await load_outage(db, key)
    assert parent is not None
    assert parent["state"] == "restored"
    assert parent["meters_restored"] == 6
    assert parent["customers_restored"] == 6
    nested_key = next(k for k in ids if k != key)
    nested = await load_outage(db, nested_key)
    assert nested is not None
    assert nested["parent_outage_id"] == ids[key]
    meters = dict((m, s) for m, s, _ in await load_outage_meters(db, ids[key]))
    assert {meters[f"M-{m:04d}"] for m in meters_of(4)} == {"transferred"}
    assert {meters[f"M-{m:04d}"] for m in meters_of(5)} == {"restored"}
    kinds = [k for _, k, _ in await load_timeline(db, ids[key])]
    assert kinds[:2] == ["predicted", "confirmed"]
    assert kinds[-1] == "restored"
    assert [r["engine_key"] for r in await load_open_outages(db)] == [nested_key]


async def test_an_outage_that_moved_keeps_no_row_for_meters_it_left(db: Database) -> None:
    """A predicted outage on fuse 3 moves down to transformer 4 when transformer 5's meters
    answer "on": transformer 5's rows go with it. Left "out", an ETR update (sent to the
    meters out) would reach customers the outage no longer holds."""
    eng = OutageEngine(network(), now_s=T - 600)
    eng.apply(rows(list(range(METER_DEVICE.size)), T - 600, d.READING, 230.0))
    eng.tick(T)
    changes = eng.apply(rows(meters_of(4)[:3] + meters_of(5)[:1], T + 1, d.LAST_GASP))
    changes += eng.tick(T + 50)
    ids = await save_outages(db, *rows_for_changes(eng.outages, changes, NAMES))
    (key,) = ids
    before = await load_outage_meters(db, ids[key])
    assert {m for m, _, _ in before} == {f"M-{m:04d}" for m in meters_of(4) + meters_of(5)}
    lit = [p.meter for p in eng.pings_wanted() if METER_DEVICE[p.meter] == 5]
    later = eng.apply(rows(lit, T + 52, d.PING_ON))
    later += eng.apply(rows(meters_of(5)[1:], T + 53, d.READING, 229.0))
    assert "moved" in [c.kind for c in later]
    await save_outages(db, *rows_for_changes(eng.outages, later, NAMES))
    after = await load_outage_meters(db, ids[key])
    assert sorted(m for m, _, _ in after) == [f"M-{m:04d}" for m in meters_of(4)]
    # A step with no move never drops a row (the upsert writes what it is given).
    out_rows, meter_rows, _ = rows_for_changes(eng.outages, later, NAMES)
    await save_outages(db, out_rows, meter_rows[:2], [])
    assert len(await load_outage_meters(db, ids[key])) == len(meters_of(4))


async def test_momentaries_planned_and_reports(db: Database) -> None:
    eng = OutageEngine(network(), now_s=T)
    eng.apply(
        scada_evidence=np.array(
            [(2, T + 1, d.SCADA_TRIP), (2, T + 2, d.SCADA_RECLOSE)], dtype=d.SCADA_EVIDENCE_DTYPE
        )
    )
    eng.tick(T + 2 + eng.config.reclose_sequence_s)  # the sequence ended without a lockout
    assert await record_momentaries(db, momentary_rows(eng.take_momentaries(), NAMES)) == 1
    assert await momentary_customer_interruptions(db, T, T + 10) == 18
    await add_planned_outage(
        db, PlannedRow("works-7", "D3", "north", T, T + 3600, "pole"), now_s=T - 86400
    )
    (p,) = await planned_outages_between(db, T + 10, T + 20)
    assert p.planned_id == "works-7"
    assert p.ends_s == T + 3600
    assert await planned_outages_between(db, T + 4000, T + 5000) == []
    assert await add_customer_report(db, reported_s=T, kind="out", meter_id="M-0001") > 0


async def test_bad_rows_are_refused_with_store_errors(db: Database) -> None:
    with pytest.raises(StoreError):
        await add_planned_outage(db, PlannedRow("bad", "D3", "north", T, T - 1), now_s=T)
    with pytest.raises(StoreError):
        await add_planned_outage(db, PlannedRow("bad id with spaces", "D3", "n", T, T + 1), now_s=T)
    with pytest.raises(StoreError):
        await add_customer_report(db, reported_s=T, kind="maybe", meter_id="M-1")
    with pytest.raises(StoreError):
        await add_customer_report(db, reported_s=T, kind="out")  # neither customer nor meter
    with pytest.raises(StoreError):
        await add_customer_report(db, reported_s=T, kind="out", meter_id="M", note="x" * 5000)
    row = OutageRow(
        "k1", "D3", "north", "predicted", "inferred", math.inf, None, None, 0.5, 1, 1, 0, 0, None
    )
    with pytest.raises(StoreError, match="finite"):
        await save_outages(db, [row])
    with pytest.raises(StoreError, match="state"):
        await save_outages(db, [row._replace(started_s=T, state="exploded")])
    with pytest.raises(StoreError, match="confidence"):
        await save_outages(db, [row._replace(started_s=T, confidence=2.0)])
    assert await load_open_outages(db) == []  # nothing half-written
