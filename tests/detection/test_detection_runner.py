"""The detection runner's boundaries: ingest records -> evidence (bad items rejected with a
reason, good ones kept), pings on the real Mosquitto, persistence in the real PostgreSQL,
and open outages taken back after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import datetime

import aiomqtt
import numpy as np
import orjson
import pytest

import detectors as det
from gridwatch.core.clock import ManualClock
from gridwatch.detection import (
    DetectionRunner,
    EvidenceAdapter,
    MqttPingSender,
    OutgoingPing,
    PersistedOutages,
    RunnerConfig,
    ping_payload,
    ping_topic,
)
from gridwatch.store import Database
from gridwatch.store.outage_queries import load_open_outages
from gridwatch.topology import save_topology
from ingest import BrokerAddress, CommittedBatch, MeterEvent, Reading, ScadaEvent
from simulators import toy_grid

T = 1_795_413_600.0  # 2026-11-23T06:00:00Z
GRID = toy_grid(3)
TOPO = GRID.topology
FUSE = "Z01-S01-F01-L002-FU"


def _meters_under(device_id: str) -> list[str]:
    idx = GRID.subtree_meters(TOPO.device_index[device_id])
    return [str(TOPO.meters.ids[i]) for i in idx.tolist()]


def test_adapter_maps_records_and_rejects_bad_items_one_by_one() -> None:
    adapter = EvidenceAdapter(TOPO.meter_index, TOPO.device_index)
    m0, m1 = str(TOPO.meters.ids[0]), str(TOPO.meters.ids[1])
    batch = CommittedBatch(
        readings=[
            Reading(m0, T, 231.0, 10.0, 1),
            Reading(m1, T, None, 11.0, 2),  # not measured: NaN, no on/off meaning
            Reading("M-NOPE", T, 230.0, None, None),
            Reading("x" * 10_000, T, 230.0, None, None),  # oversized id: rejected, cut in logs
        ],
        meter_events=[
            MeterEvent(m0, T + 1, "last_gasp", 3, None, None),
            MeterEvent(m1, T + 2, "ping_reply", 4, True, "r1"),
            MeterEvent(m1, T + 3, "ping_reply", 5, None, "r2"),  # no "on": rejected
            MeterEvent(m1, T + 4, "meteor_strike", 6, None, None),
        ],
        scada_events=[
            ScadaEvent("Z01-S01-F01-BRK", T + 5, "lockout", "ABC"),
            ScadaEvent("Z99-NOPE", T + 5, "trip", None),
            ScadaEvent("Z01-S01-F01-BRK", T + 6, "explode", None),
        ],
    )
    ev = adapter.convert([batch])
    assert ev.meter["meter"].tolist() == [0, 1, 0, 1]
    assert ev.meter["kind"].tolist() == [det.READING, det.READING, det.LAST_GASP, det.PING_ON]
    assert ev.meter["v_rms_v"][0] == 231.0
    assert math.isnan(ev.meter["v_rms_v"][1])
    assert ev.scada["kind"].tolist() == [det.SCADA_LOCKOUT]
    assert ev.ping_replies == 1
    assert ev.newest_s == T + 5
    reasons = sorted((r.source, r.reason) for r in ev.rejects)
    assert reasons == [
        ("meter_event", "ping_reply without on"),
        ("meter_event", "unknown kind 'meteor_strike'"),
        ("reading", "unknown meter"),
        ("reading", "unknown meter"),
        ("scada", "unknown device"),
        ("scada", "unknown kind 'explode'"),
    ]


def test_ping_payload_follows_the_contract() -> None:
    body = orjson.loads(ping_payload("abc-1", T + 0.25))
    assert body == {"request_id": "abc-1", "ts": "2026-11-23T06:00:00.250Z"}
    assert ping_topic("gw/v1", "Z01", "M-1") == "gw/v1/Z01/meters/M-1/ping"


async def test_pings_are_published_at_qos1_on_the_real_broker(
    mqtt_url: str, topic_prefix: str
) -> None:
    sender = MqttPingSender(mqtt_url, client_id=f"t-{topic_prefix[7:19]}-pings")
    addr = BrokerAddress.parse(mqtt_url)
    async with aiomqtt.Client(addr.host, addr.port) as sub:
        await sub.subscribe(f"{topic_prefix}/+/meters/+/ping", qos=1)
        task = asyncio.create_task(sender.run())
        try:
            pings = [
                OutgoingPing(ping_topic(topic_prefix, "Z01", f"M-{i}"), ping_payload(f"r{i}", T))
                for i in range(3)
            ]
            assert sender.send(pings) == 0
            got = []
            async with asyncio.timeout(10):
                async for msg in sub.messages:
                    got.append((str(msg.topic), orjson.loads(msg.payload), msg.qos))  # type: ignore[arg-type]
                    if len(got) == 3:
                        break
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert {t for t, _, _ in got} == {p.topic for p in pings}
    assert all(q == 1 for _, _, q in got)
    assert {b["request_id"] for _, b, _ in got} == {"r0", "r1", "r2"}


class _Replies:
    """A ping sender standing in for the head-end: every pinged meter answers ``on``."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.sent: list[OutgoingPing] = []

    def send(self, pings: list[OutgoingPing]) -> int:
        self.sent += pings
        return 0

    async def run(self) -> None:
        await asyncio.Event().wait()

    def replies(self, at_s: float) -> CommittedBatch:
        events = []
        for p in self.sent:
            meter = p.topic.rsplit("/", 2)[-2]
            rid = orjson.loads(p.payload)["request_id"]
            events.append(MeterEvent(meter, at_s, "ping_reply", None, self.on, rid))
        self.sent = []
        return CommittedBatch([], events, [])

    def replies_as_asked(self, sent: list[OutgoingPing]) -> CommittedBatch:
        """Answers to ``sent``, each stamped with the time its ping asked about (the
        contract's ping ``ts``), as a head-end answers."""
        events = []
        for p in sent:
            body = orjson.loads(p.payload)
            at_s = datetime.fromisoformat(body["ts"]).timestamp()
            meter = p.topic.rsplit("/", 2)[-2]
            events.append(MeterEvent(meter, at_s, "ping_reply", None, self.on, body["request_id"]))
        return CommittedBatch([], events, [])


