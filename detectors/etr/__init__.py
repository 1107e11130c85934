"""Restoration-time (ETR) models: survival fits per outage class, conditional ETRs and the
storm crew-queue simulation. Arrays in, arrays out: no I/O, no clock."""

from __future__ import annotations

import numpy as np

from detectors.etr._backlog import BacklogResult, backlog_etr, queue_order
from detectors.etr._classes import (
    CAUSES,
    DEVICE_KINDS,
    LEVEL_SIZES,
    N_CLASSES,
    STORM_LEVELS,
    TOD_BANDS,
    StormThresholds,
    calibrate_storm_thresholds,
    cause_code,
    concurrent_open_counts,
    decode_class,
    encode_classes,
    kind_code,
    parent_codes,
    tod_band,
    with_storm_level,
)
from detectors.etr._conditional import (
    DEFAULT_PROBS,
    conditional_duration_quantiles,
    conditional_etr,
)
from detectors.etr._fit import FitConfig, KindRoot, fit_survival_model, kind_root
from detectors.etr._history import HistoryError, PreparedHistory, class_histograms, prepare_history
from detectors.etr._model import FAMILY_NAMES, KM, LOGNORMAL, WEIBULL, LogGrid, SurvivalModel
from detectors.etr._synthetic import SyntheticHistory, prior_history, synthetic_history


def warm_up() -> None:
    """Compile (or load from cache) every kernel, so no request pays for the JIT."""
    h = synthetic_history(400, seed=0, span_s=30 * 86400.0)
    model = fit_survival_model(h.duration_s, h.censored, h.class_code, FitConfig(min_holdout=5))
    codes = h.class_code[:8]
    conditional_etr(model, codes, h.started_at_s[:8], float(h.started_at_s[8]))
    backlog_etr(
        model,
        codes,
        np.full(8, 600.0),
        np.zeros(8, dtype=np.int64),
        np.arange(8, dtype=np.float64),
        np.ones(8),
        np.array([2], dtype=np.int64),
        runs=4,
    )
    # The KM branch of the conditional quantile, whatever the fit chose above.
    km = SurvivalModel(
        grid=model.grid,
        family=np.full(N_CLASSES, KM, dtype=np.int64),
        p1=model.p1,
        p2=model.p2,
        km_cumhaz=np.tile(np.linspace(0.0, 5.0, model.grid.n_bins + 1), (N_CLASSES, 1)),
        tail_rate=np.ones(N_CLASSES),
        n_events=model.n_events,
        n_censored=model.n_censored,
    )
    conditional_etr(km, codes, h.started_at_s[:8], float(h.started_at_s[8]))


__all__ = [
    "CAUSES",
    "DEFAULT_PROBS",
    "DEVICE_KINDS",
    "FAMILY_NAMES",
    "KM",
    "LEVEL_SIZES",
    "LOGNORMAL",
    "N_CLASSES",
    "STORM_LEVELS",
    "TOD_BANDS",
    "WEIBULL",
    "BacklogResult",
    "FitConfig",
    "HistoryError",
    "KindRoot",
    "LogGrid",
    "PreparedHistory",
    "StormThresholds",
    "SurvivalModel",
    "SyntheticHistory",
    "backlog_etr",
    "calibrate_storm_thresholds",
    "cause_code",
    "class_histograms",
    "concurrent_open_counts",
    "conditional_duration_quantiles",
    "conditional_etr",
    "decode_class",
    "encode_classes",
    "fit_survival_model",
    "kind_code",
    "kind_root",
    "parent_codes",
    "prepare_history",
    "prior_history",
    "queue_order",
    "synthetic_history",
    "tod_band",
    "warm_up",
    "with_storm_level",
]
