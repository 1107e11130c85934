"""Single-premise outages (issue 12): a meter's last gasp (zero read, ping "off") with no
restore and no later "on" is an outage of that service point after the declaration delay,
even where the inference never chooses its device (a one-meter transformer's prior, -8.5,
against one gasp, +8.5).

Grid: 0 substation -> 1 breaker -> 2 fuse -> transformers 3 (meter 0), 4 (meters 1-2),
5 (meters 3-10); 1 -> 6 switch (meters 11-12 on it) -> transformer 7 (meters 13-16);
0 -> 8 recloser -> transformers 9, 10, 11 (meters 17, 18, 19: one each, as on MV grids)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

import detectors as d
from gridwatch.outages import (
    METER_OUT,
    METER_RESTORED,
    EngineConfig,
    Outage,
    OutageChange,
    OutageEngine,
    PingRequest,
    outage_row,
)
from gridwatch.outages._rows import Names
from tests.engine_support import T, lit_engine, network, rows, scada, tick_answering

PARENT = [-1, 0, 1, 2, 2, 2, 1, 6, 0, 8, 8, 8]
KIND = [0, 1, 5, 6, 6, 6, 4, 6, 2, 6, 6, 6]
METER_DEVICE = np.array([3, 4, 4] + [5] * 8 + [6, 6] + [7] * 4 + [9, 10, 11], dtype=np.int32)


def engine() -> OutageEngine:
    return lit_engine(network(PARENT, KIND, METER_DEVICE))


def run(
    eng: OutageEngine,
    until_s: float,
    *,
    send_pings: bool = True,
    answer: dict[int, int] | None = None,
) -> list[OutageChange]:
    """Tick every event second to ``until_s``. Pings are handed out (``send_pings``) and
    never answered, except meters in ``answer`` (meter -> reply kind, 0.5 s later)."""
    changes: list[OutageChange] = []
    t = eng.now_s
    while t < until_s:
        t += 1.0
        changes += eng.tick(t)
        if send_pings:
            for p in eng.pings_wanted():
                if answer and p.meter in answer:
                    ev = rows([p.meter], p.requested_s + 0.5, answer[p.meter])
                    changes += eng.apply(ev, now_s=t)
    return changes


def declared(changes: list[OutageChange]) -> list[tuple[str, int]]:
    return [(c.kind, c.device) for c in changes if c.kind in ("predicted", "split", "nested")]


def only_open(eng: OutageEngine) -> Outage:
    (o,) = eng.open_outages()
    return o


def test_a_one_meter_transformers_gasp_is_a_premise_outage_after_the_delay() -> None:
    eng = engine()
    changes = eng.apply(rows([0], T + 1, d.LAST_GASP), now_s=T + 2)
    changes += run(eng, T + 45)
    assert declared(changes) == []  # the declaration delay, as for any outage
    changes = run(eng, T + 47)
    assert declared(changes) == [("predicted", 3)]
    assert eng.last_inference is not None
    assert not eng.last_inference.chosen[3]  # the inference alone never names it
    o = only_open(eng)
    assert (o.scope, o.device, o.meters.tolist(), o.start_s) == ("premise", 3, [0], T + 1)
    assert o.state == "confirmed"  # its verification ping went unanswered: dark
    assert o.timeline[0].detail["scope"] == "premise"
    names = Names(
        np.array([f"D{i}" for i in range(len(PARENT))], dtype=object),
        np.array(["Z"] * len(PARENT), dtype=object),
        np.array([f"M{i}" for i in range(METER_DEVICE.size)], dtype=object),
        np.array([f"C{i}" for i in range(METER_DEVICE.size)], dtype=object),
        np.arange(METER_DEVICE.size, dtype=np.int32),
    )
    row = outage_row(o, names)
    assert (row.device_id, row.meters_affected, row.customers_affected) == ("D3", 1, 1)
    eng.apply(rows([0], T + 900, d.POWER_RESTORE), now_s=T + 901)
    assert o.state == "restored"
    assert o.meter_status.tolist() == [METER_RESTORED]
    assert eng.open_outages() == []


def test_a_gasp_whose_verification_ping_answers_on_is_no_outage() -> None:
    """A meter's restore after a momentary was lost: the ping it is sent answers "on"."""
    eng = engine()
    eng.apply(rows([0], T + 1, d.LAST_GASP), now_s=T + 2)
    changes = run(eng, T + 300, answer={0: d.PING_ON})
    assert declared(changes) == []
    assert eng.open_outages() == []
    # Answered "off" (a meter with backup comms): dark, and declared after the delay.
    eng = engine()
    eng.apply(rows([17], T + 1, d.LAST_GASP), now_s=T + 2)
    changes = run(eng, T + 300, answer={17: d.PING_OFF})
    assert declared(changes) == [("predicted", 9)]
    assert only_open(eng).state == "confirmed"


