"""A breaker closed by SCADA, with part of it still dark (issue 12, case33bw's nested run).

Two defects seen on Baran & Wu's feeder, where the substation and its one breaker feed the
same meters (both with SCADA telemetry):

- At the breaker's SCADA close its meters were still "off" (their restores take seconds to
  arrive), so the inference chose the substation above and the breaker's outage grew into
  it at once, from dark evidence that the close had just made stale.
- A one-meter transformer that failed while the breaker was out answered its restore ping
  "off", yet it was closed "unverified" and its darkness refuted with the silent ones:
  a dated answer after the restore is evidence, not silence.

Grid: 0 substation -> 1 breaker -> transformers 2 (meter 0 alone), 3 (meters 1-4),
4 (meters 5-9)."""

from __future__ import annotations

import numpy as np

import detectors as d
from gridwatch.outages import (
    METER_RESTORED,
    METER_TRANSFERRED,
    METER_UNVERIFIED,
    OutageChange,
    OutageEngine,
    PingRequest,
)
from tests.engine_support import T, lit_engine, network, rows, scada, tick_answering

PARENT = [-1, 0, 1, 1, 1]
KIND = [0, 1, 6, 6, 6]
METER_DEVICE = np.array([2] + [3] * 4 + [4] * 5, dtype=np.int32)
ALL = list(range(10))
CLOSE_S = T + 2000.0


def run(eng: OutageEngine, until_s: float, *, dark_answers: bool) -> list[OutageChange]:
    """Tick every event second to ``until_s``. A lit meter answers a ping "on"; a dark one
    (meter 0 after the close) answers "off" when ``dark_answers`` (a head-end that reports
    a meter it cannot reach as off), else never."""

    def head_end(p: PingRequest) -> tuple[int, float] | None:
        dark = p.meter == 0 or p.requested_s < CLOSE_S
        if dark and not dark_answers:
            return None
        return (d.PING_OFF if dark else d.PING_ON, 0.5)

    return tick_answering(eng, until_s, head_end)


def breaker_out_then_closed(*, dark_answers: bool) -> tuple[OutageEngine, list[OutageChange]]:
    """The breaker locks out at T+1 (every meter gasps); it is closed by SCADA at
    CLOSE_S and meters 1-9 say so over the next 40 s; meter 0 never comes back."""
    eng = lit_engine(network(PARENT, KIND, METER_DEVICE))
    changes = eng.apply(scada_evidence=scada(1, T + 1, d.SCADA_LOCKOUT), now_s=T + 1)
    changes += eng.apply(rows(ALL, T + 1.5, d.LAST_GASP), now_s=T + 2)
    changes += run(eng, CLOSE_S - 1, dark_answers=dark_answers)
    changes += eng.apply(scada_evidence=scada(1, CLOSE_S, d.SCADA_CLOSE), now_s=CLOSE_S)
    for i, m in enumerate(range(1, 10)):
        at = CLOSE_S + 3 + 4.5 * i  # the last restore 39 s after the close
        changes += run(eng, at, dark_answers=dark_answers)
        changes += eng.apply(rows([m], at, d.POWER_RESTORE), now_s=at)
    changes += run(eng, CLOSE_S + 600, dark_answers=dark_answers)
    return eng, changes


def test_a_breaker_closed_by_scada_does_not_grow_into_the_substation_above_it() -> None:
    eng, changes = breaker_out_then_closed(dark_answers=True)
    breaker = next(c for c in changes if c.kind == "predicted").key
    assert eng.outages[breaker].device == 1
    assert [c.detail for c in changes if c.key == breaker and c.kind == "grew"] == []
    assert eng.outages[breaker].state == "restored"


def test_a_meter_answering_off_after_the_close_is_a_nested_outage_not_unverified() -> None:
    eng, changes = breaker_out_then_closed(dark_answers=True)
    breaker = eng.outages[next(c for c in changes if c.kind == "predicted").key]
    status = dict(zip(breaker.meters.tolist(), breaker.meter_status.tolist(), strict=True))
    assert status[0] == METER_TRANSFERRED  # never told "restored", nor left unverified
    assert all(status[m] == METER_RESTORED for m in range(1, 10))
    (nested,) = eng.open_outages()
    assert (nested.device, nested.meters.tolist(), nested.state) == (2, [0], "confirmed")
    assert nested.parent_key == breaker.key
    assert nested.start_s == breaker.start_s  # dark since the breaker went, as they were


def test_a_meter_that_never_answers_after_the_close_stays_unverified_and_nothing_opens() -> None:
    """Silence is not darkness: with no answer, meter 0 is unverified and no outage opens."""
    eng, _ = breaker_out_then_closed(dark_answers=False)
    assert eng.open_outages() == []
    (breaker,) = [o for o in eng.outages.values() if o.device == 1]
    status = dict(zip(breaker.meters.tolist(), breaker.meter_status.tolist(), strict=True))
    assert status[0] == METER_UNVERIFIED


def test_the_substation_failing_after_the_close_is_still_declared() -> None:
    """Only dark evidence from before the close is stale: fresh gasps from every meter
    after it are the substation (or the breaker again) going out."""
    eng, _ = breaker_out_then_closed(dark_answers=True)
    eng.apply(rows(list(range(1, 10)), CLOSE_S + 900, d.LAST_GASP), now_s=CLOSE_S + 901)
    changes = run(eng, CLOSE_S + 1000, dark_answers=True)
    assert [c.device for c in changes if c.kind in ("predicted", "grew")] in ([0], [1])