def _gasps(meters: list[str], at_s: float) -> CommittedBatch:
    return CommittedBatch(
        [], [MeterEvent(m, at_s, "last_gasp", None, None, None) for m in meters], []
    )


def _all_lit(at_s: float) -> CommittedBatch:
    """Every meter of the toy grid read lit at ``at_s``."""
    return CommittedBatch(
        [Reading(str(m), at_s, 230.0, None, None) for m in TOPO.meters.ids.tolist()], [], []
    )


async def test_outage_persists_and_is_taken_back_after_a_restart(db: Database) -> None:
    await save_topology(db, TOPO)
    clock = ManualClock(T)
    pings = _Replies(on=False)
    seen: list[PersistedOutages] = []

    async def hook(p: PersistedOutages, conn: object) -> None:
        seen.append(p)  # the notifier's outbox would write here, same transaction

    runner = DetectionRunner(db, TOPO, clock=clock, ping_sender=pings, on_persisted=hook)
    await runner.start()
    await runner.step([_all_lit(T)])
    fuse_meters = _meters_under(FUSE)
    clock.set(T + 10)
    await runner.step([_gasps(fuse_meters[::2], T + 5)])
    clock.set(T + 60)
    await runner.step([])  # the delay has passed: predicted, confirm pings out
    assert pings.sent, "no confirm pings"
    clock.set(T + 61)
    await runner.step([pings.replies(T + 61)])  # the sample answers "off": confirmed
    (row,) = await load_open_outages(db)
    assert (row["device_id"], row["state"]) == (FUSE, "confirmed")
    assert row["meters_affected"] == len(fuse_meters)
    assert any(p.outage_ids for p in seen)

    # A restart: a fresh runner (empty engine) takes the outage back, does not re-declare.
    clock.set(T + 300)
    again = DetectionRunner(db, TOPO, clock=clock, ping_sender=_Replies(on=False))
    await again.start()
    assert again.counts["outages_reloaded"] == 1
    (o,) = again.engine.open_outages()
    assert o.key == row["engine_key"]
    assert o.state == "confirmed"
    clock.set(T + 400)
    await again.step([])
    (row2,) = await load_open_outages(db)
    assert row2["engine_key"] == row["engine_key"]
    assert row2["state"] == "confirmed"
    # The fuse is replaced: meters come back, the same outage is restored.
    clock.set(T + 900)
    back = CommittedBatch(
        [], [MeterEvent(m, T + 890, "power_restore", None, None, None) for m in fuse_meters], []
    )
    await again.step([back])
    await again.step([])
    assert await load_open_outages(db) == []
    async with db.connection() as conn:
        cur = await conn.execute("SELECT state, meters_restored FROM outages")
        assert await cur.fetchall() == [("restored", len(fuse_meters))]