def test_a_momentary_gasp_restored_within_the_delay_stays_a_momentary() -> None:
    eng = engine()
    eng.apply(rows([0, 17], T + 1, d.LAST_GASP), now_s=T + 2)
    run(eng, T + 20)
    eng.apply(rows([0, 17], T + 21, d.POWER_RESTORE), now_s=T + 22)
    assert declared(run(eng, T + 600)) == []
    assert eng.open_outages() == []


def test_silence_alone_declares_nothing() -> None:
    """Meters that stop reading (the simulator's comm-silent meters), or send reads with no
    voltage, are never dark: only dated dark evidence can make a premise outage."""
    eng = engine()
    eng.apply(rows([0, 17, 18], T + 100, d.READING, math.nan), now_s=T + 101)
    assert declared(run(eng, T + 3 * 3600)) == []
    assert eng.open_outages() == []


def test_a_premise_outage_grows_into_its_device_keeping_its_key() -> None:
    """Transformer 4 (2 meters): one gasp, the other meter silent and not pinged (no
    ping answers at all). The gasped meter is a premise outage; when the other meter's
    gasp arrives late, the transformer itself is chosen and the same outage takes it."""
    eng = engine()
    eng.apply(rows([1], T + 1, d.LAST_GASP), now_s=T + 2)
    run(eng, T + 60, send_pings=False)
    o = only_open(eng)
    assert (o.scope, o.device, o.meters.tolist()) == ("premise", 4, [1])
    key = o.key
    changes = eng.apply(rows([2], T + 2, d.LAST_GASP), now_s=T + 100)
    assert ("grew", 4) in [(c.kind, c.device) for c in changes]
    o = only_open(eng)
    assert (o.key, o.scope, o.device, o.meters.tolist()) == (key, "device", 4, [1, 2])
    assert o.start_s == T + 1


def test_a_premise_outage_merges_into_the_fuse_once_it_is_chosen() -> None:
    """Transformer 3's one meter is a premise outage; transformer 5's gasps arrive late
    and dated the same instant: one fuse fault. One outage on the fuse, with its key."""
    eng = engine()
    eng.apply(rows([0], T + 1, d.LAST_GASP), now_s=T + 2)
    run(eng, T + 60, send_pings=False)
    first = only_open(eng)
    assert (first.scope, first.device) == ("premise", 3)
    changes = eng.apply(rows([3, 5, 7, 9], T + 2, d.LAST_GASP), now_s=T + 70)
    changes += run(eng, T + 80, send_pings=False)
    assert declared(changes) == []
    o = only_open(eng)
    assert o is first
    assert (o.device, o.scope, o.meters_affected, o.start_s) == (2, "device", 11, T + 1)
    grew = [c for c in changes if c.kind == "grew"]
    assert [c.detail["from_scope"] for c in grew] == ["premise"]


