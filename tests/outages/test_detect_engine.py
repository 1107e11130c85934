"""The outage engine's lifecycle on a small feeder, one behaviour per test.

Feeder: 0 substation -> 1 breaker -> 2 recloser -> 3 fuse -> transformers 4, 5;
transformer 6 under the recloser; 0 -> 7 breaker -> transformers 8, 9. Six meters per
transformer (customers = meters)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import detectors as d
from gridwatch import TopologyError
from gridwatch.outages import (
    METER_RESTORED,
    METER_TRANSFERRED,
    EngineConfig,
    Network,
    Outage,
    OutageChange,
    OutageEngine,
    PlannedOutage,
)
from tests.engine_support import FEEDER_METER_DEVICE as METER_DEVICE
from tests.engine_support import FEEDER_PARENT as PARENT
from tests.engine_support import T, lit_engine, rows, scada
from tests.engine_support import feeder_meters as meters_of
from tests.engine_support import feeder_network as network


def state_of(o: Outage) -> str:
    """The state read afresh (an earlier ``assert o.state == ...`` narrows it for mypy)."""
    return o.state


@pytest.fixture
def eng() -> OutageEngine:
    return lit_engine(network())


def kinds(changes: list[OutageChange]) -> list[tuple[str, int]]:
    return [(c.kind, c.device) for c in changes]


def test_sustained_outage_waits_the_delay_then_pings_confirm(eng: OutageEngine) -> None:
    dark = meters_of(4) + meters_of(5)
    eng.apply(rows(dark[::2], T + 1, d.LAST_GASP))
    assert eng.tick(T + 30) == []
    assert eng.open_outages() == []
    changes = eng.tick(T + 46)
    assert kinds(changes) == [("predicted", 3)]
    (o,) = eng.open_outages()
    assert o.start_s == T + 1
    assert o.meters_affected == 12
    assert o.customers_affected == 12
    pings = eng.pings_wanted()
    assert 0 < len(pings) <= 5
    assert all(p.meter in dark[1::2] for p in pings)
    assert eng.tick(T + 60) == []  # replies may still come
    assert kinds(eng.tick(T + 46 + 61)) == [("confirmed", 3)]  # nobody answered: dark
    assert o.state == "confirmed"
    assert o.timeline[0].detail["meters_off"] == 6


def test_short_interruption_is_a_momentary_and_notifies_nobody(eng: OutageEngine) -> None:
    dark = meters_of(4) + meters_of(5)
    eng.apply(rows(dark[::2], T + 1, d.LAST_GASP))
    eng.tick(T + 20)
    eng.apply(rows(dark[::2], T + 21, d.POWER_RESTORE))
    assert eng.tick(T + 100) == []
    assert eng.open_outages() == []
    (m,) = eng.take_momentaries()
    assert (m.device, m.meters, m.cause) == (3, 12, "evidence")


def test_trip_reclose_is_momentary_lockout_confirms_at_once_close_restores(
    eng: OutageEngine,
) -> None:
    eng.apply(scada_evidence=scada(2, T + 1, d.SCADA_TRIP))
    eng.apply(scada_evidence=scada(2, T + 3, d.SCADA_RECLOSE))
    assert eng.tick(T + 100) == []
    assert eng.take_momentaries() == []  # held: the reclosing sequence may still lock out
    changes = eng.apply(scada_evidence=scada(7, T + 101, d.SCADA_LOCKOUT))
    assert kinds(changes) == [("predicted", 7), ("confirmed", 7)]
    (o,) = eng.open_outages()
    assert o.cause == "scada_lockout"
    assert o.start_s == T + 101
    eng.tick(T + 400)
    (m,) = eng.take_momentaries()  # no lockout on 2 within reclose_sequence_s
    assert (m.device, m.cause, m.meters, m.start_s, m.end_s) == (
        2,
        "scada_reclose",
        18,
        T + 1,
        T + 3,
    )
    eng.apply(rows(meters_of(8), T + 401, d.POWER_RESTORE))
    changes = eng.apply(scada_evidence=scada(7, T + 400, d.SCADA_CLOSE))
    assert o.state == "partially_restored"
    assert o.meters_restored == 6
    assert {p.meter for p in eng.pings_wanted()} == set(meters_of(9))
    eng.apply(rows(meters_of(9)[:5], T + 410, d.PING_ON))
    eng.tick(T + 500)  # the last one never answers: closed as unverified, not restored
    assert state_of(o) == "restored"
    assert o.meters_restored == 11


def test_breaker_out_in_a_storm_is_one_outage() -> None:
    from benchmarks.detect_synth import radial_network

    net, level = radial_network((1, 3, 12, 60, 600), 6000, seed=5)
    eng = OutageEngine(net, now_s=T)
    breaker = int(np.flatnonzero(level == 1)[0])
    under = net.meters_under(breaker)
    rng = np.random.default_rng(0)
    gasped = under[rng.random(under.size) < 0.5]
    eng.apply(rows(gasped.tolist(), T + 1, d.LAST_GASP))
    eng.tick(T + 50)
    (o,) = eng.open_outages()
    assert o.device == breaker
    assert o.meters.tolist() == under.tolist()


def test_a_meter_answering_on_moves_the_prediction_downstream(eng: OutageEngine) -> None:
    eng.apply(rows(meters_of(4)[:3] + meters_of(5)[:1], T + 1, d.LAST_GASP))
    eng.tick(T + 50)
    (o,) = eng.open_outages()
    assert o.device == 3
    pings = eng.pings_wanted()
    lit = [p.meter for p in pings if METER_DEVICE[p.meter] == 5]
    assert lit  # the sample reaches the transformer that is actually lit
    changes = eng.apply(rows(lit, T + 52, d.PING_ON))
    changes += eng.apply(rows(meters_of(5)[1:], T + 53, d.READING, 229.0))
    assert ("moved", 4) in kinds(changes)
    assert o.device == 4
    assert o.meters.tolist() == meters_of(4)
    assert o.state == "predicted"


def test_still_dark_after_upstream_restored_becomes_nested_no_false_restored(
    eng: OutageEngine,
) -> None:
    eng.apply(rows(meters_of(4)[::2] + meters_of(5)[::2], T + 1, d.LAST_GASP))
    eng.tick(T + 50)
    eng.pings_wanted()
    eng.tick(T + 120)
    (o,) = eng.open_outages()
    assert (o.device, o.state) == (3, "confirmed")
    # The fuse is replaced; transformer 4 stays dark (its own fault), its meters silent.
    eng.tick(T + 600)
    changes = eng.apply(rows(meters_of(5), T + 600, d.POWER_RESTORE))
    # Their "off" predates the restoration: ask them before nesting (they may be slow).
    assert ("nested", 4) not in kinds(changes)
    pinged = eng.pings_wanted()
    assert sorted(p.meter for p in pinged) == meters_of(4)  # only where it is still unclear
    changes = eng.tick(T + 700)  # no answer: still dark
    assert ("nested", 4) in kinds(changes)
    nested = next(x for x in eng.open_outages() if x.device == 4)
    assert nested.parent_key == o.key
    assert nested.state == "confirmed"
    assert nested.start_s == o.start_s
    assert o.state == "restored"
    status = dict(zip(o.meters.tolist(), o.meter_status.tolist(), strict=True))
    assert all(status[m] == METER_TRANSFERRED for m in meters_of(4))
    assert all(status[m] == METER_RESTORED for m in meters_of(5))
    assert nested.is_open
    assert nested.meters_restored == 0
    eng.apply(rows(meters_of(4), T + 900, d.POWER_RESTORE))
    assert state_of(nested) == "restored"
    assert nested.meters_restored == 6


def test_an_outage_grows_when_late_evidence_shows_its_upstream_device_out(
    eng: OutageEngine,
) -> None:
    eng.apply(rows(meters_of(4)[::2], T + 1, d.LAST_GASP))
    eng.tick(T + 50)
    (first,) = eng.open_outages()
    assert first.device == 4
    # Late evidence: transformers 5 and 6 went dark at the same moment (delayed gasps),
    # within merge_window_s of the outage's start: one fault upstream, one outage.
    changes = eng.apply(rows(meters_of(5)[::2] + meters_of(6)[::2], T + 2, d.LAST_GASP))
    assert ("grew", 2) in kinds(changes)
    (o,) = eng.open_outages()
    assert o is first
    assert o.device == 2
    assert o.start_s == T + 1
    assert o.meters_affected == 18


def test_an_earlier_separate_fault_is_not_merged_into_a_later_upstream_outage(
    eng: OutageEngine,
) -> None:
    """Transformers 4 and 6 fail at T+1 (confirmed); transformer 5 is read lit at T+30 and
    goes dark at T+200: two faults, not one from T+1. The earlier outages stay open, and
    nobody's start is moved back. The recloser (no SCADA) is out at T+200 only if its
    own meters say so: the ones 4's and 6's outages do not hold are 5's, which name
    transformer 5 as well, and a transformer fails four times as often as a recloser."""
    eng.apply(rows(meters_of(5), T + 30, d.READING, 230.0))
    eng.apply(rows(meters_of(4)[::2], T + 1, d.LAST_GASP))
    eng.apply(rows(meters_of(6)[::2], T + 2, d.LAST_GASP))
    eng.tick(T + 50)
    early = {o.device: o for o in eng.open_outages()}
    assert sorted(early) == [4, 6]
    eng.pings_wanted()  # the confirm pings go out and are never answered: confirmed
    eng.tick(T + 200)
    assert {o.state for o in early.values()} == {"confirmed"}
    eng.apply(rows(meters_of(5)[::2], T + 200, d.LAST_GASP))
    changes = eng.tick(T + 250)
    assert ("predicted", 5) in kinds(changes)
    assert not any(k in ("grew", "merged_into") for k, _ in kinds(changes))
    by_dev = {o.device: o for o in eng.open_outages()}
    assert sorted(by_dev) == [4, 5, 6]
    assert by_dev[4] is early[4]
    assert by_dev[6] is early[6]
    assert by_dev[5].start_s == T + 200
    assert sorted(by_dev[5].meters.tolist()) == meters_of(5)  # 4's and 6's stay theirs


def test_a_lockout_upstream_of_an_earlier_fault_keeps_it_and_restores_it_on_its_own(
    eng: OutageEngine,
) -> None:
    """A fuse blew a minute before its breaker locked out (storm seed 2): the fuse outage
    stays open under the breaker's; when the breaker closes, the fuse's meters are still
    dark and stay in the fuse's outage, nobody there is told "restored"."""
    eng.apply(rows(meters_of(4) + meters_of(5), T + 1, d.LAST_GASP))
    eng.tick(T + 50)
    (fuse,) = eng.open_outages()
    assert fuse.device == 3
    changes = eng.apply(scada_evidence=scada(1, T + 60, d.SCADA_LOCKOUT), now_s=T + 60)
    assert [k for k in kinds(changes) if k[0] in ("predicted", "confirmed")] == [
        ("predicted", 1),
        ("confirmed", 1),
    ]
    by_dev = {o.device: o for o in eng.open_outages()}
    assert sorted(by_dev) == [1, 3]
    assert by_dev[3] is fuse
    brk = by_dev[1]
    assert brk.start_s == T + 60
    assert not set(brk.meters.tolist()) & set(meters_of(4) + meters_of(5))
    eng.apply(scada_evidence=scada(1, T + 600, d.SCADA_CLOSE), now_s=T + 600)
    eng.apply(rows(meters_of(6), T + 601, d.POWER_RESTORE), now_s=T + 601)
    eng.tick(T + 700)
    assert brk.state == "restored"
    assert fuse.is_open
    assert fuse.meters_out == 12
    assert fuse.meters_restored == 0


