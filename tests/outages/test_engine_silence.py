"""Silence after a restore is not evidence of darkness (issue 12).

A restored device stays restored unless evidence dated after the restore says dark (a
ping answered "off", a fresh last gasp, a zero-voltage read, a customer report). Unanswered
restore pings (many head-ends never answer) must not re-open it: in a service run one
recloser was re-declared up to 7 times, each time ~40 s after its restore, with its
original start.

Feeder: 0 substation -> 1 breaker -> 2 recloser -> 3 fuse -> transformers 4, 5;
transformer 6 under the recloser; 0 -> 7 breaker -> transformers 8, 9. Six meters per
transformer (customers = meters)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import detectors as d
from gridwatch.outages import (
    METER_RESTORED,
    METER_UNVERIFIED,
    EngineConfig,
    OutageChange,
    OutageEngine,
    PingRequest,
)
from tests.engine_support import T, lit_engine, network, rows, scada, tick_answering

PARENT = [-1, 0, 1, 2, 3, 3, 2, 0, 7, 7]
KIND = [0, 1, 2, 5, 6, 6, 6, 1, 6, 6]
TX = [4, 5, 6, 8, 9]
METER_DEVICE = np.repeat(TX, 6).astype(np.int32)
UNDER_RECLOSER = np.flatnonzero(np.isin(METER_DEVICE, [4, 5, 6])).tolist()


def engine() -> OutageEngine:
    return lit_engine(network(PARENT, KIND, METER_DEVICE))


def run(eng: OutageEngine, until_s: float, *, answer: bool = False) -> list[OutageChange]:
    """Tick every event second to ``until_s``, handing out pings as a runner does; the
    head-end never answers them unless ``answer`` (then a lit meter answers "on")."""

    def lit_answers(p: PingRequest) -> tuple[int, float] | None:
        lit = eng.meter_state.state[p.meter] != d.OFF
        return (d.PING_ON, 0.5) if answer and lit else None

    return tick_answering(eng, until_s, lit_answers)


def predicted(changes: list[OutageChange]) -> list[tuple[int, float]]:
    return [(c.device, c.at_s) for c in changes if c.kind in ("predicted", "split", "nested")]


@pytest.mark.parametrize("scada_close", [True, False])
def test_a_restored_recloser_whose_restore_pings_go_unanswered_stays_restored(
    scada_close: bool,
) -> None:
    """The recloser locks out (or its meters gasp); at the repair 14 of its 18 meters say
    power_restore, 4 say nothing and never answer their restore pings (2 of them had
    gasped). It is restored with those 4 "unverified", and stays restored: no outage is
    declared again, however long the silence lasts (past the SCADA close's trust too).
    Before the fix the synthesised ping timeouts were fresh "off" evidence newer than
    the restores, and the recloser was re-declared with its original start."""
    eng = engine()
    gasped = UNDER_RECLOSER[::2]
    changes: list[OutageChange] = []
    if scada_close:
        changes += eng.apply(scada_evidence=scada(2, T + 1, d.SCADA_LOCKOUT), now_s=T + 1)
    changes += eng.apply(rows(gasped, T + 1, d.LAST_GASP), now_s=T + 2)
    first = predicted(changes + run(eng, T + 200))
    assert [dev for dev, _ in first] == [2]
    (o,) = eng.open_outages()
    assert o.state == "confirmed"
    silent = [gasped[0], gasped[1], UNDER_RECLOSER[1], UNDER_RECLOSER[3]]
    back = [m for m in UNDER_RECLOSER if m not in silent]
    if scada_close:
        eng.apply(scada_evidence=scada(2, T + 600, d.SCADA_CLOSE), now_s=T + 600)
    changes = eng.apply(rows(back, T + 602, d.POWER_RESTORE), now_s=T + 603)
    changes += run(eng, T + 600 + 3 * 600)  # well past scada_close_trust_s (600 s)
    assert predicted(changes) == []
    assert eng.open_outages() == []
    assert o.state == "restored"
    status = dict(zip(o.meters.tolist(), o.meter_status.tolist(), strict=True))
    assert {m for m, s in status.items() if s == METER_UNVERIFIED} == set(silent)
    assert {m for m, s in status.items() if s == METER_RESTORED} == set(back)


def test_fresh_dark_evidence_after_the_restore_does_reopen() -> None:
    """The rule is about silence only: gasps dated after the restore are a new outage."""
    eng = engine()
    gasped = UNDER_RECLOSER[::2]
    eng.apply(scada_evidence=scada(2, T + 1, d.SCADA_LOCKOUT), now_s=T + 1)
    eng.apply(rows(gasped, T + 1, d.LAST_GASP), now_s=T + 2)
    run(eng, T + 200)
    silent = gasped[:2]
    eng.apply(scada_evidence=scada(2, T + 600, d.SCADA_CLOSE), now_s=T + 600)
    back = [m for m in UNDER_RECLOSER if m not in silent]
    eng.apply(rows(back, T + 602, d.POWER_RESTORE), now_s=T + 603)
    run(eng, T + 1400)
    assert eng.open_outages() == []
    eng.apply(rows(UNDER_RECLOSER[1::2], T + 1500, d.LAST_GASP), now_s=T + 1501)
    changes = run(eng, T + 1600)
    assert [dev for dev, _ in predicted(changes)] == [2]
    (again,) = eng.open_outages()
    assert again.start_s == T + 1500  # its own start, not the first outage's


def test_a_head_end_that_never_answers_makes_timeouts_weigh_nothing() -> None:
    """Every ping to this head-end times out. The first few timeouts count as the model
    says (a lit meter answers 95% of pings); as the engine sees nobody answer, a timeout
    weighs less and less, towards nothing."""
    model = d.DetectionModel()
    fresh = model.llr_off_by_source()[d.PING_TIMEOUT]
    assert fresh == pytest.approx(math.log(1 / model.p_ping_lost))
    eng = engine()
    assert eng.ping_answer_rate == pytest.approx(1 - model.p_ping_lost)
    # Transformers 8 and 9 get one gasp each, an hour apart: each time their neighbours
    # are pinged (suspect pings) and nobody answers.
    eng.apply(rows([18], T + 1, d.LAST_GASP), now_s=T + 1)
    run(eng, T + 200)
    eng.apply(rows([24], T + 4000, d.LAST_GASP), now_s=T + 4000)
    run(eng, T + 4200)
    assert eng.ping_answer_rate < 0.6
    weight = model.llr_off_by_source(ping_answer_rate=eng.ping_answer_rate)[d.PING_TIMEOUT]
    assert weight < fresh / 3
    assert model.llr_off_by_source(ping_answer_rate=0.0)[d.PING_TIMEOUT] == 0.0
    assert model.observed_ping_answer_rate(0, 10_000) < 0.001
    assert model.observed_ping_answer_rate(10_000, 0) == pytest.approx(1 - model.p_ping_lost)
    with pytest.raises(ValueError, match="ping_answer_rate"):
        model.llr_off_by_source(ping_answer_rate=1.5)


def test_pings_time_out_after_they_leave_not_after_they_were_asked_for() -> None:
    """``pings_wanted(sent_s=...)``: a runner that publishes its pings some seconds after
    its step stamps them with the time they leave; each times out ``ping_timeout_s``
    after that. Without ``sent_s``: the engine's now, as before."""
    cfg = EngineConfig()
    for sent_late_s in (None, 12.0):
        eng = engine()
        eng.apply(rows(UNDER_RECLOSER[:1], T + 1, d.LAST_GASP), now_s=T + 1)
        eng.tick(T + 2)  # the gasp's transformer is suspected: its neighbours are pinged
        sent = None if sent_late_s is None else T + 2 + sent_late_s
        handed = eng.pings_wanted(sent_s=sent)
        assert {p.requested_s for p in handed} == {T + 2 if sent is None else sent}
        pings = [p for p in handed if p.reason == "suspect"]  # to meters not yet dark
        assert pings
        expires = (T + 2 if sent is None else sent) + cfg.ping_timeout_s
        eng.tick(expires - 0.5)
        assert (eng.meter_state.state[[p.meter for p in pings]] != d.OFF).all()
        eng.tick(expires)
        timed_out = eng.meter_state.source[[p.meter for p in pings]]
        assert (timed_out == d.PING_TIMEOUT).all()
        assert (eng.meter_state.since_s[[p.meter for p in pings]] == expires - 30.0).all()
    eng = engine()
    eng.apply(rows(UNDER_RECLOSER[:1], T + 1, d.LAST_GASP), now_s=T + 1)
    eng.tick(T + 2)
    assert {p.requested_s for p in eng.pings_wanted(sent_s=T - 50)} == {T + 2}  # never before now
    with pytest.raises(ValueError, match="finite"):
        eng.pings_wanted(sent_s=math.nan)