def test_a_premise_outage_on_a_switch_does_not_hide_a_fault_beneath_it() -> None:
    """Meter 11 on switch 6 is dark; later transformer 7 below the switch fails (meter 12,
    on the switch, is read lit after that). Its outage is declared beside the premise one:
    a premise outage covers its own meters, not the device's subtree."""
    eng = engine()
    eng.apply(rows([11], T + 1, d.LAST_GASP), now_s=T + 2)
    run(eng, T + 60, send_pings=False)
    premise = only_open(eng)
    assert (premise.scope, premise.device) == ("premise", 6)
    eng.apply(rows([13, 14], T + 100, d.LAST_GASP), now_s=T + 101)
    eng.apply(rows([12], T + 110, d.READING, 231.0), now_s=T + 111)  # the switch is in
    changes = run(eng, T + 160, send_pings=False)
    assert declared(changes) == [("predicted", 7)]
    assert sorted(o.device for o in eng.open_outages()) == [6, 7]
    assert premise.is_open


def test_a_gasp_inside_a_recloser_momentary_with_its_restore_lost_is_no_outage() -> None:
    """Recloser 8 trips and recloses; meter 17 gasped in between and its restore was lost.
    Silence since is no evidence: no premise outage, until the meter itself says dark."""
    for answer, want in ((None, []), ({17: d.PING_OFF}, [("predicted", 9)])):
        eng = engine()
        eng.apply(scada_evidence=scada(8, T + 1, d.SCADA_TRIP), now_s=T + 1)
        eng.apply(scada_evidence=scada(8, T + 3, d.SCADA_RECLOSE), now_s=T + 3)
        eng.apply(rows([17], T + 1.2, d.LAST_GASP), now_s=T + 4)
        changes = run(eng, T + 600, answer=answer)
        assert declared(changes) == want


def test_a_meter_whose_reads_stopped_is_asked_once_and_only_its_answer_counts() -> None:
    """One-meter transformers (MV grids: one load is a whole station) with the last gasp
    lost: the reads just stop. After ``read_overdue_s`` the meter is pinged once; "off" is
    dated dark evidence and makes a premise outage; "on" or no answer declares nothing,
    and an unanswered overdue ping is not even a timeout (the meter was already quiet)."""
    cfg = EngineConfig(read_overdue_s=1200.0, overdue_check_s=60.0)
    eng = lit_engine(network(PARENT, KIND, METER_DEVICE), cfg)
    talking = [m for m in range(METER_DEVICE.size) if m not in (17, 18, 19)]
    asked: list[int] = []
    changes: list[OutageChange] = []
    t = eng.now_s
    while t < T + 1500:
        t += 1.0
        if int(t - T) % 300 == 0:  # everyone else keeps reading
            changes += eng.apply(rows(talking, t, d.READING, 230.0), now_s=t)
        changes += eng.tick(t)
        for p in eng.pings_wanted():
            asked.append(p.meter)
            if p.meter == 17:  # dark since T+100, its gasp lost: answers "off"
                changes += eng.apply(rows([17], t + 0.5, d.PING_OFF), now_s=t + 1)
            elif p.meter == 18:  # lit, only quiet: answers "on"
                changes += eng.apply(rows([18], t + 0.5, d.PING_ON), now_s=t + 1)
            # 19 never answers
    assert sorted(asked) == [17, 18, 19]  # once each, from T+600 (1,200 s after the read)
    assert declared(changes) == [("predicted", 9)]
    o = only_open(eng)
    assert (o.scope, o.meters.tolist(), o.state) == ("premise", [17], "confirmed")
    assert T + 600 <= o.start_s <= T + 700  # dated by the answer, the first evidence of it
    assert eng.meter_state.source[19] != d.PING_TIMEOUT
    # The same silence is not asked about again; a new one (after a read) is; a meter in
    # an open outage is not asked (it is known dark).
    eng.tick(T + 1590)
    assert 19 not in [p.meter for p in eng.pings_wanted()]
    eng.apply(rows([19], T + 1600, d.READING, 230.0), now_s=T + 1600)
    eng.tick(T + 1600 + 1200 + 60)
    again = [p.meter for p in eng.pings_wanted()]
    assert 19 in again
    assert 17 not in again


