"""ETR kernels held equal to the plain-Python references (tests/reference_etr.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_etr as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.etr import (
    KM,
    LOGNORMAL,
    N_CLASSES,
    WEIBULL,
    LogGrid,
    SurvivalModel,
    backlog_etr,
    conditional_duration_quantiles,
    queue_order,
)
from detectors.etr._backlog import _backlog_kernel
from detectors.etr._fit_kernels import (
    _fit_km_kernel,
    _fit_parametric_kernel,
    _holdout_loglik_kernel,
)
from detectors.etr._history import _histogram_kernel
from detectors.etr._special import inv_log_norm_sf, log_norm_sf, norm_ppf

pytestmark = pytest.mark.kernel
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GRID = LogGrid(30.0, 14 * 86400.0, 32)


def _model(
    family: int, p1: float, p2: float, cumhaz: np.ndarray | None = None, tail: float = 1e-4
) -> SurvivalModel:
    ch = np.zeros((N_CLASSES, GRID.n_bins + 1))
    if cumhaz is not None:
        ch[:] = cumhaz
    return SurvivalModel(
        grid=GRID,
        family=np.full(N_CLASSES, family, dtype=np.int64),
        p1=np.full(N_CLASSES, p1),
        p2=np.full(N_CLASSES, p2),
        km_cumhaz=ch,
        tail_rate=np.full(N_CLASSES, tail),
        n_events=np.zeros(N_CLASSES, dtype=np.int64),
        n_censored=np.zeros(N_CLASSES, dtype=np.int64),
    )


@given(st.floats(-8.0, 60.0))
@FAST
def test_log_norm_sf_matches_reference(z: float) -> None:
    assert log_norm_sf(z) == pytest.approx(ref.log_norm_sf(z), rel=1e-9, abs=1e-12)


@given(st.floats(1e-300, 1.0 - 1e-12))
@FAST
def test_norm_ppf_inverts_the_cdf(p: float) -> None:
    x = norm_ppf(p)
    assert math.log(0.5 * math.erfc(-x / math.sqrt(2.0))) == pytest.approx(math.log(p), abs=1e-9)


@given(st.floats(-5000.0, -1e-6))
@FAST
def test_inv_log_norm_sf_roundtrip(log_p: float) -> None:
    assert log_norm_sf(inv_log_norm_sf(log_p)) == pytest.approx(log_p, rel=1e-9, abs=1e-9)


def _cumhaz(draw_h: list[float]) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(draw_h)])


@given(
    family=st.sampled_from([LOGNORMAL, WEIBULL, KM]),
    p1=st.floats(5.0, 11.0),
    p2=st.floats(0.2, 3.0),
    hazards=st.lists(st.floats(0.0, 0.5), min_size=GRID.n_bins, max_size=GRID.n_bins),
    elapsed=st.one_of(st.just(0.0), st.floats(1.0, 30 * 86400.0)),
    q=st.floats(0.01, 0.99),
)
@FAST
def test_conditional_quantile_matches_reference(
    family: int, p1: float, p2: float, hazards: list[float], elapsed: float, q: float
) -> None:
    ch = _cumhaz(hazards)
    model = _model(family, p1, p2, ch, tail=2e-4)
    got = conditional_duration_quantiles(
        model, np.array([5], dtype=np.int64), np.array([elapsed]), np.array([q])
    )[0, 0]
    want = ref.conditional_quantile(
        family, p1, p2, list(ch), 2e-4, GRID.log_min, GRID.width, elapsed, q
    )
    assert got >= elapsed
    # Flat stretches of the KM cumulative hazard make the quantile a set; compare survival.
    if family == KM:
        args = (family, p1, p2, list(ch), 2e-4, GRID.log_min, GRID.width)
        assert ref.log_sf(*args, got) == pytest.approx(ref.log_sf(*args, want), abs=1e-7)
    else:
        assert got == pytest.approx(want, rel=1e-7)


def test_conditional_etr_moves_with_age() -> None:
    """A one-hour-old outage does not get its minute-one ETR."""
    model = _model(LOGNORMAL, math.log(3600.0), 0.8)
    codes = np.zeros(2, dtype=np.int64)
    q = conditional_duration_quantiles(model, codes, np.array([60.0, 3600.0]))
    assert np.all(q[1] > q[0])
    assert np.all(q[1] >= 3600.0)


@st.composite
def _history(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(1, 60))
    dur = np.array(draw(st.lists(st.floats(1.0, 3e6), min_size=n, max_size=n)))
    cens = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    codes = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=np.int64)
    hold = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return dur, cens, codes, hold


@given(_history())
@FAST
def test_histogram_matches_reference(h: tuple[np.ndarray, ...]) -> None:
    dur, cens, codes, hold = h
    got = _histogram_kernel(dur, cens, codes, hold, 6, GRID.log_min, GRID.width, GRID.n_bins)
    want = ref.histogram(
        dur.tolist(),
        cens.tolist(),
        codes.tolist(),
        hold.tolist(),
        6,
        GRID.log_min,
        GRID.width,
        GRID.n_bins,
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, np.array(w))


@st.composite
def _class_counts(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """One class's event and censoring counts over a 32-bin grid, with events spread out."""
    mu_bin = draw(st.integers(6, 24))
    spread = draw(st.integers(2, 6))
    ev = np.zeros(GRID.n_bins)
    ce = np.zeros(GRID.n_bins)
    for j in range(max(0, mu_bin - spread), min(GRID.n_bins, mu_bin + spread + 1)):
        ev[j] = draw(st.integers(0, 30))
        ce[j] = draw(st.integers(0, 8))
    ev[mu_bin] += 5
    ev[mu_bin + 1] += 3
    return ev, ce