async def test_bad_records_do_not_stop_detection(db: Database) -> None:
    await save_topology(db, TOPO)
    clock = ManualClock(T)
    runner = DetectionRunner(db, TOPO, clock=clock)
    await runner.start()
    m = str(TOPO.meters.ids[0])
    hostile = CommittedBatch(
        [
            Reading(m, math.nan, 230.0, None, None),
            Reading(m, T + 10 * 86400, 230.0, None, None),  # far future
            Reading(m, T - 10 * 86400, 230.0, None, None),  # beyond the horizon
            Reading(m, T, -5.0, None, None),  # corrupt voltage
            Reading("M-UNKNOWN", T, 230.0, None, None),
        ],
        [],
        [ScadaEvent("Z01-S01-F01-BRK", math.inf, "trip", None)],
    )
    await runner.step([hostile])
    await runner.step([_gasps([str(TOPO.meters.ids[1])], T)])  # the next batch still applies
    c = runner.counts
    assert c["rejected:reading:unknown meter"] == 1
    assert c["rejected:engine:meter:bad_time"] == 1
    assert c["rejected:engine:meter:future"] == 1
    assert c["rejected:engine:meter:too_old"] == 1
    assert c["rejected:engine:meter:bad_voltage"] == 1
    assert c["rejected:engine:scada:bad_time"] == 1
    assert int(runner.engine.meter_state.state[1]) == det.OFF
    assert np.count_nonzero(runner.engine.meter_state.state) == 1