def test_planned_outage_suppresses_detection_inside_its_window(eng: OutageEngine) -> None:
    eng.add_planned(PlannedOutage("works-1", 3, T - 10, T + 300))
    eng.apply(rows(meters_of(4) + meters_of(5), T + 1, d.LAST_GASP))
    assert eng.tick(T + 100) == []
    assert eng.open_outages() == []
    eng.tick(T + 300)  # the works overran: the still-dark area is now an outage
    eng.tick(T + 346)
    (o,) = eng.open_outages()
    assert o.device == 3
    with pytest.raises(ValueError, match="end after"):
        PlannedOutage("bad", 3, T, T)
    with pytest.raises(ValueError, match="unknown device"):
        eng.add_planned(PlannedOutage("bad", 99, T, T + 1))


def test_topology_swap_during_restoration(eng: OutageEngine) -> None:
    eng.apply(rows(meters_of(4)[::2] + meters_of(5)[::2], T + 1, d.LAST_GASP))
    eng.tick(T + 50)
    eng.pings_wanted()
    eng.tick(T + 120)
    (o,) = eng.open_outages()
    # A tie switch moves transformer 5 onto breaker 7: its customers come back that way.
    swapped = list(PARENT)
    swapped[5] = 7
    changes = eng.set_topology(network(swapped), at_s=T + 300)
    assert ("topology_changed", 3) in kinds(changes)
    eng.tick(T + 301)
    eng.apply(rows(meters_of(5), T + 301, d.POWER_RESTORE))
    assert o.device == 3
    assert o.is_open
    assert o.meters_restored == 6
    assert o.state == "partially_restored"
    with pytest.raises(ValueError, match="never remove"):
        eng.set_topology(Network.build([-1], [0], np.zeros(0, np.int32)))


