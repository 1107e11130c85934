"""The fitted survival model on synthetic history with a known answer: recovery, censoring,
shrinkage, family choice, persistence and the accuracy figures (P50 error, coverage)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.etr import (
    KM,
    LOGNORMAL,
    N_CLASSES,
    WEIBULL,
    FitConfig,
    HistoryError,
    SurvivalModel,
    conditional_duration_quantiles,
    encode_classes,
    fit_survival_model,
    synthetic_history,
)
from detectors.etr._fit import _shift_bins


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    return synthetic_history(300_000, seed=11)


@pytest.fixture(scope="module")
def model(history) -> SurvivalModel:  # type: ignore[no-untyped-def]
    return fit_survival_model(history.duration_s, history.censored, history.class_code)


def test_recovers_a_lognormal_class(model: SurvivalModel) -> None:
    # kind unknown (0), quiet, cause unknown, night: median 5400 s * e^0.25, sigma 0.7.
    code = int(encode_classes(np.array([0]), np.array([0]), np.array([0]), np.array([0]))[0])
    assert model.family[code] in (LOGNORMAL, KM)
    q = conditional_duration_quantiles(model, np.array([code]), np.zeros(1), np.array([0.5]))
    assert q[0, 0] == pytest.approx(5400 * math.exp(0.25), rel=0.08)


def test_weibull_kinds_mostly_choose_weibull(model: SurvivalModel) -> None:
    kinds = np.arange(N_CLASSES) // (N_CLASSES // 8)
    breakers = model.family[np.isin(kinds, (2, 3))]
    others = model.family[~np.isin(kinds, (2, 3))]
    assert np.mean(breakers == WEIBULL) > 0.6
    assert np.mean(others == LOGNORMAL) > 0.6


def test_censored_outages_are_not_dropped() -> None:
    """Dropping the still-open outages biases the median down; censoring does not."""
    rng = np.random.default_rng(5)
    true = np.exp(np.log(3600.0) + 0.8 * rng.standard_normal(20_000))
    cut = rng.uniform(600.0, 8000.0, true.size)  # history taken while many are still open
    censored = true > cut
    observed = np.where(censored, cut, true)
    codes = np.zeros(true.size, dtype=np.int64)
    cfg = FitConfig(min_holdout=10**9)  # keep every class on the global lognormal
    with_cens = fit_survival_model(observed, censored, codes, cfg)
    dropped = fit_survival_model(observed[~censored], censored[~censored], codes[~censored], cfg)
    med = [
        conditional_duration_quantiles(m, codes[:1], np.zeros(1), np.array([0.5]))[0, 0]
        for m in (with_cens, dropped)
    ]
    assert med[0] == pytest.approx(3600.0, rel=0.06)
    assert med[1] < 0.8 * 3600.0
    assert censored.mean() > 0.3


def test_sparse_class_shrinks_to_its_parent() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    big = encode_classes(
        np.full(n, 6), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    )
    durations = np.exp(np.log(3600.0) + 0.5 * rng.standard_normal(n))
    # Three outages of a sibling class (other time of day), all very long.
    sparse_code = int(encode_classes(np.array([6]), np.array([0]), np.array([0]), np.array([1]))[0])
    d = np.concatenate([durations, [40_000.0, 45_000.0, 50_000.0]])
    c = np.concatenate([big, np.full(3, sparse_code)])
    m = fit_survival_model(d, np.zeros(d.size, dtype=np.bool_), c)
    med = conditional_duration_quantiles(
        m, np.array([sparse_code, big[0]]), np.zeros(2), np.array([0.5])
    )
    # Pulled most of the way to the parent (3600 s), not to its own 45,000 s.
    assert 3600.0 < med[0, 0] < 12_000.0
    # A class with no data at all is its parent's fit.
    empty = int(encode_classes(np.array([6]), np.array([0]), np.array([0]), np.array([3]))[0])
    assert m.n_events[empty] == 0
    e = conditional_duration_quantiles(m, np.array([empty]), np.zeros(1), np.array([0.5]))
    assert e[0, 0] == pytest.approx(3600.0, rel=0.15)


def test_bad_history_rules() -> None:
    d = np.array([3600.0, -5.0, 0.0, np.nan, np.inf, 10 * 365 * 86400.0] + [1800.0] * 20)
    c = np.zeros(d.size, dtype=np.bool_)
    k = np.zeros(d.size, dtype=np.int64)
    k[1] = N_CLASSES  # out of range, but already rejected as negative
    k[-1] = -1
    m = fit_survival_model(d, c, k)
    assert m.info["rejected"] == {"non_finite": 2, "non_positive": 2, "bad_class": 1}
    assert m.info["outliers_capped"] == 1
    assert m.info["n_used"] == d.size - 5
    q = conditional_duration_quantiles(m, np.zeros(1, dtype=np.int64), np.zeros(1), np.array([0.9]))
    assert q[0, 0] < 30 * 86400.0  # the 10-year outlier did not stretch the tail


def test_unusable_histories_are_refused() -> None:
    with pytest.raises(HistoryError, match="usable restored outages"):
        fit_survival_model(np.zeros(0), np.zeros(0, dtype=np.bool_), np.zeros(0, dtype=np.int64))
    with pytest.raises(HistoryError, match="usable restored outages"):
        fit_survival_model(
            np.full(50, 600.0), np.ones(50, dtype=np.bool_), np.zeros(50, dtype=np.int64)
        )
    with pytest.raises(HistoryError, match="float64"):
        fit_survival_model(
            np.full(50, 600, dtype=np.int64),
            np.zeros(50, dtype=np.bool_),
            np.zeros(50, dtype=np.int64),
        )
    with pytest.raises(HistoryError, match="same length"):
        fit_survival_model(
            np.full(50, 600.0), np.zeros(49, dtype=np.bool_), np.zeros(50, dtype=np.int64)
        )


def test_json_roundtrip_is_exact(model: SurvivalModel) -> None:
    import orjson

    doc = orjson.loads(orjson.dumps(model.to_json_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
    back = SurvivalModel.from_json_dict(doc)
    codes = np.arange(N_CLASSES, dtype=np.int64)
    el = np.full(N_CLASSES, 1800.0)
    np.testing.assert_array_equal(
        conditional_duration_quantiles(model, codes, el),
        conditional_duration_quantiles(back, codes, el),
    )
    with pytest.raises(ValueError, match=r"malformed|format"):
        SurvivalModel.from_json_dict({"format": 1})
    doc["p2"][0] = -1.0
    doc["family"][0] = LOGNORMAL
    with pytest.raises(ValueError, match="positive"):
        SurvivalModel.from_json_dict(doc)


@pytest.mark.parametrize("delay_s", [300.0, 1800.0])
def test_accuracy_against_global_median(model: SurvivalModel, history, delay_s: float) -> None:  # type: ignore[no-untyped-def]
    """At the first notice (5 min) and 30 min later, on outages the model never saw."""
    test = synthetic_history(40_000, seed=99)
    alive = test.true_duration_s > delay_s
    codes = test.class_code[alive]
    truth = test.true_duration_s[alive]
    q = conditional_duration_quantiles(model, codes, np.full(codes.size, delay_s))
    mae = np.mean(np.abs(q[:, 1] - truth))
    global_median = np.median(history.duration_s[~history.censored])
    baseline = np.mean(np.abs(np.maximum(global_median, delay_s) - truth))
    coverage = np.mean((truth >= q[:, 0]) & (truth <= q[:, 2]))
    print(
        f"delay {delay_s:.0f}s: P50 MAE {mae / 60:.1f} min vs baseline {baseline / 60:.1f} min"
        f" ({1 - mae / baseline:.1%} lower), P10-P90 coverage {coverage:.1%}"
    )
    assert mae < 0.8 * baseline
    assert 0.75 <= coverage <= 0.85


def test_unknown_cause_uses_the_time_of_day() -> None:
    """A history records every outage's cause, but at first notice the cause is unknown.
    The unknown-cause class is then empty and must fall back to kind × storm × time of
    day pooled over causes, so a night outage still gets a night ETR."""
    rng = np.random.default_rng(3)
    n = 4000
    tod = rng.integers(0, 4, n)
    cause = rng.integers(1, 7, n)  # every row has a known cause
    kind = np.full(n, 6)
    median_s = np.where(tod == 0, 9000.0, 4500.0)  # nights take twice as long
    d = median_s * np.exp(0.4 * rng.standard_normal(n))
    codes = encode_classes(kind, np.zeros(n, np.int64), cause, tod)
    m = fit_survival_model(d, np.zeros(n, dtype=np.bool_), codes)
    unknown = encode_classes(
        np.array([6, 6]), np.zeros(2, np.int64), np.zeros(2, np.int64), np.array([0, 1])
    )
    assert m.n_events[unknown].sum() == 0
    q = conditional_duration_quantiles(m, unknown, np.zeros(2), np.array([0.5]))
    assert q[0, 0] == pytest.approx(9000.0, rel=0.1)
    assert q[1, 0] == pytest.approx(4500.0, rel=0.1)


@pytest.mark.parametrize("pooled", [True, False])
def test_a_sparse_cause_class_keeps_the_cause_effect_pooled_over_times_of_day(
    pooled: bool,
) -> None:
    """Fuses: 500 equipment outages per time-of-day band (median 1 h) and only 8 vehicle
    ones per band (median 2 h). Each vehicle class alone is shrunk hard toward its band;
    the vehicle effect pooled over the 4 bands (32 outages) keeps most of the doubling."""
    rng = np.random.default_rng(11)
    kinds, causes, tods, durations = [], [], [], []
    for tod in range(4):
        for cause, n, median in ((3, 500, 3600.0), (5, 8, 7200.0)):
            kinds += [6] * n
            causes += [cause] * n
            tods += [tod] * n
            durations += list(median * np.exp(0.3 * rng.standard_normal(n)))
    c = encode_classes(
        np.array(kinds), np.zeros(len(kinds), np.int64), np.array(causes), np.array(tods)
    )
    d = np.array(durations)
    m = fit_survival_model(
        d, np.zeros(d.size, dtype=np.bool_), c, FitConfig(pooled_cause_effect=pooled)
    )
    codes = encode_classes(np.array([6, 6]), np.array([0, 0]), np.array([5, 3]), np.array([1, 1]))
    vehicle, equipment = conditional_duration_quantiles(m, codes, np.zeros(2), np.array([0.5]))[
        :, 0
    ]
    assert equipment == pytest.approx(3600.0, rel=0.1)
    if pooled:
        assert vehicle > 5000.0
        assert m.info["cause_log_shift"]["fuse"]["vehicle"] > 0.3
    else:
        assert vehicle < 4800.0
        assert "cause_log_shift" not in m.info


def test_km_prior_shift_moves_the_hazard_along_the_log_grid() -> None:
    q = np.array([[0.1, 0.2, 0.3, 0.4]])
    r = np.array([[1.0, 0.9, 0.7, 0.5]])
    later_q, later_r = _shift_bins(q, r, np.array([1]))
    assert later_q.tolist() == [[0.0, 0.1, 0.2, 0.3]]
    assert later_r.tolist() == [[1.0, 1.0, 0.9, 0.7]]
    earlier_q, earlier_r = _shift_bins(q, r, np.array([-2]))
    assert earlier_q.tolist() == [[0.3, 0.4, 0.4, 0.4]]
    assert earlier_r.tolist() == [[0.7, 0.5, 0.5, 0.5]]
