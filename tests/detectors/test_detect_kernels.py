"""Kernels against their plain-Python references, on random trees and random evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detectors as d
from tests.reference_detectors import (
    RefMeter,
    brute_force_best_score,
    ref_apply_meter_evidence,
    ref_infer,
)
from tests.tree_strategies import trees

pytestmark = pytest.mark.kernel

NOW_S = 1_000_000.0
HORIZON_S = 500.0
SKEW_S = 30.0
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


TIMES = [
    NOW_S - 600.0,
    NOW_S - 100.0,
    NOW_S - 50.0,
    NOW_S - 45.5,
    NOW_S - 10.0,
    NOW_S,
    NOW_S + 60.0,
]


@st.composite
def evidence_rows(
    draw: st.DrawFn, n_meters: int, max_rows: int = 60
) -> list[tuple[int, float, int, float]]:
    rows = []
    for _ in range(draw(st.integers(0, max_rows))):
        meter = draw(st.integers(-1, n_meters))  # sometimes out of range on purpose
        ts = draw(
            st.one_of(
                st.sampled_from(TIMES),
                st.floats(NOW_S - 200, NOW_S + 10, allow_nan=False),
                st.sampled_from([math.nan, math.inf]),
            )
        )
        kind = draw(st.integers(-1, 8))
        v = draw(st.sampled_from([math.nan, 0.0, 5.0, 19.99, 20.0, 231.0, -1.0, 5000.0, math.inf]))
        rows.append((meter, ts, kind, v))
    return rows


def to_array(rows: list[tuple[int, float, int, float]]) -> np.ndarray:
    arr = d.meter_evidence(len(rows))
    for i, (m, ts, k, v) in enumerate(rows):
        arr[i] = (m, ts, k, v)
    return arr


def assert_same_state(ms: d.MeterState, ref: list[RefMeter]) -> None:
    assert ms.state.tolist() == [r.state for r in ref]
    assert ms.source.tolist() == [r.source for r in ref]
    assert ms.since_s.tolist() == [r.since_s for r in ref]
    assert ms.last_s.tolist() == [r.last_s for r in ref]
    assert ms.prev_s.tolist() == [r.prev_s for r in ref]


def apply_both(
    ms: d.MeterState, ref: list[RefMeter], rows: list[tuple[int, float, int, float]]
) -> None:
    result = d.apply_meter_evidence(
        ms, to_array(rows), now_s=NOW_S, horizon_s=HORIZON_S, future_skew_s=SKEW_S
    )
    status, changed = ref_apply_meter_evidence(
        ref, rows, now_s=NOW_S, horizon_s=HORIZON_S, future_skew_s=SKEW_S
    )
    assert result.status.tolist() == status
    assert result.changed.tolist() == sorted(changed)


@SETTINGS
@given(data=st.data(), n_meters=st.integers(1, 12))
def test_meter_state_kernel_equals_reference(data: st.DataObject, n_meters: int) -> None:
    ms = d.MeterState.empty(n_meters)
    ref = [RefMeter() for _ in range(n_meters)]
    for _ in range(data.draw(st.integers(1, 3))):  # several batches: late evidence across them
        apply_both(ms, ref, data.draw(evidence_rows(n_meters)))
        assert_same_state(ms, ref)


@SETTINGS
@given(data=st.data(), parent=trees())
def test_inference_kernel_equals_reference(data: st.DataObject, parent: list[int]) -> None:
    n_dev = len(parent)
    n_meters = data.draw(st.integers(0, 40))
    meter_device = [data.draw(st.integers(0, n_dev - 1)) for _ in range(n_meters)]
    ms = d.MeterState.empty(n_meters)
    ref_meters = [RefMeter() for _ in range(n_meters)]
    if n_meters:
        apply_both(ms, ref_meters, data.draw(evidence_rows(n_meters - 1, max_rows=80)))
    kinds = np.array([data.draw(st.integers(0, 6)) for _ in range(n_dev)], dtype=np.int8)
    forced = np.array(
        [data.draw(st.sampled_from([0, 0, 0, 0, 1, 2])) for _ in range(n_dev)], dtype=np.int8
    )
    forced_onset = np.full(n_dev, NOW_S - 20.0)
    suppressed = np.array([data.draw(st.integers(0, 9)) == 0 for _ in range(n_dev)])
    model = d.DetectionModel(
        p_gasp_delivery=data.draw(st.floats(0.05, 0.95)),
        p_lit_unknown=data.draw(st.floats(0.3, 0.99)),
    )
    prior = model.prior_log_odds(kinds)
    tree = d.tree_index(np.array(parent, dtype=np.int32))
    got = d.infer_outages(
        tree,
        np.array(meter_device, dtype=np.int32),
        ms,
        prior,
        model,
        now_s=NOW_S,
        forced=forced,
        forced_onset_s=forced_onset,
        suppressed=suppressed,
    )
    want = ref_infer(
        parent,
        meter_device,
        ref_meters,
        prior.tolist(),
        forced.tolist(),
        forced_onset.tolist(),
        suppressed.tolist(),
        model.llr_off_by_source().tolist(),
        model.llr_on_by_source().tolist(),
        model.llr_unknown(),
        NOW_S - model.onset_lookback_s,
    )
    assert got.n_meters.tolist() == want.n_meters
    assert got.n_off.tolist() == want.n_off
    assert got.n_on.tolist() == want.n_on
    assert got.suppressed.tolist() == want.suppressed
    assert got.onset_s.tolist() == want.onset_s
    np.testing.assert_allclose(got.margin, want.margin, rtol=1e-9, atol=1e-6)
    assert got.chosen.tolist() == want.chosen
    # The chosen set is an antichain ...
    chosen = set(np.flatnonzero(got.chosen).tolist())
    for x in chosen:
        a = parent[x]
        while a >= 0:
            assert a not in chosen
            a = parent[a]
    # ... and, without SCADA forcing, a best one over every antichain (the DP is exact).
    if n_dev <= 12 and not forced.any():
        total = sum(want.weight[x] for x in chosen)
        assert total == pytest.approx(brute_force_best_score(parent, want.weight), abs=1e-5)


def test_tree_index_rejects_bad_parents() -> None:
    with pytest.raises(ValueError, match="out of range"):
        d.tree_index(np.array([-1, 5], dtype=np.int32))
    with pytest.raises(ValueError, match="cycle"):
        d.tree_index(np.array([-1, 2, 3, 1], dtype=np.int32))
    with pytest.raises(ValueError, match="own parent"):
        d.tree_index(np.array([0], dtype=np.int32))
    tree = d.tree_index(np.array([2, 2, -1, 0], dtype=np.int32))
    position = {int(x): i for i, x in enumerate(tree.order)}
    assert position[2] < position[0] < position[3]
    assert tree.depth.tolist() == [1, 1, 0, 2]


def test_wrappers_check_dtypes_and_shapes() -> None:
    ms = d.MeterState.empty(3)
    with pytest.raises(TypeError):
        d.apply_meter_evidence(
            ms, np.zeros(2, dtype=np.int64), now_s=NOW_S, horizon_s=1.0, future_skew_s=1.0
        )  # type: ignore[arg-type]
    tree = d.tree_index(np.array([-1, 0], dtype=np.int32))
    model = d.DetectionModel()
    with pytest.raises(ValueError, match="meter_device"):
        d.infer_outages(
            tree, np.array([0, 1, 1], dtype=np.int64), ms, np.zeros(2), model, now_s=NOW_S
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        d.infer_outages(
            tree, np.array([0, 1, 7], dtype=np.int32), ms, np.zeros(2), model, now_s=NOW_S
        )
    with pytest.raises(ValueError, match="probability"):
        d.DetectionModel(p_gasp_delivery=0.0)