def test_an_earlier_outage_beneath_is_no_evidence_for_the_switch_above_it() -> None:
    """1-MV-urban: two one-meter stations under one switch fail hours apart. The first is
    a premise outage of its own; when the second gasps, the two dark meters together
    outweighed the switch's prior and the switch was declared, holding only the second
    meter. The first outage explains its meter already: the switch is judged on the rest
    (one gasp: no better than its own station), and the second is a premise outage too."""
    parent = [-1, 0, 1, 2, 2, 2]
    kind = [0, 1, 4, 6, 6, 6]
    eng = lit_engine(network(parent, kind, np.array([3, 4, 5], dtype=np.int32)))
    changes = eng.apply(rows([0], T + 1, d.LAST_GASP), now_s=T + 2)
    changes += run(eng, T + 600)
    assert declared(changes) == [("predicted", 3)]
    eng.apply(rows([2], T + 590, d.READING, 230.0), now_s=T + 600)  # the third station lit
    changes = eng.apply(rows([1], T + 5000, d.LAST_GASP), now_s=T + 5001)
    changes += run(eng, T + 5200)
    assert declared(changes) == [("predicted", 4)]
    assert sorted((o.device, o.scope) for o in eng.open_outages()) == [
        (3, "premise"),
        (4, "premise"),
    ]


def test_outages_beneath_that_began_together_still_merge_beside_an_earlier_one() -> None:
    """The rule above never splits one fault: the recloser's transformers 9 and 10 gasp
    together hours after transformer 11's own outage; the recloser is judged on 9's and
    10's meters (not held apart), and is declared."""
    eng = engine()
    eng.apply(rows([19], T + 1, d.LAST_GASP), now_s=T + 2)
    run(eng, T + 600)
    changes = eng.apply(rows([17, 18], T + 5000, d.LAST_GASP), now_s=T + 5001)
    changes += run(eng, T + 5200)
    by_device = {o.device: o for o in eng.open_outages()}
    assert sorted(by_device) == [8, 11]  # the recloser, and 11's earlier outage beneath it
    assert sorted(by_device[8].meters.tolist()) == [17, 18]


def test_a_premise_outage_merges_into_a_fault_found_later_by_ping() -> None:
    """1-LV-rural1: fuse 2 (meter 0 on switch 3 beneath it, meters 1-3 on the fuse) fails.
    Meter 0's gasp makes a premise outage; the other three lost theirs and are found
    dark by the read-overdue pings twenty minutes later. Their "off" runs may have begun
    any time after they were last read lit, so the premise outage is not provably an
    earlier fault: one outage on the fuse, from the gasp, keeping the premise's key."""
    parent = [-1, 0, 1, 2]
    kind = [0, 1, 5, 4]
    meter_device = np.array([3, 2, 2, 2, 1, 1, 1, 1], dtype=np.int32)
    cfg = EngineConfig(read_overdue_s=1200.0, overdue_check_s=60.0)
    eng = lit_engine(network(parent, kind, meter_device), cfg)
    eng.apply(rows(list(range(8)), T, d.READING, 230.0), now_s=T)
    talking = [4, 5, 6, 7]
    changes = eng.apply(rows([0], T + 100, d.LAST_GASP), now_s=T + 101)
    t = T + 101
    while t < T + 1600:
        t += 1.0
        if int(t - T) % 300 == 0:  # the breaker's other meters keep reading lit
            changes += eng.apply(rows(talking, t, d.READING, 230.0), now_s=t)
        changes += eng.tick(t)
        for p in eng.pings_wanted():
            if p.meter in (1, 2, 3):
                changes += eng.apply(rows([p.meter], t + 0.5, d.PING_OFF), now_s=t + 1)
    assert declared(changes) == [("predicted", 3)]  # the premise outage, then it grew
    o = only_open(eng)
    assert (o.device, o.scope, o.start_s) == (2, "device", T + 100)
    assert sorted(o.meters.tolist()) == [0, 1, 2, 3]