@pytest.mark.parametrize("family", [LOGNORMAL, WEIBULL])
@given(counts=_class_counts(), weight=st.sampled_from([0.0, 5.0]), shift=st.floats(-1.0, 1.0))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parametric_fit_is_the_reference_maximum(
    family: int, counts: tuple[np.ndarray, np.ndarray], weight: float, shift: float
) -> None:
    ev, ce = counts
    x = GRID.log_mids()
    prior = (8.0 + shift, 0.9 if family == LOGNORMAL else 1.4)
    one = np.ones(1)
    scale_bounds = (GRID.width, 5.0) if family == LOGNORMAL else (0.1, 20.0)
    a, b, _ = _fit_parametric_kernel(
        family,
        ev[None],
        ce[None],
        x,
        one * prior[0],
        one * prior[1],
        weight,
        one * 8.0,
        one * 1.0,
        *scale_bounds,
    )
    lb = math.log(b[0])

    lo, hi = (
        (math.log(GRID.width), math.log(5.0))
        if family == LOGNORMAL
        else (math.log(0.1), math.log(20.0))
    )

    def f(p: float, s: float) -> float:
        if not lo <= s <= hi:  # the kernel's documented bounds on sigma / shape
            return -math.inf
        return ref.penalised_loglik(
            family, ev.tolist(), ce.tolist(), x.tolist(), p, s, (prior[0], prior[1], weight)
        )

    ra, rb = ref.nelder_mead(f, (8.0, 0.0))
    # The kernel's optimum is at least as good as the simplex's ...
    best = f(a[0], lb)
    assert best >= f(ra, rb) - 1e-7 * (1 + abs(f(ra, rb)))
    # ... and no neighbouring point is better. (Comparing the points themselves fails where
    # the simplex stalls against the sigma bound with few events, e.g. two occupied bins.)
    for da, db in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3), (1e-3, 1e-3), (-1e-3, -1e-3)):
        assert f(a[0] + da, lb + db) <= best + 1e-9 * (1 + abs(best))


def test_fit_with_no_data_returns_the_parent() -> None:
    z = np.zeros((1, GRID.n_bins))
    a, s, _ = _fit_parametric_kernel(
        LOGNORMAL,
        z,
        z,
        GRID.log_mids(),
        np.array([7.5]),
        np.array([0.6]),
        20.0,
        np.array([7.5]),
        np.array([0.6]),
        0.05,
        5.0,
    )
    assert a[0] == pytest.approx(7.5)
    assert s[0] == pytest.approx(0.6)


@given(counts=_class_counts(), parent=_class_counts(), weight=st.sampled_from([0.0, 3.0, 40.0]))
@FAST
def test_km_matches_reference(
    counts: tuple[np.ndarray, np.ndarray], parent: tuple[np.ndarray, np.ndarray], weight: float
) -> None:
    edges = np.exp(GRID.log_edges())
    zero = np.zeros((1, GRID.n_bins))
    pq, pr, _, _ = _fit_km_kernel(parent[0][None], parent[1][None], zero, zero, 0.0, edges)
    q, r, cumhaz, tail = _fit_km_kernel(counts[0][None], counts[1][None], pq, pr, weight, edges)
    wq, wr, wch, wt = ref.km_fit(
        counts[0].tolist(),
        counts[1].tolist(),
        pq[0].tolist(),
        pr[0].tolist(),
        weight,
        edges.tolist(),
    )
    np.testing.assert_allclose(q[0], wq, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r[0], wr, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cumhaz[0], wch, rtol=1e-10, atol=1e-12)
    assert tail[0] == pytest.approx(wt, rel=1e-10)


