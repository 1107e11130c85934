"""Meter state rules, one by one, and hostile evidence rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

import detectors as d

pytestmark = pytest.mark.kernel

NOW = 2_000_000.0


def ev(*rows: tuple[int, float, int, float]) -> np.ndarray:
    arr = d.meter_evidence(len(rows))
    for i, row in enumerate(rows):
        arr[i] = row
    return arr


def apply(ms: d.MeterState, *rows: tuple[int, float, int, float]) -> d.EvidenceResult:
    return d.apply_meter_evidence(ms, ev(*rows), now_s=NOW, horizon_s=3600.0, future_skew_s=60.0)


def test_silence_is_unknown_not_off() -> None:
    ms = d.MeterState.empty(2)
    apply(ms, (0, NOW - 100, d.READING, 230.0))
    assert ms.state.tolist() == [d.ON, d.UNKNOWN]  # meter 1 never spoke: unknown


def test_gasp_then_restore_and_zero_voltage() -> None:
    ms = d.MeterState.empty(2)
    r = apply(ms, (0, NOW - 50, d.LAST_GASP, math.nan), (1, NOW - 40, d.READING, 0.0))
    assert ms.state.tolist() == [d.OFF, d.OFF]
    assert r.changed.tolist() == [0, 1]
    apply(ms, (0, NOW - 10, d.POWER_RESTORE, math.nan))
    assert ms.state[0] == d.ON
    assert ms.since_s[0] == NOW - 10
    assert ms.prev_s[0] == NOW - 50


def test_restore_before_gasp_arriving_late_does_not_undo_the_gasp() -> None:
    ms = d.MeterState.empty(1)
    apply(ms, (0, NOW - 20, d.LAST_GASP, math.nan))
    r = apply(ms, (0, NOW - 30, d.POWER_RESTORE, math.nan))  # older: it happened before
    assert r.status.tolist() == [d.APPLIED]
    assert r.changed.size == 0
    assert ms.state[0] == d.OFF
    assert ms.since_s[0] == NOW - 20
    assert ms.prev_s[0] == NOW - 30


def test_out_of_order_within_a_batch_is_ordered_by_event_time() -> None:
    a, b = d.MeterState.empty(1), d.MeterState.empty(1)
    rows = [(0, NOW - 5, d.POWER_RESTORE, math.nan), (0, NOW - 30, d.LAST_GASP, math.nan)]
    apply(a, *rows)
    apply(b, *reversed(rows))
    assert a.state[0] == b.state[0] == d.ON
    assert a.since_s[0] == b.since_s[0] == NOW - 5


def test_on_wins_a_tie_and_late_agreeing_evidence_moves_the_start_back() -> None:
    ms = d.MeterState.empty(1)
    apply(ms, (0, NOW - 9, d.LAST_GASP, math.nan), (0, NOW - 9, d.POWER_RESTORE, math.nan))
    assert ms.state[0] == d.ON
    ms = d.MeterState.empty(1)
    apply(ms, (0, NOW - 100, d.READING, 230.0))
    apply(ms, (0, NOW - 20, d.LAST_GASP, math.nan))
    apply(ms, (0, NOW - 25, d.READING, 0.0))  # late zero read, after the last "on"
    assert ms.since_s[0] == NOW - 25


def test_contradiction_inside_a_run_restarts_it_conservatively() -> None:
    ms = d.MeterState.empty(1)
    apply(ms, (0, NOW - 100, d.LAST_GASP, math.nan), (0, NOW - 10, d.REPORT_OUT, math.nan))
    apply(ms, (0, NOW - 50, d.READING, 231.0))  # on at -50: the dark run restarted later
    assert ms.state[0] == d.OFF
    assert ms.since_s[0] == NOW - 10
    assert ms.prev_s[0] == NOW - 50


def test_a_ping_timeout_never_renews_extends_or_restarts_a_dark_run() -> None:
    """A timeout is silence: on a meter already "off" it changes nothing (before, it
    renewed ``last_s``, so the meter looked freshly dark after its device was restored)."""
    ms = d.MeterState.empty(1)
    apply(ms, (0, NOW - 100, d.LAST_GASP, math.nan))
    apply(ms, (0, NOW - 10, d.PING_TIMEOUT, math.nan), (0, NOW - 200, d.PING_TIMEOUT, math.nan))
    assert (ms.state[0], ms.source[0]) == (d.OFF, d.LAST_GASP)
    assert (ms.since_s[0], ms.last_s[0]) == (NOW - 100, NOW - 100)
    assert ms.prev_s[0] == -math.inf
    # Older than a meter's "on" (it spoke after the ping left): nothing either.
    ms = d.MeterState.empty(1)
    apply(ms, (0, NOW - 50, d.POWER_RESTORE, math.nan))
    apply(ms, (0, NOW - 60, d.PING_TIMEOUT, math.nan))
    assert (ms.state[0], ms.since_s[0], ms.prev_s[0]) == (d.ON, NOW - 50, -math.inf)
    # Newer than everything known: the weakest "off", dated by the ping.
    apply(ms, (0, NOW - 20, d.PING_TIMEOUT, math.nan))
    assert (ms.state[0], ms.source[0], ms.since_s[0]) == (d.OFF, d.PING_TIMEOUT, NOW - 20)


def test_weak_evidence_does_not_downgrade_the_source() -> None:
    ms = d.MeterState.empty(1)
    apply(ms, (0, NOW - 100, d.LAST_GASP, math.nan))
    apply(ms, (0, NOW - 10, d.PING_TIMEOUT, math.nan), (0, NOW - 5, d.REPORT_OUT, math.nan))
    assert ms.source[0] == d.LAST_GASP
    assert ms.last_s[0] == NOW - 5


def test_bad_rows_are_rejected_and_the_rest_applied() -> None:
    ms = d.MeterState.empty(3)
    r = apply(
        ms,
        (0, NOW - 10, d.LAST_GASP, math.nan),
        (7, NOW - 10, d.LAST_GASP, math.nan),  # unknown meter
        (-1, NOW - 10, d.LAST_GASP, math.nan),
        (1, NOW - 10, 42, math.nan),  # unknown kind
        (1, math.nan, d.LAST_GASP, math.nan),
        (1, math.inf, d.LAST_GASP, math.nan),
        (1, NOW - 7200, d.LAST_GASP, math.nan),  # older than the horizon
        (1, NOW + 3600, d.LAST_GASP, math.nan),  # from the future
        (1, NOW - 10, d.READING, -5.0),
        (1, NOW - 10, d.READING, 1e9),
        (1, NOW - 10, d.READING, math.inf),
        (2, NOW - 10, d.READING, math.nan),  # no voltage: accepted, no information
        (2, NOW - 5, d.READING, 229.0),
    )
    assert [d.STATUS_NAMES[s] for s in r.status] == [
        "applied",
        "bad_index",
        "bad_index",
        "bad_kind",
        "bad_time",
        "bad_time",
        "too_old",
        "future",
        "bad_voltage",
        "bad_voltage",
        "bad_voltage",
        "no_info",
        "applied",
    ]
    assert ms.state.tolist() == [d.OFF, d.UNKNOWN, d.ON]


def test_oversized_batch_applies() -> None:
    n = 200_000
    ms = d.MeterState.empty(1000)
    rng = np.random.default_rng(0)
    arr = d.meter_evidence(n)
    arr["meter"] = rng.integers(-5, 1005, n)
    arr["ts_s"] = NOW - rng.random(n) * 100
    arr["kind"] = rng.integers(0, 8, n)
    arr["v_rms_v"] = 230.0
    r = d.apply_meter_evidence(ms, arr, now_s=NOW, horizon_s=3600.0, future_skew_s=60.0)
    bad = (arr["meter"] < 0) | (arr["meter"] >= 1000)
    assert (r.status[bad] == d.REJECT_BAD_INDEX).all()
    assert (r.status[~bad] == d.APPLIED).all()
    assert d.MeterState.empty(1_000_000).nbytes / 1_000_000 <= 100
