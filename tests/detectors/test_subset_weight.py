"""``detectors.subset_weight`` (the engine's own-weight rule) against its plain-Python
reference, and against the per-device weight ``infer_outages`` weighs over a whole subtree."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detectors as d
from detectors._codes import N_METER_KINDS
from tests.reference_detectors import RefMeter, subset_weight_reference
from tests.tree_strategies import trees

pytestmark = pytest.mark.kernel

NOW_S = 1_000_000.0
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A few shared instants, so that "on" newer than the dark ties with it now and then.
TIMES = [NOW_S - 600.0, NOW_S - 100.0, NOW_S - 50.0, NOW_S - 10.0, NOW_S]
times = st.one_of(
    st.sampled_from(TIMES),
    st.floats(NOW_S - 700.0, NOW_S + 10.0, allow_nan=False),
    st.just(-math.inf),
)
# Every source, with the ones the dark-from rule singles out drawn more often.
sources = st.one_of(
    st.integers(0, N_METER_KINDS - 1), st.sampled_from([d.PING_OFF, d.PING_TIMEOUT])
)
llrs = st.floats(-30.0, 30.0, allow_nan=False)


@st.composite
def meter_states(draw: st.DrawFn, n_meters: int) -> list[RefMeter]:
    out = []
    for _ in range(n_meters):
        state = draw(st.sampled_from([d.UNKNOWN, d.ON, d.OFF, d.OFF]))
        source = draw(sources)
        since = draw(times)
        last = draw(st.one_of(st.just(since), times))
        # A ping "off" run with and without a known last "on" before it.
        prev = draw(st.one_of(st.just(-math.inf), times))
        out.append(RefMeter(state, source, since, last, prev))
    return out


def draw_meter_list(data: st.DataObject, n_meters: int) -> list[int]:
    """Any list of meter indices: empty, partial, with meters listed more than once."""
    if not n_meters:
        return []
    return data.draw(st.lists(st.integers(0, n_meters - 1), max_size=2 * n_meters + 3))


def draw_llr_tables(data: st.DataObject) -> tuple[list[float], list[float], float]:
    """Per-source "off" and "on" llr tables and the unknown llr, any finite values."""
    llr_off = [data.draw(llrs) for _ in range(N_METER_KINDS)]
    llr_on = [data.draw(llrs) for _ in range(N_METER_KINDS)]
    return llr_off, llr_on, data.draw(llrs)


def to_state(ref: list[RefMeter]) -> d.MeterState:
    return d.MeterState(
        state=np.array([r.state for r in ref], dtype=np.int8),
        source=np.array([r.source for r in ref], dtype=np.int8),
        since_s=np.array([r.since_s for r in ref], dtype=np.float64),
        last_s=np.array([r.last_s for r in ref], dtype=np.float64),
        prev_s=np.array([r.prev_s for r in ref], dtype=np.float64),
    )


@SETTINGS
@given(data=st.data(), n_meters=st.integers(0, 15))
def test_subset_weight_equals_reference(data: st.DataObject, n_meters: int) -> None:
    ref = data.draw(meter_states(n_meters))
    ms = to_state(ref)
    subset = draw_meter_list(data, n_meters)
    llr_off, llr_on, llr_unknown = draw_llr_tables(data)
    prior = data.draw(st.floats(-50.0, 50.0, allow_nan=False))
    got = d.subset_weight(
        np.array(subset, dtype=np.int32),
        ms,
        prior,
        llr_off=np.array(llr_off),
        llr_on=np.array(llr_on),
        llr_unknown=llr_unknown,
    )
    want = subset_weight_reference(subset, ref, prior, llr_off, llr_on, llr_unknown)
    assert isinstance(got, float)
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (got, want)


@SETTINGS
@given(data=st.data(), n_meters=st.integers(0, 12))
def test_subset_weights_equal_the_reference_slice_by_slice(
    data: st.DataObject, n_meters: int
) -> None:
    """The batched form: every slice (overlapping, nested, empty) weighed as the
    reference weighs that slice alone, with its own prior."""
    ref = data.draw(meter_states(n_meters))
    ms = to_state(ref)
    meters = draw_meter_list(data, n_meters)
    n = len(meters)
    bounds = data.draw(
        st.lists(st.tuples(st.integers(0, n), st.integers(0, n)), max_size=6).map(
            lambda pairs: [(min(a, b), max(a, b)) for a, b in pairs]
        )
    )
    priors = [data.draw(st.floats(-50.0, 50.0, allow_nan=False)) for _ in bounds]
    llr_off, llr_on, llr_unknown = draw_llr_tables(data)
    got = d.subset_weights(
        np.array(meters, dtype=np.int32),
        np.array([a for a, _ in bounds], dtype=np.int64),
        np.array([b for _, b in bounds], dtype=np.int64),
        np.array(priors, dtype=np.float64),
        ms,
        llr_off=np.array(llr_off),
        llr_on=np.array(llr_on),
        llr_unknown=llr_unknown,
    )
    assert got.shape == (len(bounds),)
    for (a, b), prior, w in zip(bounds, priors, got.tolist(), strict=True):
        want = subset_weight_reference(meters[a:b], ref, prior, llr_off, llr_on, llr_unknown)
        assert math.isclose(w, want, rel_tol=1e-9, abs_tol=1e-9), (a, b, w, want)


def test_subset_weights_reject_slices_outside_the_meters() -> None:
    ms, kw = _valid()
    meters = np.array([0, 1, 2], dtype=np.int32)

    def weights(starts: list[int], ends: list[int], priors: list[float]) -> object:
        return d.subset_weights(
            meters,
            np.array(starts, dtype=np.int64),
            np.array(ends, dtype=np.int64),
            np.array(priors, dtype=np.float64),
            ms,
            **kw,
        )

    for starts, ends in (([0], [4]), ([-1], [2]), ([2], [1])):
        with pytest.raises(ValueError, match="slice of meters"):
            weights(starts, ends, [-2.0])
    with pytest.raises(ValueError, match="ends must be"):
        weights([0, 1], [2], [-2.0])
    with pytest.raises(ValueError, match="priors"):
        weights([0], [2], [-2.0, -3.0])
    with pytest.raises(ValueError, match="is NaN"):
        weights([0, 1], [2, 3], [-2.0, math.nan])
    empty = weights([], [], [])
    assert isinstance(empty, np.ndarray)
    assert empty.shape == (0,)


@SETTINGS
@given(data=st.data(), n_meters=st.integers(1, 12))
def test_subset_weight_is_order_free_and_empty_is_the_prior(
    data: st.DataObject, n_meters: int
) -> None:
    ms = to_state(data.draw(meter_states(n_meters)))
    model = d.DetectionModel()
    kw: dict[str, Any] = {
        "llr_off": model.llr_off_by_source(),
        "llr_on": model.llr_on_by_source(),
        "llr_unknown": model.llr_unknown(),
    }
    subset = data.draw(st.lists(st.integers(0, n_meters - 1), max_size=20))
    shuffled = data.draw(st.permutations(subset))
    a = d.subset_weight(np.array(subset, dtype=np.int32), ms, -3.0, **kw)
    b = d.subset_weight(np.array(shuffled, dtype=np.int32), ms, -3.0, **kw)
    assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    assert d.subset_weight(np.zeros(0, dtype=np.int32), ms, -3.0, **kw) == -3.0


@SETTINGS
@given(data=st.data(), parent=trees(max_devices=15))
def test_subset_weight_over_a_subtree_is_the_inference_weight(
    data: st.DataObject, parent: list[int]
) -> None:
    """Over every meter beneath a device (no suppression, no forcing) it is that device's
    weight in ``infer_outages``. The inference does not expose the weight, but its margin
    is w(d) - sum over children of best(c), and best(c) = cs(c) + max(margin(c), 0), so
    the weight follows from the margins bottom-up."""
    n_dev = len(parent)
    n_meters = data.draw(st.integers(0, 30))
    meter_device = [data.draw(st.integers(0, n_dev - 1)) for _ in range(n_meters)]
    ms = to_state(data.draw(meter_states(n_meters)))
    model = d.DetectionModel(
        p_gasp_delivery=data.draw(st.floats(0.05, 0.95)),
        p_lit_unknown=data.draw(st.floats(0.3, 0.99)),
    )
    # As the engine: a ping timeout weighed by the answer rate it observed.
    llr_off = model.llr_off_by_source(ping_answer_rate=data.draw(st.floats(0.05, 0.99)))
    kinds = np.array([data.draw(st.integers(0, 6)) for _ in range(n_dev)], dtype=np.int8)
    prior = model.prior_log_odds(kinds)
    tree = d.tree_index(np.array(parent, dtype=np.int32))
    inf = d.infer_outages(
        tree, np.array(meter_device, dtype=np.int32), ms, prior, model, now_s=NOW_S, llr_off=llr_off
    )
    kids: list[list[int]] = [[] for _ in range(n_dev)]
    for x, p in enumerate(parent):
        if p >= 0:
            kids[p].append(x)
    child_sum = [0.0] * n_dev
    for x in reversed(tree.order.tolist()):  # children before parents
        child_sum[x] = sum(child_sum[c] + max(float(inf.margin[c]), 0.0) for c in kids[x])
    for x in range(n_dev):
        beneath, todo = set(), [x]
        while todo:
            y = todo.pop()
            beneath.add(y)
            todo.extend(kids[y])
        meters = np.array([m for m in range(n_meters) if meter_device[m] in beneath], np.int32)
        got = d.subset_weight(
            meters,
            ms,
            float(prior[x]),
            llr_off=llr_off,
            llr_on=model.llr_on_by_source(),
            llr_unknown=model.llr_unknown(),
        )
        want = float(inf.margin[x]) + child_sum[x]
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6), (x, got, want)


def _valid() -> tuple[d.MeterState, dict[str, Any]]:
    """Meter 0 on until NOW-60; meter 1 a ping "off" run from NOW-50, last on at NOW-80;
    meter 2 a ping timeout at NOW-10; meter 3 unknown."""
    ms = d.MeterState.empty(4)
    ms.state[:] = [d.ON, d.OFF, d.OFF, d.UNKNOWN]
    ms.source[:] = [d.PING_ON, d.PING_OFF, d.PING_TIMEOUT, d.READING]
    ms.since_s[:] = [NOW_S - 100.0, NOW_S - 50.0, NOW_S - 10.0, -math.inf]
    ms.last_s[:] = [NOW_S - 60.0, NOW_S - 50.0, NOW_S - 10.0, -math.inf]
    ms.prev_s[:] = [-math.inf, NOW_S - 80.0, NOW_S - 20.0, -math.inf]
    model = d.DetectionModel()
    kw: dict[str, Any] = {
        "llr_off": model.llr_off_by_source(),
        "llr_on": model.llr_on_by_source(),
        "llr_unknown": model.llr_unknown(),
    }
    return ms, kw


def test_subset_weight_ping_off_dates_from_its_last_on() -> None:
    """A ping "off" run went dark unseen after the meter was last on (NOW-80), so an "on"
    at NOW-60, older than the run's start (NOW-50), is no older than the fault: it counts
    against the device. Without that last "on", or from a last gasp, the dark dates from
    NOW-50 and the "on" is stale (unknown). A ping timeout alone dates nothing."""
    ms, kw = _valid()
    model = d.DetectionModel()
    llr_off, llr_on, unknown = (
        model.llr_off_by_source(),
        model.llr_on_by_source(),
        model.llr_unknown(),
    )
    sub = np.array([0, 1, 2], dtype=np.int32)
    base = -2.0 + llr_off[d.PING_OFF] + llr_off[d.PING_TIMEOUT]
    got = d.subset_weight(sub, ms, -2.0, **kw)
    assert math.isclose(got, base + llr_on[d.PING_ON], rel_tol=1e-12)
    ms.prev_s[1] = -math.inf
    got = d.subset_weight(sub, ms, -2.0, **kw)
    assert math.isclose(got, base + unknown, rel_tol=1e-12)
    ms.prev_s[1] = NOW_S - 80.0
    ms.source[1] = d.LAST_GASP
    got = d.subset_weight(sub, ms, -2.0, **kw)
    want = -2.0 + llr_off[d.LAST_GASP] + llr_off[d.PING_TIMEOUT] + unknown
    assert math.isclose(got, want, rel_tol=1e-12)
    got = d.subset_weight(np.array([0, 2], dtype=np.int32), ms, -2.0, **kw)
    assert math.isclose(got, -2.0 + llr_off[d.PING_TIMEOUT] + llr_on[d.PING_ON], rel_tol=1e-12)
    # A meter listed twice counts twice.
    got = d.subset_weight(np.array([3, 3], dtype=np.int32), ms, -2.0, **kw)
    assert math.isclose(got, -2.0 + 2 * unknown, rel_tol=1e-12)


def test_subset_weight_rejects_bad_input() -> None:
    ms, kw = _valid()
    good = np.array([0, 1, 2], dtype=np.int32)
    assert math.isfinite(d.subset_weight(good, ms, -2.0, **kw))
    with pytest.raises(ValueError, match="int32"):
        d.subset_weight(np.array([0, 1], dtype=np.int64), ms, -2.0, **kw)
    with pytest.raises(ValueError, match="contiguous"):
        d.subset_weight(np.arange(4, dtype=np.int32)[::2], ms, -2.0, **kw)
    with pytest.raises(ValueError, match="1-d"):
        d.subset_weight(np.zeros((2, 1), dtype=np.int32), ms, -2.0, **kw)
    with pytest.raises(ValueError, match="int32"):
        d.subset_weight([0, 1], ms, -2.0, **kw)  # type: ignore[arg-type]
    for bad in ([0, 4], [-1]):
        with pytest.raises(ValueError, match="outside the meter table"):
            d.subset_weight(np.array(bad, dtype=np.int32), ms, -2.0, **kw)
    with pytest.raises(ValueError, match=r"prior \(prior_d\) is NaN"):
        d.subset_weight(good, ms, math.nan, **kw)
    for unknown in (math.nan, math.inf):
        with pytest.raises(ValueError, match="llr_unknown"):
            d.subset_weight(good, ms, -2.0, **{**kw, "llr_unknown": unknown})
    with pytest.raises(ValueError, match="llr_off"):
        d.subset_weight(good, ms, -2.0, **{**kw, "llr_off": np.zeros(3)})
    with pytest.raises(ValueError, match="llr_on"):
        d.subset_weight(good, ms, -2.0, **{**kw, "llr_on": np.zeros(8, np.float32)})
    bad_state = d.MeterState(
        ms.state.astype(np.int64),
        ms.source,
        ms.since_s,
        ms.last_s,
        ms.prev_s,
    )
    with pytest.raises(ValueError, match=r"meter_state\.state"):
        d.subset_weight(good, bad_state, -2.0, **kw)
    # A source code outside the evidence kinds, on a meter in the subset.
    for code in (N_METER_KINDS, -1):
        ms.source[3] = code
        with pytest.raises(ValueError, match="source has a code outside"):
            d.subset_weight(np.array([0, 3], dtype=np.int32), ms, -2.0, **kw)
        # ... is not looked at when the meter is not in the subset.
        assert math.isfinite(d.subset_weight(good, ms, -2.0, **kw))