# A one-meter station whose gasp was lost fails while its breaker is out (mv_oberrhein's
# storm): after the close its restore ping answers "off" a moment after its neighbours'
# answer "on", so its dark run looks newer than their "on" and the inference chose the
# switch above all of them; that switch was nested with a dozen lit stations in it.
# Grid: 0 substation -> 1 breaker -> 2 switch -> transformers 3 (meter 0), 4 (meters 1-4),
# 5 (meters 5-8); 1 -> transformer 6 (meters 9-12). Meter 5 cannot be reached after the
# close (comm-silent), so it stays "off" from its old gasp.
PARENT_2 = [-1, 0, 1, 2, 2, 2, 1]
KIND_2 = [0, 1, 4, 6, 6, 6, 6]
METER_DEVICE_2 = np.array([3] + [4] * 4 + [5] * 4 + [6] * 4, dtype=np.int32)
LIT_2 = [m for m in range(13) if m not in (0, 5)]


def head_end_2(p: PingRequest) -> tuple[int, float] | None:
    if p.requested_s < CLOSE_S or p.meter == 5:
        return None  # breaker out: the head-end cannot reach them
    return (d.PING_OFF, 0.5) if p.meter == 0 else (d.PING_ON, 0.4)


def run_2(eng: OutageEngine, until_s: float) -> list[OutageChange]:
    return tick_answering(eng, until_s, head_end_2)


def test_a_lost_gasp_station_dark_after_the_close_is_nested_alone_not_its_lit_switch() -> None:
    eng = lit_engine(network(PARENT_2, KIND_2, METER_DEVICE_2))
    eng.apply(scada_evidence=scada(1, T + 1, d.SCADA_LOCKOUT), now_s=T + 1)
    eng.apply(rows([m for m in range(13) if m != 0], T + 1.5, d.LAST_GASP), now_s=T + 2)
    run_2(eng, CLOSE_S - 1)
    eng.apply(scada_evidence=scada(1, CLOSE_S, d.SCADA_CLOSE), now_s=CLOSE_S)
    changes = run_2(eng, CLOSE_S + 5)
    # Their restores, stamped at the close, arrive after the pings were answered.
    changes += eng.apply(rows(LIT_2, CLOSE_S + 0.5, d.POWER_RESTORE), now_s=CLOSE_S + 6)
    changes += run_2(eng, CLOSE_S + 600)
    assert [c.device for c in changes if c.kind == "nested"] == [3]
    (nested,) = eng.open_outages()
    assert (nested.device, nested.meters.tolist()) == (3, [0])
    (breaker,) = [o for o in eng.outages.values() if o.device == 1]
    status = dict(zip(breaker.meters.tolist(), breaker.meter_status.tolist(), strict=True))
    assert (status[0], status[5]) == (METER_TRANSFERRED, METER_UNVERIFIED)
    assert all(status[m] == METER_RESTORED for m in LIT_2)


# kb_extrem_landnetz's nested run: the breaker back, a fuse's 26 meters still dark (two of
# them had lost their gasps, so their restore pings' "off" began their dark runs), the
# transformer's one other meter back on. Judged from the answer time, those two runs made
# the neighbour's "on" look older than the fault, and the transformer was nested instead
# of its fuse. A run a ping "off" began went dark after the meter was last seen on.
# Grid: 0 substation -> 1 breaker -> 2 transformer -> 3 fuse (meters 0-5), 4 fuse (meter 6).
PARENT_3 = [-1, 0, 1, 2, 2]
KIND_3 = [0, 1, 6, 5, 5]
METER_DEVICE_3 = np.array([3] * 6 + [4], dtype=np.int32)


def test_a_dark_run_begun_by_a_ping_answer_does_not_hide_a_neighbours_on() -> None:
    eng = lit_engine(network(PARENT_3, KIND_3, METER_DEVICE_3))
    eng.apply(scada_evidence=scada(1, T + 1, d.SCADA_LOCKOUT), now_s=T + 1)
    eng.apply(rows([1, 2, 3, 4, 6], T + 1.5, d.LAST_GASP), now_s=T + 2)  # 0 and 5: lost
    tick_answering(eng, CLOSE_S - 1, lambda p: None, step_s=5.0)  # breaker out: no answers
    eng.apply(scada_evidence=scada(1, CLOSE_S, d.SCADA_CLOSE), now_s=CLOSE_S)
    eng.apply(rows([6], CLOSE_S + 1, d.POWER_RESTORE), now_s=CLOSE_S + 2)
    # The fuse's meters answer "off"; their neighbour said "on" by its restore.
    changes = tick_answering(
        eng, CLOSE_S + 300, lambda p: (d.PING_OFF, 0.5) if p.meter != 6 else None
    )
    assert [c.device for c in changes if c.kind == "nested"] == [3]
    (fuse,) = eng.open_outages()
    assert (fuse.device, sorted(fuse.meters.tolist())) == (3, [0, 1, 2, 3, 4, 5])