@given(
    counts=_class_counts(),
    family=st.sampled_from([LOGNORMAL, WEIBULL, KM]),
    p1=st.floats(6.0, 10.0),
    p2=st.floats(0.3, 2.5),
    hazards=st.lists(st.floats(0.0, 0.5), min_size=GRID.n_bins, max_size=GRID.n_bins),
)
@FAST
def test_holdout_loglik_matches_reference(
    counts: tuple[np.ndarray, np.ndarray], family: int, p1: float, p2: float, hazards: list[float]
) -> None:
    ch = _cumhaz(hazards)
    got = _holdout_loglik_kernel(
        counts[0][None],
        counts[1][None],
        family,
        np.array([p1]),
        np.array([p2]),
        ch[None],
        GRID.log_edges(),
    )
    want = ref.holdout_loglik(
        counts[0].tolist(), counts[1].tolist(), family, p1, p2, list(ch), GRID.log_edges().tolist()
    )
    assert got[0] == pytest.approx(want, rel=1e-7, abs=1e-6)


@given(
    n=st.integers(1, 25),
    crews=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    seed=st.integers(0, 10_000),
    family=st.sampled_from([LOGNORMAL, WEIBULL]),
    max_arrivals=st.integers(0, 12),
)
@FAST
def test_backlog_matches_reference(
    n: int, crews: list[int], seed: int, family: int, max_arrivals: int
) -> None:
    rng = np.random.default_rng(seed)
    model = _model(family, math.log(5400.0), 0.9 if family == LOGNORMAL else 1.5)
    model.p1[:] += rng.normal(0.0, 0.3, N_CLASSES)  # classes differ, so a mix-up shows
    zone = rng.integers(0, len(crews), n).astype(np.int64)
    prio = rng.integers(0, 4, n).astype(np.float64)
    elapsed = rng.random(n) * 7200.0
    customers = rng.integers(0, 300, n).astype(np.float64)
    codes = rng.integers(0, N_CLASSES, n).astype(np.int64)
    uniforms = rng.random((3, n))
    crews_a = np.array(crews, dtype=np.int64)
    order, zone_start = queue_order(zone, prio, elapsed, len(crews), rng.random(n) < 0.3)
    runs, n_zones = 3, len(crews)
    counts = rng.integers(0, max_arrivals + 1, (runs, n_zones))
    width = max(int(counts.sum(axis=1).max()), 1)
    a_off = np.zeros((runs, n_zones + 1), dtype=np.int64)
    a_off[:, 1:] = np.cumsum(counts, axis=1)
    a_t = np.full((runs, width), np.inf)
    a_p = np.zeros((runs, width))
    a_c = np.zeros((runs, width), dtype=np.int64)
    a_u = np.full((runs, width), 0.5)
    ref_arrivals: list[list[list[tuple[float, float, int, float]]]] = []
    for r in range(runs):
        ref_arrivals.append([])
        for z in range(n_zones):
            lo, c = int(a_off[r, z]), int(counts[r, z])
            a_t[r, lo : lo + c] = np.sort(rng.random(c) * 20000.0)
            a_p[r, lo : lo + c] = rng.integers(0, 5, c)
            a_c[r, lo : lo + c] = rng.integers(0, N_CLASSES, c)
            a_u[r, lo : lo + c] = rng.random(c)
            ref_arrivals[r].append(
                [
                    (float(a_t[r, j]), float(a_p[r, j]), int(a_c[r, j]), float(a_u[r, j]))
                    for j in range(lo, lo + c)
                ]
            )
    finish, zone_done = _backlog_kernel(
        order,
        zone_start,
        crews_a,
        codes,
        elapsed,
        customers,
        prio,
        uniforms,
        a_off,
        a_t,
        a_p,
        a_c,
        a_u,
        model.family,
        model.p1,
        model.p2,
        model.km_cumhaz,
        model.tail_rate,
        GRID.log_min,
        GRID.width,
        900.0,
        0.9,
    )

    def quantile(c: int, e: float, u: float) -> float:
        return ref.conditional_quantile(
            family, model.p1[c], model.p2[c], [], 1.0, GRID.log_min, GRID.width, e, u
        )

    want_f, want_z = ref.backlog(
        order.tolist(),
        zone_start.tolist(),
        crews,
        quantile,
        codes.tolist(),
        elapsed.tolist(),
        customers.tolist(),
        prio.tolist(),
        uniforms.tolist(),
        ref_arrivals,
        900.0,
        0.9,
    )
    np.testing.assert_allclose(finish, np.array(want_f), rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(zone_done, np.array(want_z), rtol=1e-6, atol=1e-3)


def test_backlog_arrivals_delay_small_outages_not_large_ones() -> None:
    """Future large outages jump ahead of a small one waiting now, not of a large one."""
    model = _model(LOGNORMAL, math.log(3600.0), 0.6)
    n = 6
    prio = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 1.0])
    args = (
        model,
        np.zeros(n, dtype=np.int64),
        np.full(n, 600.0),
        np.zeros(n, dtype=np.int64),
        prio,
        np.ones(n),
        np.array([1], dtype=np.int64),
    )
    calm = backlog_etr(*args, runs=200, seed=5)
    busy = backlog_etr(
        *args,
        runs=200,
        seed=5,
        arrival_rate_per_s=np.array([2.0 / 3600.0]),
        arrival_horizon_s=7200.0,
    )
    assert busy.outage_remaining_s[5, 1] > calm.outage_remaining_s[5, 1] + 1800.0
    # The large ones: no arrival outranks them (ties go to those already waiting).
    np.testing.assert_allclose(busy.outage_remaining_s[:5], calm.outage_remaining_s[:5])


