"""Operator actions reach the detection engine: an operator's confirm, cancel, restore and
merge, made through the control API (httpx ASGI, real tokens) on the real PostgreSQL, are
handed by the operator desk to the detection runner and applied at its next step; the
engine's upserts then agree with the operator instead of reversing the action."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

import detectors as det
from gridwatch.core.clock import ManualClock
from gridwatch.detection import DetectionRunner, OutgoingPing
from gridwatch.outages import EngineConfig, OperatorDesk
from gridwatch.store import Database
from gridwatch.store.outage_queries import load_outage_meters
from gridwatch.store.outages import OutageMeterRow, OutageRow, TimelineRow, save_outages
from gridwatch.topology import save_topology
from ingest import CommittedBatch, MeterEvent, Reading
from simulators import toy_grid
from tests.api_support import (
    NOW_S,
    client_for,
    make_app,
    make_tokens,
    seed_network,
    seed_outages,
)

T = 1_795_413_600.0  # 2026-11-23T06:00:00Z
GRID = toy_grid(3)
TOPO = GRID.topology
FUSE = "Z01-S01-F01-L002-FU"
FUSE_B = "Z01-S01-F02-L003-FU"
V1 = "/api/v1"


def _meters_under(device_id: str) -> list[str]:
    idx = GRID.subtree_meters(TOPO.device_index[device_id])
    return [str(TOPO.meters.ids[i]) for i in idx.tolist()]


class _Pings:
    """The head-end: records pings; ``replies`` answers them (``off`` meters say off,
    the rest on; ``None`` answers nothing)."""

    def __init__(self) -> None:
        self.sent: list[OutgoingPing] = []

    def send(self, pings: list[OutgoingPing]) -> int:
        self.sent += pings
        return 0

    async def run(self) -> None:
        await asyncio.Event().wait()

    def pinged(self) -> set[str]:
        return {p.topic.rsplit("/", 2)[-2] for p in self.sent}

    def replies(self, at_s: float, off: set[str]) -> CommittedBatch:
        events = []
        for p in self.sent:
            meter = p.topic.rsplit("/", 2)[-2]
            rid = orjson.loads(p.payload)["request_id"]
            events.append(MeterEvent(meter, at_s, "ping_reply", None, meter not in off, rid))
        self.sent = []
        return CommittedBatch([], events, [])


def _events(meters: list[str], at_s: float, kind: str) -> CommittedBatch:
    return CommittedBatch([], [MeterEvent(m, at_s, kind, None, None, None) for m in meters], [])


def _all_on(at_s: float) -> CommittedBatch:
    return CommittedBatch(
        [Reading(str(m), at_s, 230.0, None, None) for m in TOPO.meters.ids.tolist()], [], []
    )


async def _rows(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.outage_id, o.engine_key, o.device_id, o.state, o.cause, o.confirmed_at,"
            " o.restored_at, o.meters_affected, p.engine_key AS parent_key"
            " FROM outages o LEFT JOIN outages p ON p.outage_id = o.parent_outage_id"
            " ORDER BY o.outage_id"
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]


async def _timeline_kinds(db: Database, outage_id: int) -> list[str]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT kind FROM outage_timeline WHERE outage_id = %s ORDER BY at, seq", [outage_id]
        )
        return [str(r[0]) for r in await cur.fetchall()]


async def _fuse_outage(
    db: Database, clock: ManualClock, *, config: EngineConfig | None = None, confirm: bool = True
) -> tuple[DetectionRunner, _Pings, dict[str, Any]]:
    """A runner over the toy grid with one outage on FUSE (half its meters gasped),
    confirmed by its ping sample answering off (or left predicted)."""
    await save_topology(db, TOPO)
    pings = _Pings()
    runner = DetectionRunner(db, TOPO, clock=clock, ping_sender=pings, engine_config=config)
    await runner.start()
    await runner.step([_all_on(T)])
    clock.set(T + 10)
    await runner.step([_events(_meters_under(FUSE)[::2], T + 5, "last_gasp")])
    clock.set(T + 60)
    await runner.step([])
    assert pings.sent, "no confirm pings"
    if confirm:
        clock.set(T + 61)
        await runner.step([pings.replies(T + 61, off=set(_meters_under(FUSE)))])
    (row,) = await _rows(db)
    assert row["device_id"] == FUSE
    assert row["state"] == ("confirmed" if confirm else "predicted")
    return runner, pings, row


async def _act(
    db: Database,
    clock: ManualClock,
    runner: DetectionRunner,
    outage_id: int,
    action: str,
    **body: object,
) -> httpx.Response:
    """The action through the API of a service whose desk hands it to ``runner``."""
    tokens = await make_tokens(db)
    async with client_for(make_app(db, clock, desk=OperatorDesk(db, clock, inbox=runner))) as http:
        return await http.post(
            f"{V1}/outages/{outage_id}/{action}",
            json={"reason": f"operator says {action}", **body},
            headers=tokens.headers("operator"),
        )


async def test_cancel_sticks_and_the_same_evidence_does_not_redeclare(db: Database) -> None:
    clock = ManualClock(T)
    runner, _pings, row = await _fuse_outage(db, clock)
    key, oid = row["engine_key"], row["outage_id"]
    clock.set(T + 70)
    resp = await _act(db, clock, runner, oid, "cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "cancelled"

    clock.set(T + 71)
    await runner.step([])
    assert runner.engine.outages[key].state == "cancelled"
    assert runner.engine.open_outages() == []
    assert runner.operator_actions.counts["cancel:applied"] == 1
    (after,) = await _rows(db)
    assert after["state"] == "cancelled"
    kinds = await _timeline_kinds(db, oid)
    assert kinds.index("operator_cancel") < kinds.index("operator_applied")
    # The refuted gasps are unknown now (not "on": nobody said they are lit).
    fuse_idx = [TOPO.meter_index[m] for m in _meters_under(FUSE)[::2]]
    assert (runner.engine.meter_state.state[fuse_idx] == det.UNKNOWN).all()

    # Time passes well beyond the declaration delay and every ping timeout: the same
    # evidence does not declare the fuse (or anything beneath it) again.
    for t in (T + 120, T + 200, T + 400):
        clock.set(t)
        await runner.step([])
    assert [r["state"] for r in await _rows(db)] == ["cancelled"]
    assert runner.engine.open_outages() == []

    # Evidence the engine had for the meters, restated with its old time, changes nothing;
    # the fuse meters coming back does not turn the cancelled outage into a "restored" one.
    await runner.step([_events(_meters_under(FUSE)[::2], T + 5, "last_gasp")])
    clock.set(T + 460)
    await runner.step([_events(_meters_under(FUSE), T + 450, "power_restore")])
    clock.set(T + 520)
    await runner.step([])
    assert [r["state"] for r in await _rows(db)] == ["cancelled"]

    # New evidence: the suppression ends, a new fault is declared as usual.
    clock.set(T + 600)
    await runner.step([_events(_meters_under(FUSE)[::2], T + 595, "last_gasp")])
    clock.set(T + 650)
    await runner.step([])
    rows = await _rows(db)
    assert next((r["device_id"], r["state"]) for r in rows) == (FUSE, "cancelled")
    assert len(rows) == 2
    assert rows[1]["device_id"] == FUSE
    assert rows[1]["engine_key"] != key
    assert rows[1]["state"] in ("predicted", "confirmed")

    # A restart: the new runner has nothing handed over to re-apply (the rows hold every
    # action) and the cancelled outage is not taken back.
    again = DetectionRunner(db, TOPO, clock=clock, ping_sender=_Pings())
    await again.start()
    assert again.operator_actions.pending == 0
    assert key not in again.engine.outages
    await again.step([])
    assert not again.operator_actions.counts
    assert (await _rows(db))[0]["state"] == "cancelled"


async def test_restore_sticks_and_meters_still_dark_become_a_nested_outage(
    db: Database,
) -> None:
    clock = ManualClock(T)
    runner, pings, row = await _fuse_outage(db, clock)
    key, oid = row["engine_key"], row["outage_id"]
    clock.set(T + 100)
    resp = await _act(db, clock, runner, oid, "restore")
    assert resp.status_code == 200, resp.text

    clock.set(T + 101)
    await runner.step([])
    (after,) = await _rows(db)
    assert after["state"] == "restored"
    assert after["restored_at"].timestamp() == T + 100
    assert {s for _, s, _ in await load_outage_meters(db, oid)} == {"restored"}
    o = runner.engine.outages[key]
    assert o.state == "restored"
    assert not o.is_open
    # The operator's word is verified: every meter not seen back is pinged.
    fuse = set(_meters_under(FUSE))
    assert pings.pinged() == fuse

    # One transformer under the fuse is still dark; the others answer on.
    dark_tx = "Z01-S01-F01-L002-T01"
    dark = set(_meters_under(dark_tx))
    clock.set(T + 105)
    await runner.step([pings.replies(T + 105, off=dark)])
    for t in (T + 130, T + 155, T + 160, T + 161):
        clock.set(t)
        await runner.step([])
    rows = await _rows(db)
    assert rows[0]["engine_key"] == key
    assert rows[0]["state"] == "restored"
    nested = [r for r in rows if r["engine_key"] != key]
    assert len(nested) == 1, rows
    (n,) = nested
    assert (n["device_id"], n["state"], n["cause"]) == (dark_tx, "confirmed", "nested")
    assert n["parent_key"] == key
    assert n["meters_affected"] == len(dark)
    assert "nested_linked" in await _timeline_kinds(db, n["outage_id"])
    # The restored outage stays restored after all of it.
    clock.set(T + 300)
    await runner.step([])
    assert (await _rows(db))[0]["state"] == "restored"


async def test_confirm_sticks(db: Database) -> None:
    # Pings time out late here: left to itself the engine keeps the outage predicted.
    clock = ManualClock(T)
    config = EngineConfig(ping_timeout_s=3600.0)
    runner, _, row = await _fuse_outage(db, clock, config=config, confirm=False)
    key, oid = row["engine_key"], row["outage_id"]
    clock.set(T + 70)
    resp = await _act(db, clock, runner, oid, "confirm")
    assert resp.status_code == 200, resp.text
    clock.set(T + 71)
    await runner.step([])
    (after,) = await _rows(db)
    assert after["state"] == "confirmed"
    assert after["confirmed_at"].timestamp() == T + 70
    assert runner.engine.outages[key].state == "confirmed"
    # A later engine change to the same outage (a meter back) keeps it confirmed, never
    # predicted again; its confirmation time stays the operator's.
    one = _meters_under(FUSE)[0]
    clock.set(T + 90)
    await runner.step([_events([one], T + 85, "power_restore")])
    (after,) = await _rows(db)
    assert after["state"] == "partially_restored"
    assert after["confirmed_at"].timestamp() == T + 70
    kinds = await _timeline_kinds(db, oid)
    assert kinds.count("confirmed") == 0
    assert "operator_applied" in kinds


async def test_merge_folds_one_outage_into_another(db: Database) -> None:
    clock = ManualClock(T)
    runner, pings, _row = await _fuse_outage(db, clock)
    # A second outage, on a fuse of the other feeder.
    clock.set(T + 70)
    await runner.step([_events(_meters_under(FUSE_B)[::2], T + 65, "last_gasp")])
    clock.set(T + 120)
    await runner.step([])
    clock.set(T + 121)
    await runner.step([pings.replies(T + 121, off=set(_meters_under(FUSE_B)))])
    a, b = await _rows(db)
    assert (b["device_id"], b["state"]) == (FUSE_B, "confirmed")
    clock.set(T + 130)
    resp = await _act(db, clock, runner, b["outage_id"], "merge", into_outage_id=a["outage_id"])
    assert resp.status_code == 200, resp.text
    clock.set(T + 131)
    await runner.step([])
    a2, b2 = await _rows(db)
    assert b2["state"] == "cancelled"
    assert b2["parent_key"] == a["engine_key"]
    assert a2["state"] == "confirmed"
    assert a2["meters_affected"] == len(_meters_under(FUSE)) + len(_meters_under(FUSE_B))
    eng = runner.engine
    assert [o.key for o in eng.open_outages()] == [a["engine_key"]]
    # FUSE_B's meters are held by the merged outage: its device is not declared again.
    for t in (T + 200, T + 300):
        clock.set(t)
        await runner.step([])
    assert len(await _rows(db)) == 2
    # Meters of the merged-in part come back one by one inside the surviving outage.
    clock.set(T + 320)
    await runner.step([_events(_meters_under(FUSE_B), T + 315, "power_restore")])
    a3, b3 = await _rows(db)
    assert b3["state"] == "cancelled"
    assert a3["state"] == "partially_restored"


async def test_actions_on_outages_the_engine_never_made_are_ignored(db: Database) -> None:
    """An action on an outage row without an engine key (planned work, say) reaches the
    runner and is skipped; hostile or foreign audit rows (a non-numeric target, an unknown
    outage) are an audit trail only and never reach the engine."""
    clock = ManualClock(T)
    runner, _, row = await _fuse_outage(db, clock)
    async with db.connection() as conn:
        for target in ("not-a-number'; DROP TABLE outages; --", "999999999999", "1" * 40):
            await conn.execute(
                "INSERT INTO audit_log (actor, role, action, target_kind, target_id, reason)"
                " VALUES ('x', 'operator', 'outage.cancel', 'outage', %s, 'r')",
                [target],
            )
        cur = await conn.execute(
            "INSERT INTO outages (device_id, zone, state, planned, started_at, updated_at)"
            " VALUES (%s, 'Z01', 'confirmed', true, %s, %s) RETURNING outage_id",
            [FUSE_B, row["confirmed_at"], row["confirmed_at"]],
        )
        (foreign,) = await cur.fetchone()  # type: ignore[misc]
    clock.set(T + 70)
    resp = await _act(db, clock, runner, foreign, "cancel")
    assert resp.status_code == 200, resp.text
    resp = await _act(db, clock, runner, row["outage_id"], "cancel")
    assert resp.status_code == 200
    clock.set(T + 71)
    await runner.step([])
    c = runner.operator_actions.counts
    assert c["cancel:ignored"] == 1
    assert c["cancel:applied"] == 1
    assert runner.engine.outages[row["engine_key"]].state == "cancelled"


@pytest.mark.parametrize("action", ["confirm", "restore"])
async def test_an_action_reaches_the_engine_without_the_audit_log(
    db: Database, action: str
) -> None:
    """The desk hands the committed action to the runner: the engine applies it at its
    next step even with no audit row left to read (the audit log is a trail, not a feed)."""
    clock = ManualClock(T)
    config = EngineConfig(ping_timeout_s=3600.0)  # left alone, the outage stays predicted
    runner, _, row = await _fuse_outage(db, clock, config=config, confirm=False)
    key, oid = row["engine_key"], row["outage_id"]
    clock.set(T + 70)
    resp = await _act(db, clock, runner, oid, action)
    assert resp.status_code == 200, resp.text
    async with db.connection() as conn:
        await conn.execute("DELETE FROM audit_log")
    clock.set(T + 71)
    await runner.step([])
    want = {"confirm": "confirmed", "restore": "restored"}[action]
    assert runner.engine.outages[key].state == want
    assert runner.operator_actions.counts[f"{action}:applied"] == 1
    assert "operator_applied" in await _timeline_kinds(db, oid)
    (after,) = [r for r in await _rows(db) if r["outage_id"] == oid]
    assert after["state"] == want


async def test_an_action_handed_over_while_the_runner_starts_waits_for_the_reload(
    db: Database,
) -> None:
    """A restarted runner is the desk's inbox before it has taken its outages back: the
    action waits, and is applied (a no-op where the row already says so) after the reload."""
    clock = ManualClock(T)
    config = EngineConfig(ping_timeout_s=3600.0)
    _, _, row = await _fuse_outage(db, clock, config=config, confirm=False)
    key, oid = row["engine_key"], row["outage_id"]
    again = DetectionRunner(db, TOPO, clock=clock, ping_sender=_Pings(), engine_config=config)
    clock.set(T + 70)
    resp = await _act(db, clock, again, oid, "confirm")
    assert resp.status_code == 200, resp.text
    assert again.operator_actions.pending == 1
    await again.start()
    assert again.operator_actions.pending == 1
    clock.set(T + 71)
    await again.step([])
    assert again.operator_actions.pending == 0
    o = again.engine.outages[key]
    assert (o.state, o.confirmed_s) == ("confirmed", T + 70)
    (after,) = await _rows(db)
    assert (after["state"], after["confirmed_at"].timestamp()) == ("confirmed", T + 70)


# --- the race at the upsert ----------------------------------------------------------------
# The desk commits an action and hands it to the runner under the step lock, so a running
# step never upserts over it; but rows decided before it (a starting runner's reload, a
# previous run) carry the engine's stale view. These tests play that exactly: the
# operator acts through the API, then the engine's stale view of the same outage is
# upserted.


def _stale_r1(state: str, restored: int = 0) -> OutageRow:
    """What an engine that has not seen the operator's action yet writes for O-R1: still
    open, grown by a meter."""
    return OutageRow(
        "O-R1", "R1", "Z1", state, "lockout", NOW_S - 3600, NOW_S - 3500, None, 0.97,
        5, 5, restored, restored, None,
    )  # fmt: skip


_STALE_METERS = [
    OutageMeterRow("O-R1", "M1", "C1", "restored", NOW_S - 60),
    *(OutageMeterRow("O-R1", m, "C" + m[1:], "out", None) for m in ("M2", "M3", "M4", "M5")),
]


async def _seeded_act(db: Database, action: str, **body: object) -> dict[str, int]:
    await seed_network(db)
    ids = await seed_outages(db)
    tokens = await make_tokens(db)
    async with client_for(make_app(db)) as http:
        resp = await http.post(
            f"{V1}/outages/{ids['O-R1']}/{action}",
            json={"reason": f"operator says {action}", **body},
            headers=tokens.headers("operator"),
        )
    assert resp.status_code == 200, resp.text
    return ids


async def _outage(db: Database, outage_id: int) -> dict[str, Any]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT state, restored_at, meters_affected, customers_restored, confidence,"
            " parent_outage_id FROM outages WHERE outage_id = %s",
            [outage_id],
        )
        names = [c.name for c in cur.description or []]
        row = await cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


@pytest.mark.parametrize("stale_state", ["confirmed", "partially_restored"])
async def test_a_stale_engine_upsert_does_not_reopen_an_operator_cancel(
    db: Database, stale_state: str
) -> None:
    ids = await _seeded_act(db, "cancel")
    oid = ids["O-R1"]
    before = await _outage(db, oid)
    meters_before = await load_outage_meters(db, oid)
    got = await save_outages(
        db,
        [_stale_r1(stale_state, restored=1)],
        _STALE_METERS,
        [TimelineRow("O-R1", NOW_S, "meters_added", {"meters": 1})],
    )
    assert got == {"O-R1": oid}  # the id still comes back (the timeline needs it)
    assert await _outage(db, oid) == before
    assert before["state"] == "cancelled"
    assert await load_outage_meters(db, oid) == meters_before  # no M5, no status change
    assert (await _timeline_kinds(db, oid))[-2:] == ["operator_cancel", "meters_added"]


async def test_a_stale_engine_upsert_does_not_undo_an_operator_restore(db: Database) -> None:
    ids = await _seeded_act(db, "restore")
    oid = ids["O-R1"]
    before = await _outage(db, oid)
    assert before["state"] == "restored"
    assert before["restored_at"].timestamp() == NOW_S
    await save_outages(db, [_stale_r1("partially_restored", restored=1)], _STALE_METERS)
    assert await _outage(db, oid) == before
    meters = await load_outage_meters(db, oid)
    assert [(m, s) for m, s, _ in meters] == [(m, "restored") for m in ("M1", "M2", "M3", "M4")]
    assert {at.timestamp() for _, _, at in meters if at is not None} == {NOW_S}


async def test_a_stale_engine_upsert_does_not_reopen_a_merged_away_outage(db: Database) -> None:
    await seed_network(db)
    ids = await seed_outages(db)
    tokens = await make_tokens(db)
    t3, r1 = ids["O-T3"], ids["O-R1"]
    async with client_for(make_app(db)) as http:
        resp = await http.post(
            f"{V1}/outages/{t3}/merge",
            json={"into_outage_id": r1, "reason": "same fault"},
            headers=tokens.headers("operator"),
        )
    assert resp.status_code == 200, resp.text
    before = await _outage(db, t3)
    stale = OutageRow(
        "O-T3", "T3", "Z1", "confirmed", "meters", NOW_S - 600, NOW_S - 500, None, 0.9,
        1, 1, 0, 0, "O-T4",
    )  # fmt: skip
    await save_outages(db, [stale], [OutageMeterRow("O-T3", "M5", "C5", "out", None)])
    after = await _outage(db, t3)
    assert after == before
    assert (after["state"], after["parent_outage_id"]) == ("cancelled", r1)


async def test_the_engine_still_rewrites_what_it_closed_and_what_an_operator_confirmed(
    db: Database,
) -> None:
    """The guard is on an operator's close only: a confirm by hand does not freeze the
    row, and the engine may rewrite an outage it closed itself."""
    await seed_network(db)
    ids = await seed_outages(db)
    tokens = await make_tokens(db)
    t3, t4 = ids["O-T3"], ids["O-T4"]
    async with client_for(make_app(db)) as http:
        resp = await http.post(
            f"{V1}/outages/{t3}/confirm",
            json={"reason": "crew on site"},
            headers=tokens.headers("operator"),
        )
    assert resp.status_code == 200, resp.text
    restored = OutageRow(
        "O-T3", "T3", "Z1", "restored", "meters", NOW_S - 600, NOW_S - 500, NOW_S - 10, 0.9,
        1, 1, 1, 1, None,
    )  # fmt: skip
    engine_closed = OutageRow(
        "O-T4", "T4", "Z2", "restored", "fuse", NOW_S - 86400, NOW_S - 86000, NOW_S - 79000,
        1.0, 1, 1, 1, 1, None,
    )  # fmt: skip
    await save_outages(
        db,
        [restored, engine_closed],
        [
            OutageMeterRow("O-T3", "M5", "C5", "restored", NOW_S - 10),
            OutageMeterRow("O-T4", "M6", "C6", "restored", NOW_S - 79000),
        ],
    )
    a3, a4 = await _outage(db, t3), await _outage(db, t4)
    assert (a3["state"], a3["restored_at"].timestamp()) == ("restored", NOW_S - 10)
    assert a4["restored_at"].timestamp() == NOW_S - 79000
    assert await load_outage_meters(db, t3) == [("M5", "restored", a3["restored_at"])]
    assert (await load_outage_meters(db, t4))[0][2] == a4["restored_at"]


async def test_a_stale_engine_upsert_does_not_undo_an_operator_confirm(db: Database) -> None:
    """Confirm is not a close, but a step that has not seen it must not take the outage
    back to predicted (nor drop its confirmation time) until the engine catches up."""
    await seed_network(db)
    ids = await seed_outages(db)
    tokens = await make_tokens(db)
    t3 = ids["O-T3"]
    async with client_for(make_app(db)) as http:
        resp = await http.post(
            f"{V1}/outages/{t3}/confirm",
            json={"reason": "customer called"},
            headers=tokens.headers("operator"),
        )
    assert resp.status_code == 200, resp.text
    stale = OutageRow(
        "O-T3", "T3", "Z1", "predicted", "meters", NOW_S - 600, None, None, 0.6,
        1, 1, 0, 0, None,
    )  # fmt: skip
    await save_outages(db, [stale], [OutageMeterRow("O-T3", "M5", "C5", "out", None)])
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT state, confirmed_at, confidence FROM outages WHERE outage_id = %s", [t3]
        )
        state, confirmed_at, confidence = await cur.fetchone()  # type: ignore[misc]
    assert state == "confirmed"
    assert confirmed_at is not None
    assert confidence == 0.6  # the rest of the engine's view is still written