def test_bad_input_is_rejected_row_by_row_and_the_engine_keeps_going(
    eng: OutageEngine,
) -> None:
    good = meters_of(4) + meters_of(5)
    batch = np.concatenate(
        [
            rows(good[::2], T + 1, d.LAST_GASP),
            rows([999, -3], T + 1, d.LAST_GASP),
            rows([good[1]], T + 10_000, d.LAST_GASP),
            rows([good[1]], T - 10 * 86400, d.LAST_GASP),
            rows([good[1]], math.nan, d.LAST_GASP),
            rows([good[1]], T + 1, 77),
        ]
    )
    eng.apply(batch)
    reasons = [r.reason for r in eng.last_rejects]
    assert reasons == ["bad_index", "bad_index", "future", "too_old", "bad_time", "bad_kind"]
    sc = np.concatenate(
        [
            scada(42, T + 1, d.SCADA_OPEN),
            scada(7, T + 1, 9),
            scada(7, T - 10 * 86400, d.SCADA_OPEN),
            scada(7, math.inf, d.SCADA_OPEN),
        ]
    )
    eng.apply(scada_evidence=sc)
    assert sorted(r.reason for r in eng.last_rejects) == [
        "bad_index",
        "bad_kind",
        "bad_time",
        "too_old",
    ]
    assert eng.rejected["meter:bad_index"] == 2
    assert eng.rejected["scada:bad_kind"] == 1
    eng.tick(T + 50)
    assert [o.device for o in eng.open_outages()] == [3]  # the good rows still counted
    with pytest.raises(TypeError):
        eng.apply(scada_evidence=rows([1], T, d.LAST_GASP))
    with pytest.raises(ValueError, match="finite"):
        eng.tick(math.nan)