async def test_a_slow_ingest_never_changes_a_decision(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A fuse's meters gasp at T+5 and come back at T+20: a momentary. The machine is slow
    (at 600x a few hundred ms of ingest is minutes of grid time): when the runner steps, the
    service clock already reads T+100 but the restores, received at T+21, are still being
    written. Judged at the clock, the gasps alone have outlived the declaration delay and a
    false outage is declared; judged at ingest's watermark (T+21), the runner waits for
    them, and says it is behind (the lag gauge and a warning)."""
    await save_topology(db, TOPO)
    fuse_meters = _meters_under(FUSE)
    lit = _all_lit(T)
    back = CommittedBatch(
        [], [MeterEvent(m, T + 20, "power_restore", None, None, None) for m in fuse_meters], []
    )

    async def declared(horizon: bool) -> list[object]:
        clock = ManualClock(T)
        runner = DetectionRunner(db, TOPO, clock=clock, ping_sender=_Replies(on=True))
        await runner.start()
        await runner.step([lit])
        clock.set(T + 100)
        with caplog.at_level(logging.WARNING, logger="gridwatch.core.clock"):
            await runner.step([_gasps(fuse_meters, T + 5)], horizon_s=T + 21 if horizon else None)
        await runner.step([back], horizon_s=T + 100 if horizon else None)
        await runner.step([])
        async with db.connection() as conn:  # open or closed since: any row was declared
            cur = await conn.execute("SELECT device_id FROM outages")
            rows = [r[0] for r in await cur.fetchall()]
            await conn.execute("DELETE FROM outages")
        if horizon:
            assert runner.lag.times_behind == 1
            assert runner.lag.worst_event_s == pytest.approx(79.0)
            assert runner.engine.now_s == T + 100
        return rows

    assert await declared(horizon=False) == [FUSE]  # the machine's speed decided
    assert await declared(horizon=True) == []
    assert any("behind" in r.getMessage() for r in caplog.records)


async def test_the_watermark_never_holds_time_back_beyond_the_engines_reach(
    db: Database,
) -> None:
    """A watermark stuck far behind (a database away for long) holds the engine at most
    ``max_hold_s`` behind the clock, so evidence newer than that is never refused as
    "future"; and the engine's time never runs backwards."""
    await save_topology(db, TOPO)
    clock = ManualClock(T)
    runner = DetectionRunner(db, TOPO, clock=clock)
    await runner.start()
    clock.set(T + 1000)
    await runner.step([], horizon_s=T + 1)
    assert runner.engine.now_s == T + 1000 - runner.config.max_hold_s
    await runner.step([], horizon_s=T + 1)
    assert runner.engine.now_s == T + 1000 - runner.config.max_hold_s
    await runner.step([], horizon_s=-math.inf)
    assert runner.engine.now_s == T + 1000 - runner.config.max_hold_s
    await runner.step([])
    assert runner.engine.now_s == T + 1000


async def test_one_long_step_judges_as_many_short_ones_would(db: Database) -> None:
    """A machine that falls behind hands detection a minute and more of evidence at once.
    A fuse's meters gasp at T+5 and come back at T+70: dark 65 s, past the 45 s
    declaration delay, so an outage (declared at T+50, restored at T+70). Judged in one
    step at T+100 (the gasps and the restores together), the old runner saw a blink and
    declared nothing: the size of the step decided. The runner now walks the step's
    evidence in event time, ``substep_event_s`` at a time."""
    await save_topology(db, TOPO)
    fuse_meters = _meters_under(FUSE)
    lit = _all_lit(T)
    back = CommittedBatch(
        [], [MeterEvent(m, T + 70, "power_restore", None, None, None) for m in fuse_meters], []
    )

    async def outages(step_s: float) -> list[tuple[str, float, float]]:
        clock = ManualClock(T)
        runner = DetectionRunner(db, TOPO, clock=clock, ping_sender=_Replies(on=False))
        await runner.start()
        await runner.step([lit])
        pending = [(T + 5, _gasps(fuse_meters, T + 5)), (T + 70, back)]
        t = T
        while t < T + 200:
            t += step_s
            clock.set(t)
            due = [b for at, b in pending if at <= t]
            pending = [(at, b) for at, b in pending if at > t]
            await runner.step(due)
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT device_id, extract(epoch FROM started_at)::float8,"
                " extract(epoch FROM restored_at)::float8 FROM outages"
            )
            rows = [(r[0], r[1] - T, r[2] - T) for r in await cur.fetchall()]
            await conn.execute("DELETE FROM outages")
        return rows

    fine = await outages(1.0)
    assert fine == [(FUSE, 5.0, 70.0)]
    assert await outages(100.0) == fine