def test_backlog_in_work_outage_is_not_queued() -> None:
    model = _model(LOGNORMAL, math.log(3600.0), 0.6)
    n = 3
    args = (
        model,
        np.zeros(n, dtype=np.int64),
        np.array([600.0, 600.0, 3000.0]),
        np.zeros(n, dtype=np.int64),
        np.array([50.0, 40.0, 1.0]),
        np.ones(n),
        np.array([1], dtype=np.int64),
    )
    by_priority = backlog_etr(*args, runs=100, seed=1)
    on_site = backlog_etr(*args, runs=100, seed=1, in_work=np.array([False, False, True]))
    # The small outage with a crew on site finishes first, not last.
    assert on_site.outage_remaining_s[2, 1] < by_priority.outage_remaining_s[2, 1]
    assert on_site.outage_remaining_s[2, 1] < on_site.outage_remaining_s[0, 1]


def test_backlog_more_crews_restore_sooner() -> None:
    model = _model(LOGNORMAL, math.log(3600.0), 0.6)
    n = 200
    args = (
        model,
        np.zeros(n, dtype=np.int64),
        np.full(n, 600.0),
        np.zeros(n, dtype=np.int64),
        np.ones(n),
        np.ones(n),
    )
    few = backlog_etr(*args, np.array([5], dtype=np.int64), runs=20, seed=3)
    many = backlog_etr(*args, np.array([50], dtype=np.int64), runs=20, seed=3)
    assert np.all(many.zone_remaining_s < few.zone_remaining_s)
    assert np.all(np.diff(few.outage_remaining_s, axis=1) >= 0)


def test_wrappers_refuse_bad_shapes_and_dtypes() -> None:
    model = _model(LOGNORMAL, 8.0, 1.0)
    with pytest.raises(ValueError, match="int64"):
        conditional_duration_quantiles(model, np.zeros(3, dtype=np.int32), np.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        conditional_duration_quantiles(model, np.zeros(3, dtype=np.int64), np.zeros(2))
    with pytest.raises(ValueError, match="range"):
        conditional_duration_quantiles(model, np.array([N_CLASSES], dtype=np.int64), np.zeros(1))
    with pytest.raises(ValueError, match="finite"):
        conditional_duration_quantiles(model, np.zeros(1, dtype=np.int64), np.array([np.nan]))
    with pytest.raises(ValueError, match="between 0 and 1"):
        conditional_duration_quantiles(
            model, np.zeros(1, dtype=np.int64), np.zeros(1), np.array([1.0])
        )
    with pytest.raises(ValueError, match="crews"):
        backlog_etr(
            model,
            np.zeros(1, dtype=np.int64),
            np.zeros(1),
            np.zeros(1, dtype=np.int64),
            np.ones(1),
            np.ones(1),
            np.array([0], dtype=np.int64),
        )
    one = (
        model,
        np.zeros(1, dtype=np.int64),
        np.zeros(1),
        np.zeros(1, dtype=np.int64),
        np.ones(1),
        np.ones(1),
        np.array([1], dtype=np.int64),
    )
    with pytest.raises(ValueError, match="arrival_rate_per_s"):
        backlog_etr(*one, arrival_rate_per_s=np.array([np.nan]))
    with pytest.raises(ValueError, match="arrival_rate_per_s"):
        backlog_etr(*one, arrival_rate_per_s=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="arrival_horizon_s"):
        backlog_etr(*one, arrival_horizon_s=-1.0)
    with pytest.raises(ValueError, match="in_work"):
        backlog_etr(*one, in_work=np.zeros(2, dtype=np.bool_))
