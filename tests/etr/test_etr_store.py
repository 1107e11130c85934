"""ETR lifecycle against the real PostgreSQL: refit from restored outages, versioned model,
ETRs recorded with model version and inputs, overrides, notices."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from detectors.etr import synthetic_history
from gridwatch.core.clock import ManualClock
from gridwatch.etr import (
    EtrConfig,
    HistoryRejected,
    ModelUnavailable,
    OverrideRefused,
    load_active_model,
    refit_model,
    refresh_open_etrs,
)
from gridwatch.outages import ClearEtrOverride, OperatorDesk, SetEtrOverride
from gridwatch.store import Database
from gridwatch.store import etr as store

NOW = 1_795_000_000.0


def ts(s: float) -> datetime:
    return datetime.fromtimestamp(s, UTC)


async def set_override(
    db: Database, clock: ManualClock, outage_id: int, etr_at_s: float, reason: str, set_by: str
) -> int:
    """An override through the operator desk (no operator token behind it: no audit)."""
    command = SetEtrOverride(outage_id, ts(etr_at_s), reason, set_by)
    return await OperatorDesk(db, clock).set_etr_override(command)


async def clear_override(db: Database, clock: ManualClock, outage_id: int) -> bool:
    return await OperatorDesk(db, clock).clear_etr_override(ClearEtrOverride(outage_id))


async def _seed(db: Database, n_restored: int = 400, n_open: int = 3) -> list[int]:
    h = synthetic_history(n_restored, seed=4, span_s=60 * 86400.0, start_s=NOW - 61 * 86400.0)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone) VALUES"
            " ('F1', 'fuse', 'north'), ('T1', 'transformer', 'south')"
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO outages (device_id, zone, state, started_at, restored_at, cause)"
                " VALUES (%s, %s, 'restored', %s, %s, %s)",
                [
                    (
                        "F1" if i % 2 else "T1",
                        "north",
                        ts(s),
                        ts(s + d),
                        "vegetation" if i % 3 else None,
                    )
                    for i, (s, d) in enumerate(zip(h.started_at_s, h.true_duration_s, strict=True))
                ],
            )
            # Rows the refit must skip or censor.
            await cur.execute(
                "INSERT INTO outages (device_id, zone, state, started_at, restored_at, planned)"
                " VALUES ('F1', 'north', 'restored', %s, %s, true)",
                [ts(NOW - 86400), ts(NOW - 80000)],
            )
            await cur.execute(
                "INSERT INTO outages (device_id, zone, state, started_at, restored_at)"
                " VALUES ('F1', 'north', 'restored', %s, %s)",  # restored before it started
                [ts(NOW - 5000), ts(NOW - 9000)],
            )
        ids = []
        for i in range(n_open):
            cur = await conn.execute(
                "INSERT INTO outages (device_id, zone, state, started_at, customers_affected)"
                " VALUES (%s, %s, 'confirmed', %s, %s) RETURNING outage_id",
                [
                    "F1" if i % 2 else "T1",
                    "north" if i % 2 else "south",
                    ts(NOW - 600 * (i + 1)),
                    10 * (i + 1),
                ],
            )
            row = await cur.fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


async def test_refit_save_load_and_refresh(db: Database) -> None:
    with pytest.raises(ModelUnavailable):
        await load_active_model(db)
    open_ids = await _seed(db)
    clock = ManualClock(NOW)
    fitted = await refit_model(db, clock)
    assert fitted.version.startswith("etr-")
    info = fitted.model.info
    assert info["n_censored"] >= 3  # the open outages are censored, not dropped
    assert info["n_used"] == 400 + 3  # planned and restore-before-start rows skipped
    loaded = await load_active_model(db)
    assert loaded.version == fitted.version
    np.testing.assert_array_equal(loaded.model.p1, fitted.model.p1)

    batch = await refresh_open_etrs(db, clock, loaded)
    assert {e.outage_id for e in batch.estimates} == set(open_ids)
    hist = await store.etr_history(db, open_ids[0])
    assert len(hist) == 1
    assert hist[0].model_version == fitted.version
    assert hist[0].inputs["class"]["device_kind"] == "transformer"
    assert hist[0].inputs["elapsed_s"] == pytest.approx(600.0)
    assert hist[0].p10_s >= NOW
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT etr_p50, etr_model_version FROM outages WHERE outage_id = %s", [open_ids[0]]
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0].timestamp() == pytest.approx(hist[0].p50_s)
    assert row[1] == fitted.version

    # An ETR that has passed is re-estimated later, never left behind now.
    clock.set(hist[0].p90_s + 60.0)
    batch2 = await refresh_open_etrs(db, clock, loaded)
    assert all(e.p10_s > clock.now_s() for e in batch2.estimates)

    # A second refit becomes the single active version.
    clock.advance(3600.0)
    second = await refit_model(db, clock)
    models = await store.list_models(db)
    assert [m["active"] for m in models].count(True) == 1
    assert (await load_active_model(db)).version == second.version
    assert (await load_active_model(db, fitted.version)).version == fitted.version


async def test_refit_refuses_an_empty_history(db: Database) -> None:
    with pytest.raises(HistoryRejected, match="usable restored outages"):
        await refit_model(db, ManualClock(NOW))


async def test_overrides(db: Database) -> None:
    open_ids = await _seed(db, n_restored=200, n_open=2)
    clock = ManualClock(NOW)
    model = await refit_model(db, clock)
    target = open_ids[0]
    with pytest.raises(OverrideRefused, match="in the past"):
        await set_override(db, clock, target, NOW - 60.0, "crew says", "op1")
    with pytest.raises(OverrideRefused, match="days ahead"):
        await set_override(db, clock, target, NOW + 2 * 365 * 86400.0, "crew says", "op1")
    with pytest.raises(OverrideRefused, match="reason"):
        await set_override(db, clock, target, NOW + 3600.0, "", "op1")
    with pytest.raises(OverrideRefused, match="does not exist"):
        await set_override(db, clock, 10**9, NOW + 3600.0, "crew says", "op1")

    await set_override(db, clock, target, NOW + 7200.0, "pole replacement", "crew-7")
    # A second override replaces the first (one in force per outage).
    await set_override(db, clock, target, NOW + 9000.0, "pole replacement, 2nd pole", "crew-7")
    batch = await refresh_open_etrs(db, clock, model)
    mine = next(e for e in batch.estimates if e.outage_id == target)
    assert (mine.source, mine.p50_s) == ("override", NOW + 9000.0)
    assert mine.inputs["override"]["reason"] == "pole replacement, 2nd pole"

    # It passes unrestored: expired at once, and the model takes over.
    clock.set(NOW + 9100.0)
    batch = await refresh_open_etrs(db, clock, model)
    mine = next(e for e in batch.estimates if e.outage_id == target)
    assert batch.expired_overrides == [target]
    assert mine.source == "model"
    assert mine.p10_s > clock.now_s()
    assert await store.active_overrides(db, [target]) == {}

    await set_override(db, clock, target, clock.now_s() + 3600.0, "again", "op2")
    assert await clear_override(db, clock, target)
    assert not await clear_override(db, clock, target)

    async with db.connection() as conn:
        await conn.execute("UPDATE outages SET state = 'restored' WHERE outage_id = %s", [target])
    with pytest.raises(OverrideRefused, match="restored"):
        await set_override(db, clock, target, clock.now_s() + 3600.0, "late", "op2")


async def test_notices_roundtrip(db: Database) -> None:
    (oid,) = await _seed(db, n_restored=20, n_open=1)
    assert await store.get_notice(db, oid) is None
    notice = store.NoticeRow(oid, NOW, NOW, NOW + 1800, NOW + 3600, NOW + 2700, 0)
    async with db.connection() as conn:
        await store.save_notice(conn, notice)
    async with db.connection() as conn:
        await store.save_notice(
            conn, store.NoticeRow(oid, NOW, NOW + 60, NOW + 900, NOW + 1800, NOW + 1200, 1)
        )
    got = await store.get_notice(db, oid)
    assert got is not None
    assert got.first_at_s == NOW
    assert got.updates_sent == 1
    assert got.window_end_s == NOW + 1800


async def test_config_crews_feed_the_zone_etr(db: Database) -> None:
    await _seed(db, n_restored=300, n_open=3)
    clock = ManualClock(NOW)
    model = await refit_model(db, clock)
    batch = await refresh_open_etrs(
        db, clock, model, config=EtrConfig(default_crews=1, backlog_runs=20)
    )
    zones = {z.zone: z for z in batch.zones}
    assert zones["south"].open_outages == 2
    assert zones["south"].crews == 1
    assert {
        e.source for e in batch.estimates if e.inputs.get("backlog", {}).get("zone") == "south"
    } == {"backlog"}