def test_configuration_and_topology_are_validated() -> None:
    with pytest.raises(ValueError, match="30-60"):
        EngineConfig(declaration_delay_s=10)
    EngineConfig(declaration_delay_s=30)
    with pytest.raises(TopologyError, match="cycle"):
        Network.build([1, 0], [1, 1], np.zeros(0, np.int32))
    with pytest.raises(TopologyError, match="outside"):
        Network.build([-1], [1], np.array([3], np.int32))


def test_recloser_shots_before_a_lockout_are_part_of_the_sustained_outage(
    eng: OutageEngine,
) -> None:
    """IEEE 1366: trip, reclose, trip, reclose, trip, lockout is one sustained interruption
    from the first trip, not two momentaries and an outage."""
    seq = [
        (T + 1, d.SCADA_TRIP),
        (T + 3, d.SCADA_RECLOSE),
        (T + 3.2, d.SCADA_TRIP),
        (T + 18, d.SCADA_RECLOSE),
        (T + 18.2, d.SCADA_TRIP),
        (T + 18.21, d.SCADA_LOCKOUT),
    ]
    changes = []
    for ts, kind in seq:
        changes += eng.apply(scada_evidence=scada(2, ts, kind), now_s=ts)
    assert ("confirmed", 2) in kinds(changes)
    (o,) = eng.open_outages()
    assert o.start_s == T + 1  # the first trip, not the lockout
    assert [e.detail["shots"] for e in o.timeline if e.kind == "reclose_shots"] == [2]
    eng.tick(T + 1000)
    assert eng.take_momentaries() == []  # never released, however long we wait
    eng.apply(scada_evidence=scada(2, T + 1001, d.SCADA_CLOSE))
    eng.tick(T + 2000)
    assert eng.take_momentaries() == []


