"""The service's ETR task against the real PostgreSQL: start-up model (active, fitted, or the
bundled prior), refreshes on event time, passed ETRs re-estimated at once, overrides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest

from detectors.etr import synthetic_history
from gridwatch.core.clock import ManualClock
from gridwatch.core.settings import load_settings
from gridwatch.etr import (
    EtrConfig,
    EtrRounds,
    EtrTaskOptions,
    etr_task,
    load_active_model,
    refit_model,
)
from gridwatch.outages import OperatorDesk, SetEtrOverride
from gridwatch.store import Database
from gridwatch.store import etr as store
from gridwatch.store.outages import OutageRow, save_outages
from tests.polling import count_calls, wait_until

NOW = 1_795_000_000.0
FAST = EtrTaskOptions(refresh_s=300.0, refit_s=86400.0, poll_event_s=0.02)
# The first round waits for the kernels to compile (slow on a cold cache and a busy CI).
STARTUP_S = 60.0


def ts(s: float) -> datetime:
    return datetime.fromtimestamp(s, UTC)


async def _devices(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone) VALUES"
            " ('F1', 'fuse', 'north'), ('T1', 'transformer', 'south')"
        )


async def _open(db: Database, n: int, *, cause: str | None = None) -> list[int]:
    rows = [
        OutageRow(
            engine_key=f"open-{i}",
            device_id="F1" if i % 2 else "T1",
            zone="north" if i % 2 else "south",
            state="confirmed",
            cause=cause or "unknown",
            started_s=NOW - 600.0 * (i + 1),
            confirmed_s=NOW - 600.0 * (i + 1) + 45.0,
            restored_s=None,
            confidence=0.9,
            meters_affected=10 * (i + 1),
            customers_affected=10 * (i + 1),
            meters_restored=0,
            customers_restored=0,
            parent_key=None,
        )
        for i in range(n)
    ]
    ids = await save_outages(db, rows)
    return [ids[r.engine_key] for r in rows]


async def _restored(db: Database, n: int, *, end_s: float = NOW) -> None:
    h = synthetic_history(n, seed=7, span_s=60 * 86400.0, start_s=end_s - 61 * 86400.0)
    async with db.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO outages (device_id, zone, state, started_at, restored_at, cause)"
            " VALUES (%s, 'north', 'restored', %s, %s, 'vegetation')",
            [
                ("F1" if i % 2 else "T1", ts(s), ts(s + d))
                for i, (s, d) in enumerate(zip(h.started_at_s, h.true_duration_s, strict=True))
            ],
        )


async def _history_count(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM etr_history")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@asynccontextmanager
async def _running(
    db: Database, clock: ManualClock, options: EtrTaskOptions = FAST
) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(etr_task(db, clock, stop, load_settings(), options=options))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)


async def test_empty_database_starts_from_the_prior_then_refits(db: Database) -> None:
    await _devices(db)
    ids = await _open(db, 2)
    clock = ManualClock(NOW)
    async with _running(db, clock):
        await wait_until(
            lambda: _at_least(db, 2), timeout_s=STARTUP_S, interval_s=0.02, what="2 ETRs stored"
        )
        prior = await load_active_model(db)
        assert prior.version.startswith("etr-prior-")
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT outage_id, etr_p10, etr_p50, etr_p90, etr_model_version FROM outages"
                " WHERE outage_id = ANY(%s) ORDER BY outage_id",
                [ids],
            )
            rows = await cur.fetchall()
        for r in rows:
            assert r[4] == prior.version
            assert NOW < r[1].timestamp() <= r[2].timestamp() <= r[3].timestamp()
        # The history grows enough to fit: the next refresh replaces the prior.
        await _restored(db, 300)
        clock.advance(FAST.refresh_s)

        async def fitted() -> bool:
            return not (await load_active_model(db)).version.startswith("etr-prior-")

        await wait_until(fitted, interval_s=0.02, what="a fitted model to replace the prior")
    model = await load_active_model(db)
    assert "storm_thresholds" in model.model.info  # calibrated on the history, kept with it


async def _at_least(db: Database, n: int) -> bool:
    return await _history_count(db) >= n


async def test_fits_from_the_database_without_an_active_model(db: Database) -> None:
    await _devices(db)
    await _restored(db, 300)
    (oid,) = await _open(db, 1)
    clock = ManualClock(NOW)
    async with _running(db, clock):
        await wait_until(
            lambda: _at_least(db, 1), timeout_s=STARTUP_S, interval_s=0.02, what="the first ETR"
        )
    model = await load_active_model(db)
    assert model.version.startswith("etr-2026")
    (row,) = await store.etr_history(db, oid)
    assert row.model_version == model.version
    assert row.source == "model"
    assert row.inputs["class"]["device_kind"] == "transformer"


async def test_refresh_runs_on_event_time_and_passed_etrs_are_redone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _devices(db)
    await _restored(db, 300)
    clock = ManualClock(NOW)
    active = await refit_model(db, clock)
    (oid,) = await _open(db, 1)
    passes = count_calls(monkeypatch, EtrRounds, "tick")
    async with _running(db, clock):
        await wait_until(
            lambda: _at_least(db, 1), timeout_s=STARTUP_S, interval_s=0.02, what="the first ETR"
        )
        first = (await store.etr_history(db, oid))[0]
        # Wall time passes, event time does not: the task looks at the clock again (two
        # whole passes after the one that wrote the first ETR) and stores no new ETR.
        await wait_until(
            passes.at_least(passes.done + 3), interval_s=0.02, what="two more ETR task passes"
        )
        assert await _history_count(db) == 1
        # Event time runs past the P50: re-estimated at once, never left in the past.
        clock.set(first.p50_s + 1.0)
        await wait_until(lambda: _at_least(db, 2), interval_s=0.02, what="a second ETR")
        latest = (await store.etr_history(db, oid))[0]
        assert latest.p10_s > first.p50_s
        assert latest.model_version == active.version  # loaded, not refitted
        assert latest.inputs["elapsed_s"] == pytest.approx(first.p50_s + 1.0 - (NOW - 600.0))


async def test_overrides_win_and_expire_into_a_model_etr(db: Database) -> None:
    await _devices(db)
    await _restored(db, 300)
    clock = ManualClock(NOW)
    await refit_model(db, clock)
    (oid,) = await _open(db, 1)
    desk = OperatorDesk(db, clock)
    await desk.set_etr_override(
        SetEtrOverride(oid, ts(NOW + 3600.0), "crew on site: pole", "crew-3")
    )
    async with _running(db, clock):

        async def sourced(kind: str, n: int) -> bool:
            rows = await store.etr_history(db, oid)
            return len(rows) >= n and rows[0].source == kind

        # The override wrote one row; the task's refresh keeps the override in force.
        await wait_until(
            lambda: sourced("override", 2), interval_s=0.02, what="the override refreshed"
        )
        clock.set(NOW + 3700.0)  # passed unrestored
        await wait_until(
            lambda: sourced("model", 3), interval_s=0.02, what="a model ETR after the override"
        )
    assert await store.active_overrides(db, [oid]) == {}
    (latest, *_) = await store.etr_history(db, oid)
    assert latest.p10_s > NOW + 3700.0


async def test_hostile_outages_get_an_etr_and_the_good_ones_too(db: Database) -> None:
    await _devices(db)
    await _restored(db, 300)
    ids = await _open(db, 2, cause="x" * 1500 + "\u202e?")  # unrecognised free text: "other"
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO outages (device_id, zone, state, started_at, customers_affected)"
            " VALUES ('NO-SUCH-DEVICE', 'nowhere', 'confirmed', %s, 2000000000)"
            " RETURNING outage_id",
            [ts(NOW + 3600.0)],  # starts in the future: clock skew
        )
        row = await cur.fetchone()
    assert row is not None
    clock = ManualClock(NOW)
    async with _running(db, clock):
        await wait_until(
            lambda: _at_least(db, 3), timeout_s=STARTUP_S, interval_s=0.02, what="3 ETRs stored"
        )
    for oid in [*ids, int(row[0])]:
        (etr,) = await store.etr_history(db, oid)
        assert NOW < etr.p10_s <= etr.p50_s <= etr.p90_s
    (odd,) = await store.etr_history(db, int(row[0]))
    assert odd.inputs["class"]["device_kind"] == "unknown"
    assert odd.inputs["elapsed_s"] == 0.0


async def test_a_failed_round_does_not_stop_the_task(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _devices(db)
    await _restored(db, 300)
    clock = ManualClock(NOW)
    await refit_model(db, clock)
    async with db.connection() as conn:
        await conn.execute("ALTER TABLE etr_history RENAME TO etr_history_away")
    (oid,) = await _open(db, 1)
    passes = count_calls(monkeypatch, EtrRounds, "tick")
    async with _running(db, clock) as task:
        # The first pass's round fails (no etr_history); the task goes on to the next pass.
        await wait_until(
            passes.at_least(2), timeout_s=STARTUP_S, interval_s=0.02, what="two ETR task passes"
        )
        assert not task.done()
        async with db.connection() as conn:
            await conn.execute("ALTER TABLE etr_history_away RENAME TO etr_history")
        clock.advance(FAST.refresh_s)
        await wait_until(
            lambda: _at_least(db, 1), timeout_s=STARTUP_S, interval_s=0.02, what="the first ETR"
        )
    assert (await store.etr_history(db, oid))[0].source == "model"


def test_options_from_settings_and_their_limits() -> None:
    assert EtrTaskOptions.from_settings(load_settings()) == EtrTaskOptions()
    got = EtrTaskOptions.from_settings(
        SimpleNamespace(
            etr_refresh_s=60, etr_refit_s=3600, etr_default_crews=2, etr_crews_per_zone={"Z1": 7}
        )
    )
    assert (got.refresh_s, got.refit_s, got.etr.crews("Z1"), got.etr.crews("Z2")) == (
        60.0,
        3600.0,
        7,
        2,
    )
    for bad in (
        {"etr_refresh_s": -1},
        {"etr_refresh_s": float("nan")},
        {"etr_refresh_s": 1e12},
        {"etr_refit_s": 1},
        {"etr_poll_event_s": 0},
        {"loop_lag_budget_event_s": 0},
        {"etr_default_crews": 0},
        {"etr_crews_per_zone": {"Z1": 0}},
        {"etr_crews_per_zone": {"Z1": "many"}},
        {"etr_lookback_days": 0},
    ):
        with pytest.raises(ValueError, match=r"etr|invalid literal|could not convert"):
            EtrTaskOptions.from_settings(SimpleNamespace(**bad))


def test_the_prior_is_deterministic() -> None:
    from gridwatch.etr import default_prior_model, model_version

    _, a = default_prior_model()
    _, b = default_prior_model()
    assert model_version(a, NOW) == model_version(b, NOW)
    np.testing.assert_array_equal(a.p1, b.p1)
    assert EtrConfig().calibrate_thresholds