async def _outages_with_late_answers(
    db: Database, *, step_s: float, answer_after_steps: int, transit_wall_s: float
) -> list[tuple[str, str, float]]:
    """Two of a transformer's meters gasp at T+5; every meter pinged answers "on" (the
    others are lit; the two blinked and their restores were lost).
    The runner steps ``step_s`` of event time at a time (1 s: real time; 60 s: a replay
    at 600x on a busy machine) and an answer reaches it ``answer_after_steps`` steps
    after its ping left. The outages it recorded: (device, what happened, start - T)."""
    await save_topology(db, TOPO)
    fuse_meters = _meters_under(FUSE)
    lit = _all_lit(T)
    clock = ManualClock(T)
    head_end = _Replies(on=True)
    runner = DetectionRunner(
        db,
        TOPO,
        clock=clock,
        ping_sender=head_end,
        config=RunnerConfig(ping_transit_wall_s=transit_wall_s),
    )
    await runner.start()
    await runner.step([lit], horizon_s=T)
    in_transit: list[tuple[int, list[OutgoingPing]]] = []
    t, k = T, 0
    while t < T + 900:
        k += 1
        t += step_s
        clock.set(t)
        due = [_gasps(fuse_meters[:2], T + 5)] if t - step_s < T + 5 <= t else []
        due += [head_end.replies_as_asked(sent) for at_k, sent in in_transit if at_k <= k]
        in_transit = [x for x in in_transit if x[0] > k]
        await runner.step(due, horizon_s=t)
        if head_end.sent:
            in_transit.append((k + answer_after_steps, head_end.sent))
            head_end.sent = []
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.device_id, extract(epoch FROM o.started_at)::float8,"
            " string_agg(t.kind, ' ' ORDER BY t.at, t.kind) FROM outages o"
            " JOIN outage_timeline t USING (outage_id) GROUP BY o.outage_id ORDER BY 1, 2, 3"
        )
        rows = [(r[0], r[2], r[1] - T) for r in await cur.fetchall()]
        await conn.execute("DELETE FROM outages")
    return rows


async def test_a_ping_answer_in_transit_is_waited_for_at_any_replay_speed(db: Database) -> None:
    """At 600x a ping's round trip of 100 ms of wall time is a minute of service clock:
    its answer came after its deadline and the silence (strong evidence of darkness) had
    been counted, so a replay decided what real time did not. With a watermark, event
    time is held at the deadline of a ping whose answer may still be in transit."""
    real_time = await _outages_with_late_answers(
        db, step_s=1.0, answer_after_steps=2, transit_wall_s=30.0
    )
    fast = await _outages_with_late_answers(
        db, step_s=60.0, answer_after_steps=2, transit_wall_s=30.0
    )
    assert fast == real_time
    # Without the hold, the fast replay takes the answers in transit for silence.
    unheld = await _outages_with_late_answers(
        db, step_s=60.0, answer_after_steps=2, transit_wall_s=0.0
    )
    assert unheld != real_time


async def test_evidence_stamped_after_the_engines_time_waits_for_it(db: Database) -> None:
    """Synthetic storm at 600x: a restore ping goes out stamped with the clock, ahead of
    an engine held at the watermark, and is answered as of then. Judged at once, its "on"
    restored the customers at the engine's (earlier) time: told "restored" 40 s before
    their supply came back. Evidence stamped after the step's time now waits for it."""
    await save_topology(db, TOPO)
    clock = ManualClock(T)
    runner = DetectionRunner(db, TOPO, clock=clock, ping_sender=_Replies(on=False))
    await runner.start()
    await runner.step([_all_lit(T)])
    fuse_meters = _meters_under(FUSE)
    clock.set(T + 10)
    await runner.step([_gasps(fuse_meters, T + 5)])
    clock.set(T + 200)
    await runner.step([])
    (o,) = runner.engine.open_outages()
    clock.set(T + 1000)
    back = CommittedBatch(
        [], [MeterEvent(m, T + 990, "power_restore", None, None, None) for m in fuse_meters], []
    )
    await runner.step([back], horizon_s=T + 950)  # the engine held 40 s behind the answer
    assert runner.engine.now_s == T + 950
    assert o.meters_restored == 0  # not yet: it is stamped T+990
    assert runner.counts["evidence_held_ahead"] == len(fuse_meters)
    await runner.step([], horizon_s=T + 995)
    assert o.state == "restored"
    restored_at = [e.at_s for e in o.timeline if e.kind == "restored"]
    assert restored_at == [T + 990]  # at its own time, in the slice that reaches it