def test_recloser_shots_that_end_in_a_successful_reclose_are_momentaries(
    eng: OutageEngine,
) -> None:
    for ts, kind in [
        (T + 1, d.SCADA_TRIP),
        (T + 3, d.SCADA_RECLOSE),
        (T + 3.2, d.SCADA_TRIP),
        (T + 18, d.SCADA_RECLOSE),
    ]:
        eng.apply(scada_evidence=scada(2, ts, kind), now_s=ts)
    eng.tick(T + 18 + 119)
    assert eng.take_momentaries() == []
    assert eng.open_outages() == []
    eng.tick(T + 18 + 120)
    shots = eng.take_momentaries()
    assert [(m.device, m.start_s, m.end_s) for m in shots] == [
        (2, T + 1, T + 3),
        (2, T + 3.2, T + 18),
    ]
    assert eng.open_outages() == []


def _replay_close_with_fine_ticks(
    eng: OutageEngine, close_s: float, *, lost: set[int]
) -> list[OutageChange]:
    """A locked-out breaker 1 closes at ``close_s``; the batch holding the close is judged
    0.1 s before its time stamp (at its commit time, as the runner does). One tick per
    event second. Pings are answered truthfully for the time they were sent (transformer
    4 has a fault of its own, everything else is lit from the close) after a 15 s round
    trip, except to ``lost`` meters. The meters' own restores (transformers 5 and 6)
    arrive 20 s after the close."""
    replies: list[tuple[float, np.ndarray]] = []  # (arrives at, rows)

    def answer_pings() -> None:  # as the runner does after every step
        for p in eng.pings_wanted():
            if p.meter in lost:
                continue
            lit = p.requested_s >= close_s and p.meter not in meters_of(4)
            ev = rows([p.meter], p.requested_s + 0.001, d.PING_ON if lit else d.PING_OFF)
            replies.append((p.requested_s + 15, ev))

    changes = eng.apply(scada_evidence=scada(1, close_s, d.SCADA_CLOSE), now_s=close_s - 0.1)
    answer_pings()
    for step in range(1, 121):
        now = close_s - 0.1 + step
        if close_s + 20 <= now < close_s + 21:
            restored = meters_of(5) + meters_of(6)
            changes += eng.apply(rows(restored, close_s + 0.5, d.POWER_RESTORE), now_s=now)
        for _, ev in [r for r in replies if r[0] <= now]:
            changes += eng.apply(ev, now_s=now)
        replies = [r for r in replies if r[0] > now]
        changes += eng.tick(now)
        answer_pings()
    return changes


def _lockout_breaker(eng: OutageEngine) -> Outage:
    under = meters_of(4) + meters_of(5) + meters_of(6)
    eng.apply(scada_evidence=scada(1, T + 1, d.SCADA_LOCKOUT), now_s=T + 1)
    eng.apply(rows(under[::2], T + 1, d.LAST_GASP), now_s=T + 2)
    (brk,) = eng.open_outages()
    assert (brk.device, brk.state) == (1, "confirmed")
    return brk


