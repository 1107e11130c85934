"""Storm thresholds from a history's concurrency, and the held-out interval calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.etr import StormThresholds, calibrate_storm_thresholds
from gridwatch.etr import EtrConfig, HistoryRecord, OpenOutage, estimate_etrs, fit_model
from gridwatch.etr import history_from_records as to_columns
from gridwatch.etr._calibration import (
    BacktestOutage,
    backtest_scales,
    calibrate_intervals,
    conformal_scale,
    set_interval_scales,
)
from gridwatch.etr._estimate import IntervalScale, interval_scales

T0 = 1_700_000_000.0
NO_CAL = EtrConfig(calibrate_intervals=False)


def _records(n: int, sigma_new: float = 0.6, seed: int = 1) -> list[HistoryRecord]:
    """Sparse fuse outages (one every ~9 h: no storms), lognormal(1 h, 0.6); the newest
    20% by start use ``sigma_new``."""
    rng = np.random.default_rng(seed)
    starts = T0 + np.sort(rng.uniform(0, n * 32400.0, n))
    cut = np.quantile(starts, 0.8)
    sig = np.where(starts >= cut, sigma_new, 0.6)
    durs = 3600.0 * np.exp(sig * rng.standard_normal(n))
    return [
        HistoryRecord(float(s), duration_s=float(d), device_kind="fuse", cause="equipment")
        for s, d in zip(starts, durs, strict=True)
    ]


def test_thresholds_follow_the_history_and_refuse_nonsense() -> None:
    quiet = np.ones(1000, dtype=np.int64)
    assert calibrate_storm_thresholds(quiet) == StormThresholds(2, 3, 4)
    busy = np.arange(1, 1001, dtype=np.int64)
    t = calibrate_storm_thresholds(busy)
    assert 900 < t.elevated < t.storm < t.major <= 1001
    with pytest.raises(ValueError, match="non-empty"):
        calibrate_storm_thresholds(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match=">= 0"):
        calibrate_storm_thresholds(np.array([-1, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="quantiles"):
        calibrate_storm_thresholds(quiet, (0.9, 0.5, 0.99))


def test_conformal_scale_is_the_finite_sample_quantile() -> None:
    scores = np.linspace(0.0, 3.0, 301)  # 0.00, 0.01, ..., 3.00
    # ceil(302 * 0.9) / 301 -> the 272nd smallest of 301 (index 271).
    assert conformal_scale(scores) == pytest.approx(scores[271], abs=0.011)
    assert conformal_scale(np.full(50, 100.0)) == 4.0  # clamped
    assert conformal_scale(np.full(50, -5.0)) == 0.5


def test_a_right_model_keeps_scale_one_a_timid_one_is_widened() -> None:
    recs = _records(1500)
    cols = to_columns(recs, as_of_s=T0 + 1e9)
    cfg = NO_CAL
    ok = calibrate_intervals(recs, as_of_s=T0 + 1e9, thresholds=StormThresholds(), config=cfg)
    # Cross-validated: every outage is held out once (minus the ones over at first notice).
    assert ok["model"].n > 1400
    assert 0.8 < ok["model"].lower < 1.2
    assert 0.8 < ok["model"].upper < 1.2
    assert ok["backlog"].n < 30
    assert ok["backlog"].upper == 1.0
    assert len(cols) == 1500
    with pytest.raises(ValueError, match="folds"):
        calibrate_intervals(
            recs, as_of_s=T0 + 1e9, thresholds=StormThresholds(), config=cfg, folds=1
        )
    # A model fitted on the calm older 80% is timid for a wilder newest 20%: widened.
    wild = _records(1500, sigma_new=1.5)
    cut = float(np.quantile([r.started_at_s for r in wild], 0.8))
    older = [r for r in wild if r.started_at_s < cut]
    model = fit_model(to_columns(older, as_of_s=cut))
    outs = [
        BacktestOutage(r.started_at_s, float(r.duration_s or 0.0), False, "fuse", "equipment")
        for r in wild
    ]
    got = backtest_scales(model, outs, cut, cfg)
    assert got["model"].upper > 1.7
    assert got["model"].lower > 1.7
    assert 250 < got["model"].n <= 300


def test_scales_widen_around_an_unchanged_p50_and_bad_ones_are_ignored() -> None:
    model = fit_model(to_columns(_records(400), as_of_s=T0 + 1e9))
    now = T0 + 2e7
    o = [OpenOutage(1, "z", "fuse", None, now - 300.0)]
    plain = estimate_etrs(model, "v", o, now, config=NO_CAL).estimates[0]
    # Measured scale 1: the model's own interval (an uncalibrated local model is widened a
    # little for its short history, ``widening_log_sd``; a calibrated one is not).
    set_interval_scales(model, {"model": IntervalScale(1.0, 1.0, 100)})
    base = estimate_etrs(model, "v", o, now, config=NO_CAL).estimates[0]
    assert base.inputs["provenance"]["widening_log_sd"] == 0.0
    assert plain.inputs["provenance"]["widening_log_sd"] > 0.0
    set_interval_scales(model, {"model": IntervalScale(1.5, 2.0, 100)})
    wide = estimate_etrs(model, "v", o, now, config=NO_CAL).estimates[0]
    assert wide.p50_s == pytest.approx(base.p50_s)
    assert wide.p10_s < base.p10_s
    assert wide.p90_s > base.p90_s
    up = math.log(base.p90_s - now) - math.log(base.p50_s - now)
    assert math.log(wide.p90_s - now) - math.log(wide.p50_s - now) == pytest.approx(2 * up)
    assert wide.inputs["interval_scale"] == [1.5, 2.0, 100.0]
    for junk in ({"model": ["a", 1, 2]}, {"model": [1e9, 1, 3]}, "nope", {"model": [1, 2]}):
        model.info["interval_scale"] = junk
        assert interval_scales(model) == {}
        again = estimate_etrs(model, "v", o, now, config=NO_CAL).estimates[0]
        assert again.p90_s == pytest.approx(plain.p90_s)