def test_an_outage_beneath_older_than_the_last_lit_read_stays_apart() -> None:
    """The same grid, but meter 0's premise outage began before meters 1-3 were last read
    lit: an earlier fault, provably. The fuse found later by ping is a new outage and the
    premise outage stays open beneath it."""
    parent = [-1, 0, 1, 2]
    kind = [0, 1, 5, 4]
    meter_device = np.array([3, 2, 2, 2, 1, 1, 1, 1], dtype=np.int32)
    cfg = EngineConfig(read_overdue_s=1200.0, overdue_check_s=60.0)
    eng = lit_engine(network(parent, kind, meter_device), cfg)
    changes = eng.apply(rows([0], T + 100, d.LAST_GASP), now_s=T + 101)
    changes += run(eng, T + 299, send_pings=False)
    eng.apply(rows([1, 2, 3, 4, 5, 6, 7], T + 300, d.READING, 230.0), now_s=T + 300)
    t = T + 300
    while t < T + 1900:
        t += 1.0
        if int(t - T) % 300 == 0:
            changes += eng.apply(rows([4, 5, 6, 7], t, d.READING, 230.0), now_s=t)
        changes += eng.tick(t)
        for p in eng.pings_wanted():
            if p.meter in (1, 2, 3):
                changes += eng.apply(rows([p.meter], t + 0.5, d.PING_OFF), now_s=t + 1)
    assert declared(changes) == [("predicted", 3), ("predicted", 2)]
    by_device = {o.device: o for o in eng.open_outages()}
    assert sorted(by_device) == [2, 3]
    assert by_device[2].start_s > T + 300


def fuse_fault_beside_earlier_ones(
    second_earlier: bool,
) -> tuple[OutageEngine, Callable[[PingRequest], tuple[int, float] | None], list[OutageChange]]:
    """Transformer 2 feeds fuses 3 (meters 0-4), 4 (meter 5) and 5 (meters 6-7), and with
    ``second_earlier`` fuse 7 (meters 12-13); transformer 6 (meters 8-11) is a lit
    neighbour. Fuse 5 fails at T+100 (and fuse 7 at T+200); all others read lit at
    T+2700; fuse 3 fails at T+3000. Dark meters answer their pings "off", the rest never
    answer. Returns the engine at T+3001, the answerer and the changes so far."""
    parent = [-1, 0, 1, 2, 2, 2, 1] + ([2] if second_earlier else [])
    kind = [0, 1, 6, 5, 5, 5, 6] + ([5] if second_earlier else [])
    devices = [3] * 5 + [4] + [5] * 2 + [6] * 4 + ([7] * 2 if second_earlier else [])
    eng = lit_engine(network(parent, kind, np.array(devices, dtype=np.int32)))
    dark: set[int] = set()

    def answer(p: PingRequest) -> tuple[int, float] | None:
        return (d.PING_OFF, 0.5) if p.meter in dark else None

    eng.apply(rows(list(range(len(devices))), T, d.READING, 230.0), now_s=T)
    dark |= {6, 7}
    changes = eng.apply(rows([6, 7], T + 100, d.LAST_GASP), now_s=T + 101)
    if second_earlier:
        changes += tick_answering(eng, T + 200, answer)
        dark |= {12, 13}
        changes += eng.apply(rows([12, 13], T + 200, d.LAST_GASP), now_s=T + 201)
    changes += tick_answering(eng, T + 2700, answer)
    eng.apply(rows([0, 1, 2, 3, 4, 5, 8, 9, 10, 11], T + 2700, d.READING, 230.0), now_s=T + 2701)
    dark |= {0, 1, 2, 3, 4}
    changes += eng.apply(rows([0, 1, 2, 3, 4], T + 3000, d.LAST_GASP), now_s=T + 3001)
    return eng, answer, changes