def test_fine_ticks_after_a_scada_close_nest_only_what_stays_dark_after_it(
    eng: OutageEngine,
) -> None:
    """Restore pings sent when the close is applied, 0.1 s before its time stamp, are
    answered "off", truthfully. Before the fix those answers nested the recloser (all 18
    meters) at once, confirmed at the breaker's restore, and "restored" 5 s later when
    the meters' own restores arrived (MQTT replay at 100x). Now only evidence from after
    the close counts: transformer 4, still dark, is nested; nothing else is."""
    brk = _lockout_breaker(eng)
    close_s = T + 600
    changes = _replay_close_with_fine_ticks(eng, close_s, lost=set())
    nested = [c for c in changes if c.kind == "nested"]
    assert [c.device for c in nested] == [4], kinds(changes)
    assert nested[0].at_s > close_s  # asked after the close, answered dark: then nested
    assert not [c for c in changes if c.kind in ("predicted", "split", "moved")]
    (tx4,) = eng.open_outages()
    assert (tx4.device, tx4.parent_key, tx4.state) == (4, brk.key, "confirmed")
    assert tx4.confirmed_s is not None
    assert tx4.confirmed_s > close_s
    assert brk.state == "restored"
    assert brk.restored_s is not None
    assert brk.restored_s > close_s
    status = dict(zip(brk.meters.tolist(), brk.meter_status.tolist(), strict=True))
    assert {m for m, s in status.items() if s == METER_TRANSFERRED} == set(meters_of(4))
    assert all(status[m] == METER_RESTORED for m in meters_of(5) + meters_of(6))


def test_restored_meters_whose_restore_pings_are_lost_are_not_made_off_again(
    eng: OutageEngine,
) -> None:
    """Transformer 6's restore pings are never answered, but its meters' own restores
    arrive 20 s after the close. Their pings must not then time out as "no reply", newer
    than the restore: 6 x 2 meters "off" again made a false outage on the recloser."""
    brk = _lockout_breaker(eng)
    changes = _replay_close_with_fine_ticks(eng, T + 600, lost=set(meters_of(6)))
    assert [c.device for c in changes if c.kind == "nested"] == [4]
    assert not [c for c in changes if c.kind in ("predicted", "split", "moved")]
    assert brk.state == "restored"
    assert (eng.meter_state.state[meters_of(5) + meters_of(6)] == d.ON).all()


def test_an_on_from_before_the_fault_restores_nobody(eng: OutageEngine) -> None:
    """A momentary on transformer 4 (T+1 to T+3), one meter's restore lost: it stays
    "off" since T+1. The fuse above fails at T+100; some meters gasp, the rest are silent,
    still "on" from T+3. The outage may start at T+1 (that meter), but an "on" from before
    the gasps it was declared on is no restoration (the notify e2e: customers put in the
    fuse's outage "restored" before it was confirmed, and never told anything)."""
    tx4, tx5 = meters_of(4), meters_of(5)
    eng.apply(rows(tx4, T + 1, d.LAST_GASP), now_s=T + 1)
    eng.apply(rows(tx4[1:], T + 3, d.POWER_RESTORE), now_s=T + 3)
    eng.tick(T + 60)
    eng.take_momentaries()
    eng.apply(rows(tx4[1::2] + tx5[::2], T + 100, d.LAST_GASP), now_s=T + 101)
    changes: list[OutageChange] = []
    for t in range(102, 200):
        changes += eng.tick(T + t)
        eng.pings_wanted()  # never answered
    (o,) = eng.open_outages()
    assert o.device == 3
    assert o.state == "confirmed"
    assert o.meters_restored == 0
    assert not [c for c in changes if c.kind == "meters_restored"]
    eng.apply(rows(tx4 + tx5, T + 900, d.POWER_RESTORE), now_s=T + 900)
    assert state_of(o) == "restored"
    assert o.meters_restored == 12
