"""Issue #12: every periodic loop that shapes a decision or a notice runs on the service
clock, on the real PostgreSQL. At 600x a wall-second poll is ten minutes of grid time: a
new outage waited that long for its first ETR, customers for a new ETR, a planned job for
its notice (turning a notice given in time into a short-notice emergency one). A loop made
slower than its budget says so (gauge, counter, warning) instead of deciding differently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from api_support import NOW_S, seed_network

from gridwatch.core import metrics
from gridwatch.core.clock import ManualClock, ReplayClock
from gridwatch.core.pacing import EventPacer
from gridwatch.core.settings import load_settings
from gridwatch.etr import EtrTaskOptions, etr_task
from gridwatch.notices.outage_notices import NotifyBridge
from gridwatch.notices.planned_notices import PlannedNoticeConsumer
from gridwatch.store import Database
from gridwatch.store.etr import EtrRow, record_etrs
from gridwatch.store.outages import OutageRow, save_outages
from notifier import NotifyPolicy, load_templates
from tests.outage_notices_support import ALL_OUT, meter_rows, outage_row, persist_step, seed_feeder
from tests.polling import wait_until

FAST_SPEED = 600.0  # the replay speed
# How late (event seconds) a pass may see a change at 600x here: the 10 ms wall floor is
# 6 s, the rest (0.3 wall s) is a shared 2-core machine's slack. The old wall-second poll
# saw it ~590 s late (it had just passed when the change was written).
WITHIN_EVENT_S = 180.0
# For the lag tests: slow enough that a healthy pass stays well inside the budget.
LAG_SPEED = 60.0
BUDGET_EVENT_S = 30.0
SLOW_WALL_S = 1.0  # 60 event s at LAG_SPEED: twice the budget


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    """A short poll: at 600x, 5 ms of wall time is 3 s of the event time measured here."""
    await wait_until(check, what=what, timeout_s=timeout_s, interval_s=0.005)


async def _scalar(db: Database, sql: str, params: list[Any]) -> Any:
    async with db.connection() as conn:
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
    return None if row is None else row[0]


def _ts(s: float) -> datetime:
    return datetime.fromtimestamp(s, UTC)


@asynccontextmanager
async def _task(coro: Awaitable[None], stop: asyncio.Event) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)


def _lag(loop: str) -> float | None:
    return metrics.REGISTRY.get_sample_value("gridwatch_event_lag_seconds", {"loop": loop})


def _behind_warnings(caplog: pytest.LogCaptureFixture, loop: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gridwatch.core.clock" and r.getMessage().startswith(f"{loop} is ")
    ]


# -- the ETR task -----------------------------------------------------------------------------


async def _etr_devices(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone) VALUES ('F1', 'fuse', 'north')"
        )


async def _open_outage(db: Database, key: str, started_s: float) -> int:
    row = OutageRow(
        engine_key=key,
        device_id="F1",
        zone="north",
        state="predicted",
        cause="inferred",
        started_s=started_s,
        confirmed_s=None,
        restored_s=None,
        confidence=0.6,
        meters_affected=10,
        customers_affected=10,
        meters_restored=0,
        customers_restored=0,
        parent_key=None,
    )
    return (await save_outages(db, [row]))[key]


async def _first_etr_s(db: Database, outage_id: int) -> float | None:
    at = await _scalar(
        db, "SELECT min(computed_at) FROM etr_history WHERE outage_id = %s", [outage_id]
    )
    return None if at is None else float(at.timestamp())


async def test_a_new_outage_gets_its_first_etr_within_seconds_of_grid_time_at_600x(
    db: Database,
) -> None:
    await _etr_devices(db)
    clock = ReplayClock(NOW_S, FAST_SPEED)
    first = await _open_outage(db, "a", clock.now_s())
    stop = asyncio.Event()
    async with _task(etr_task(db, clock, stop, load_settings()), stop):
        await _until(lambda: _has_etr(db, first), "the first outage's ETR", timeout_s=60.0)
        # The task has just passed: a wall-second poll would now sleep ten grid minutes.
        second = await _open_outage(db, "b", clock.now_s())
        written_s = clock.now_s()
        await _until(lambda: _has_etr(db, second), "the second outage's ETR")
    etr_s = await _first_etr_s(db, second)
    assert etr_s is not None
    assert etr_s - written_s < WITHIN_EVENT_S, etr_s - written_s


async def _has_etr(db: Database, outage_id: int) -> bool:
    return await _first_etr_s(db, outage_id) is not None


async def test_a_slow_etr_pass_raises_the_lag_gauge_and_warns(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gridwatch.store import etr as etr_store

    await _etr_devices(db)
    clock = ReplayClock(NOW_S, LAG_SPEED)
    await _open_outage(db, "a", clock.now_s())
    slow = asyncio.Event()
    looks = etr_store.open_outages_without_etr

    async def slow_looks(database: Database) -> list[int]:
        if slow.is_set():
            await asyncio.sleep(SLOW_WALL_S)  # a database that cannot keep up
        return await looks(database)

    monkeypatch.setattr(etr_store, "open_outages_without_etr", slow_looks)
    options = EtrTaskOptions(poll_event_s=1.0, lag_budget_event_s=BUDGET_EVENT_S)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="gridwatch.core.clock")
    async with _task(etr_task(db, clock, stop, load_settings(), options=options), stop):
        await _until(
            lambda: _below("etr", BUDGET_EVENT_S),
            "the ETR loop's lag within budget",
            timeout_s=60.0,
        )
        assert _behind_warnings(caplog, "etr") == []
        slow.set()
        await _until(lambda: _above("etr", BUDGET_EVENT_S), "the ETR loop's lag over budget")
    assert _behind_warnings(caplog, "etr"), caplog.text


async def _below(loop: str, budget_s: float) -> bool:
    lag = _lag(loop)
    return lag is not None and lag < budget_s


async def _above(loop: str, budget_s: float) -> bool:
    lag = _lag(loop)
    return lag is not None and lag > budget_s


# -- the notify bridge's ETR notices ----------------------------------------------------------


async def _etr_notice_s(db: Database, outage_id: int) -> float | None:
    at = await _scalar(db, "SELECT first_at FROM etr_notices WHERE outage_id = %s", [outage_id])
    return None if at is None else float(at.timestamp())


async def _set_etr(db: Database, outage_id: int, now_s: float) -> None:
    p50_s = now_s + 7200.0
    await record_etrs(
        db, [EtrRow(outage_id, now_s, p50_s - 1800, p50_s, p50_s + 1800, "model", "v1", {})]
    )


async def _two_confirmed_outages(db: Database, bridge: NotifyBridge, at_s: float) -> list[int]:
    await seed_feeder(db)
    ids = []
    for key, device in (("o1", "BRK"), ("o2", "TX")):
        meters = {m: s for m, s in ALL_OUT.items() if (m in ("M-K4", "M-K5")) == (device == "TX")}
        p = await persist_step(
            db, bridge, [outage_row(key, device, "confirmed")], meter_rows(key, meters), at_s
        )
        ids.append(p.outage_ids[key])
    return ids


async def test_customers_hear_a_new_etr_within_seconds_of_grid_time_at_600x(
    db: Database,
) -> None:
    bridge = NotifyBridge(load_templates())
    clock = ReplayClock(NOW_S, FAST_SPEED)
    first, second = await _two_confirmed_outages(db, bridge, clock.now_s())
    stop = asyncio.Event()
    async with _task(bridge.run_etr_notices(db, clock, stop), stop):
        await _set_etr(db, first, clock.now_s())
        await _until(lambda: _told_etr(db, first), "customers told the first ETR")
        await _set_etr(db, second, clock.now_s())
        written_s = clock.now_s()
        await _until(lambda: _told_etr(db, second), "customers told the second ETR")
    told_s = await _etr_notice_s(db, second)
    assert told_s is not None
    assert told_s - written_s < WITHIN_EVENT_S, told_s - written_s


async def _told_etr(db: Database, outage_id: int) -> bool:
    return await _etr_notice_s(db, outage_id) is not None


async def test_a_slow_etr_notice_round_raises_the_lag_gauge_and_warns(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gridwatch.store import outage_context as bridge_store

    bridge = NotifyBridge(load_templates())
    clock = ReplayClock(NOW_S, LAG_SPEED)
    await _two_confirmed_outages(db, bridge, clock.now_s())
    slow = asyncio.Event()
    candidates = bridge_store.etr_candidates

    async def slow_candidates(conn: Any, limit: int = 10_000) -> Any:
        if slow.is_set():
            await asyncio.sleep(SLOW_WALL_S)
        return await candidates(conn, limit)

    monkeypatch.setattr("gridwatch.notices.outage_notices.etr_candidates", slow_candidates)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="gridwatch.core.clock")
    loop = bridge.run_etr_notices(db, clock, stop, lag_budget_event_s=BUDGET_EVENT_S)
    async with _task(loop, stop):
        await _until(
            lambda: _below("etr-notices", BUDGET_EVENT_S), "the ETR-notice loop's lag within budget"
        )
        assert _behind_warnings(caplog, "etr-notices") == []
        slow.set()
        await _until(
            lambda: _above("etr-notices", BUDGET_EVENT_S), "the ETR-notice loop's lag over budget"
        )
    assert _behind_warnings(caplog, "etr-notices"), caplog.text


# -- planned work -----------------------------------------------------------------------------


async def _plan(db: Database, planned_id: str, starts_at_s: float) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO planned_outage_events (planned_id, kind, version, device_id, zone,"
            " starts_at, ends_at, reason) VALUES (%s, 'created', 1, 'T1', 'Z1', %s, %s, 'x')",
            [planned_id, _ts(starts_at_s), _ts(starts_at_s + 4 * 3600.0)],
        )


async def _scheduled_s(db: Database, planned_id: str) -> float | None:
    at = await _scalar(
        db,
        "SELECT t.at FROM outage_timeline t JOIN planned_notice_outages m USING (outage_id)"
        " WHERE m.planned_id = %s AND t.kind = 'planned_scheduled'",
        [planned_id],
    )
    return None if at is None else float(at.timestamp())


async def _handled(db: Database, planned_id: str) -> bool:
    return await _scheduled_s(db, planned_id) is not None


async def test_a_planned_job_notice_given_in_time_stays_ordinary_at_600x(db: Database) -> None:
    """A job accepted five days and 400 grid seconds ahead is an ordinary notice live; a
    wall-second poll at 600x consumed it ten grid minutes later, as a short-notice one."""
    await seed_network(db)
    clock = ReplayClock(NOW_S, FAST_SPEED)
    policy = NotifyPolicy()
    consumer = PlannedNoticeConsumer(db, clock=clock, policy=policy)
    stop = asyncio.Event()
    async with _task(consumer.run(stop), stop):
        await _plan(db, "WO-1", clock.now_s() + 10 * 86400.0)
        await _until(lambda: _handled(db, "WO-1"), "planned job WO-1 handled")
        written_s = clock.now_s()
        # Ordinary if consumed within 400 grid seconds (live: within one).
        await _plan(db, "WO-2", written_s + policy.planned_min_notice_s + 400.0)
        await _until(lambda: _handled(db, "WO-2"), "planned job WO-2 handled")
    handled_s = await _scheduled_s(db, "WO-2")
    assert handled_s is not None
    assert handled_s - written_s < WITHIN_EVENT_S, handled_s - written_s
    urgent = await _scalar(
        db,
        "SELECT bool_or(n.urgent) FROM notifications n JOIN planned_notice_outages m"
        " USING (outage_id) WHERE m.planned_id = 'WO-2'",
        [],
    )
    assert urgent is False


async def test_a_slow_planned_round_raises_the_lag_gauge_and_warns(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gridwatch.store import planned as planned_store

    await seed_network(db)
    clock = ReplayClock(NOW_S, LAG_SPEED)
    slow = asyncio.Event()
    claim = planned_store.claim_next_event

    async def slow_claim(conn: Any) -> Any:
        if slow.is_set():
            await asyncio.sleep(SLOW_WALL_S)
        return await claim(conn)

    monkeypatch.setattr("gridwatch.notices.planned_notices.claim_next_event", slow_claim)
    consumer = PlannedNoticeConsumer(db, clock=clock, lag_budget_event_s=BUDGET_EVENT_S)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="gridwatch.core.clock")
    async with _task(consumer.run(stop), stop):
        await _until(
            lambda: _below("planned-notices", BUDGET_EVENT_S),
            "the planned-notice loop's lag within budget",
        )
        assert _behind_warnings(caplog, "planned-notices") == []
        slow.set()
        await _until(
            lambda: _above("planned-notices", BUDGET_EVENT_S),
            "the planned-notice loop's lag over budget",
        )
    assert _behind_warnings(caplog, "planned-notices"), caplog.text


# -- the pacer itself -------------------------------------------------------------------------


def test_the_pacer_waits_event_time_and_counts_late_passes_as_lag() -> None:
    clock = ReplayClock(NOW_S, 600.0, deferred=True)  # held still until start()
    pacer = EventPacer(clock, "test-pacer", interval_event_s=6.0, budget_event_s=30.0)
    assert pacer.begin() == NOW_S
    assert pacer.end() == 0.0
    assert pacer.wall_wait_s() == pytest.approx(0.01)  # 6 event s at 600x
    manual = ManualClock(NOW_S)
    pacer = EventPacer(manual, "test-pacer", interval_event_s=5.0, budget_event_s=30.0)
    pacer.begin()
    pacer.end()
    assert pacer.wall_wait_s() == 5.0  # a manual clock: speed 1
    manual.advance(45.0)  # the next pass was due at +5 s and ends at +45 s
    pacer.begin()
    assert pacer.end() == 40.0
    assert _lag("test-pacer") == 40.0
    assert pacer.wall_wait_s() == 5.0  # due an interval after this pass began
    manual.advance(9.0)
    assert pacer.wall_wait_s() == 0.0  # overdue: at once


async def test_run_etr_loop_refreshes_on_grid_time_at_600x(db: Database) -> None:
    """``run_etr_loop`` waited its refresh delay (event seconds) as wall seconds: at 600x a
    5-minute refresh came every 50 grid hours."""
    from gridwatch.etr import default_prior_model, run_etr_loop, save_fitted_model

    await _etr_devices(db)
    clock = ReplayClock(NOW_S, FAST_SPEED)
    cols, model = default_prior_model()
    await save_fitted_model(db, model, clock.now_s(), cols)
    outage = await _open_outage(db, "a", clock.now_s())
    stop = asyncio.Event()
    async with _task(run_etr_loop(db, clock, stop, refresh_every_s=300.0), stop):
        await _until(
            lambda: _etrs_at_least(db, outage, 3), "3 ETR refreshes"
        )  # 3 refreshes: ~1 wall s


async def _etrs_at_least(db: Database, outage_id: int, n: int) -> bool:
    count = await _scalar(db, "SELECT count(*) FROM etr_history WHERE outage_id = %s", [outage_id])
    return int(count) >= n