def test_an_open_outage_moves_down_when_its_own_meters_say_a_child_is_out() -> None:
    """lv_schutterwald, development seed 2: fuse 5 under transformer 2 is out (an earlier
    fault). Hours later fuse 3 fails; meter 5 on fuse 4, read lit before the fault, is
    unknown, and the transformer (likelier than a fuse) is declared on the meters fuse 5
    does not hold. When meter 5 reads lit after the fault, the transformer is out only
    through fuse 5's old darkness: judged on its own meters, fuse 3 explains them, so
    the outage moves down to it (its start kept); fuse 5's outage stays as it was."""
    eng, answer, changes = fuse_fault_beside_earlier_ones(second_earlier=False)
    changes += tick_answering(eng, T + 3100, answer)
    assert declared(changes) == [("predicted", 5), ("predicted", 2)]  # as the service did
    first = {o.device: o for o in eng.open_outages()}[2]
    changes = eng.apply(rows([5, 8, 9, 10, 11], T + 3600, d.READING, 230.0), now_s=T + 3601)
    changes += tick_answering(eng, T + 3700, answer)
    by_device = {o.device: o for o in eng.open_outages()}
    assert sorted(by_device) == [3, 5]
    moved = by_device[3]
    assert moved is first
    assert (moved.start_s, moved.meters[moved.meter_status == METER_OUT].tolist()) == (
        T + 3000,
        [0, 1, 2, 3, 4],
    )
    # Meter 5's customer was told "out" by this outage: its restoration stays on record.
    assert moved.meter_status[moved.meters == 5].tolist() == [METER_RESTORED]
    assert [c.kind for c in changes if c.device == 3] == ["moved"]
    assert sorted(by_device[5].meters.tolist()) == [6, 7]


def test_a_confirmed_outage_that_moves_down_keeps_what_it_told_its_customers() -> None:
    """As above, but meter 4 (on fuse 3) is back before the move. The outage was confirmed
    and its customers told "out", so the move keeps its record whole: meter 4 stays
    restored (never out again until a pass restores it a second time), meter 5 left behind
    stays on record as restored, and no confirmation ping goes to a meter already seen
    back (its unanswered ping would read as dark and undo the move)."""
    eng, answer, changes = fuse_fault_beside_earlier_ones(second_earlier=False)
    changes += tick_answering(eng, T + 3100, answer)
    first = {o.device: o for o in eng.open_outages()}[2]
    assert first.state == "confirmed"
    eng.apply(rows([4], T + 3300, d.POWER_RESTORE), now_s=T + 3301)
    tick_answering(eng, T + 3400, answer)
    assert (first.device, first.state) == (2, "partially_restored")
    eng.apply(rows([5, 8, 9, 10, 11], T + 3600, d.READING, 230.0), now_s=T + 3601)
    assert first.device == 3
    pinged = {p.meter for p in eng.pings_wanted()}
    tick_answering(eng, T + 4000, answer)
    assert first.device == 3
    status = dict(zip(first.meters.tolist(), first.meter_status.tolist(), strict=True))
    assert status == {0: METER_OUT, 1: METER_OUT, 2: METER_OUT, 3: METER_OUT} | {
        4: METER_RESTORED,
        5: METER_RESTORED,
    }
    assert first.state == "partially_restored"
    assert not pinged & {4, 5}


def test_a_device_vetoed_for_its_children_leaves_them_declared_and_the_old_outage_open() -> None:
    """As above, with a second earlier outage beneath (fuse 7), and meter 5 reads lit
    before the declaration delay is over. Two old fuse faults make the transformer the
    inference's cheaper explanation even then (lv_schutterwald, seed 2); the engine
    vetoes it (fuse 3 explains its own meters better) and declares fuse 3 in its place.
    The earlier outages are not taken for restored meanwhile: their meters are still
    dark (never a restore ping for what the inference still sees out)."""
    eng, answer, changes = fuse_fault_beside_earlier_ones(second_earlier=True)
    changes += tick_answering(eng, T + 3010, answer)
    changes += eng.apply(rows([5], T + 3010, d.READING, 230.0), now_s=T + 3011)
    changes += tick_answering(eng, T + 3600, answer)
    assert declared(changes) == [("predicted", 5), ("predicted", 7), ("predicted", 3)]
    assert eng.last_inference is not None
    assert eng.last_inference.chosen[2]  # the inference alone still names the transformer
    by_device = {o.device: o for o in eng.open_outages()}
    assert sorted(by_device) == [3, 5, 7]
    assert by_device[3].start_s == T + 3000
    assert (by_device[5].state, by_device[7].state) == ("confirmed", "confirmed")
    assert not any(c.kind == "restore_pings" for c in changes)
