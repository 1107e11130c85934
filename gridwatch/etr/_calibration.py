"""Interval calibration by a held-out backtest (split-conformal scaling in log time).

The model's P10/P90 are right only if its family and classes are right. A refit therefore
replays the newest ``holdout_fraction`` of the history (by start time) through
``estimate_etrs`` with a model fitted on the older part, at each outage's first notice and
with the outages open then, and measures, per source (``model``, ``backlog``), how far the
true remaining time fell from the P50 in units of the interval's half-width in log time:

    u = (ln r50 - ln r) / (ln r50 - ln r10)      v = (ln r - ln r50) / (ln r90 - ln r50)

The scales are the conformal (1 - 0.1)(1 + 1/n) quantiles of u and v: stretching the lower and
upper half-widths by them puts 10% below P10 and 10% above P90 on the held-out outages. A
source with fewer than ``min_items`` held-out outages keeps scale 1 (no evidence).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from detectors.etr import (
    FitConfig,
    HistoryError,
    StormThresholds,
    SurvivalModel,
    concurrent_open_counts,
    fit_survival_model,
)
from gridwatch.etr._estimate import (
    MAX_SCALE,
    MIN_SCALE,
    EtrConfig,
    IntervalScale,
    OpenOutage,
    estimate_etrs,
    set_model_thresholds,
)
from gridwatch.etr._history_import import HistoryRecord, history_from_records, reject_reason


@dataclass(frozen=True)
class BacktestOutage:
    started_at_s: float
    duration_s: float
    censored: bool
    device_kind: str | None
    cause: str | None
    zone: str = "all"
    customers: int = 0


def conformal_scale(scores: np.ndarray, tail: float = 0.1) -> float:
    """The split-conformal quantile of ``scores`` for a ``tail`` miss rate, clamped."""
    n = scores.size
    level = min(1.0, math.ceil((n + 1) * (1.0 - tail)) / n)
    q = float(np.quantile(scores, level))
    return float(min(max(q, MIN_SCALE), MAX_SCALE))


def backtest_scales(
    model: SurvivalModel,
    outages: Sequence[BacktestOutage],
    holdout_from_s: float,
    config: EtrConfig,
    *,
    notice_delay_s: float = 105.0,
    max_items: int = 2000,
    min_items: int = 30,
    seed: int = 0,
) -> dict[str, IntervalScale]:
    """Scales per source from the restored outages started at or after ``holdout_from_s``
    (at most ``max_items``, a seeded sample); ``model`` must not have seen them."""
    starts = np.array([o.started_at_s for o in outages], dtype=np.float64)
    ends = np.array([math.inf if o.censored else o.started_at_s + o.duration_s for o in outages])
    targets = np.flatnonzero(
        (starts >= holdout_from_s) & np.isfinite(ends) & (ends - starts > notice_delay_s)
    )
    if targets.size > max_items:
        targets = np.sort(np.random.default_rng(seed).choice(targets, max_items, replace=False))
    open_at_start = concurrent_open_counts(starts, starts, np.where(np.isinf(ends), np.nan, ends))
    order = np.argsort(starts, kind="stable")
    sorted_starts = starts[order]
    scores: dict[str, tuple[list[float], list[float]]] = {"model": ([], []), "backlog": ([], [])}
    for i in targets.tolist():
        t = float(starts[i]) + notice_delay_s
        # Outages declared by t and still open at t: the service's view then.
        hi = int(np.searchsorted(sorted_starts, t - notice_delay_s, side="right"))
        cand = order[:hi]
        live = cand[ends[cand] > t]
        open_now = [
            OpenOutage(
                outage_id=int(j),
                zone=outages[j].zone,
                device_kind=outages[j].device_kind,
                cause=None,  # unknown at first notice: the crew has not reported yet
                started_at_s=float(starts[j]),
                customers_affected=outages[j].customers,
                open_at_start=int(open_at_start[j]),
            )
            for j in live.tolist()
        ]
        batch = estimate_etrs(model, "backtest", open_now, t, config=config)
        est = next(e for e in batch.estimates if e.outage_id == i)
        r = max(float(ends[i]) - t, 1.0)
        l10 = math.log(max(est.p10_s - t, 1.0))
        l50 = math.log(max(est.p50_s - t, 1.0))
        l90 = math.log(max(est.p90_s - t, 1.0))
        lo_w, hi_w = max(l50 - l10, 1e-3), max(l90 - l50, 1e-3)
        u, v = scores[est.source]
        u.append((l50 - math.log(r)) / lo_w)
        v.append((math.log(r) - l50) / hi_w)
    out: dict[str, IntervalScale] = {}
    for source, (u, v) in scores.items():
        if len(u) >= min_items:
            out[source] = IntervalScale(
                conformal_scale(np.array(u)), conformal_scale(np.array(v)), len(u)
            )
        else:
            out[source] = IntervalScale(n=len(u))
    return out


def _duration_form(rec: HistoryRecord, as_of_s: float) -> tuple[float, bool]:
    if rec.duration_s is not None:
        return rec.duration_s, rec.censored
    if rec.restored_at_s is None:
        return as_of_s - rec.started_at_s, True
    return rec.restored_at_s - rec.started_at_s, False


def calibrate_intervals(
    records: Sequence[HistoryRecord],
    *,
    as_of_s: float,
    thresholds: StormThresholds,
    config: EtrConfig,
    fit_config: FitConfig | None = None,
    holdout_fraction: float = 0.2,
) -> dict[str, IntervalScale]:
    """Fit on the older part of the history (the newer part censored out of it), backtest
    the newest ``holdout_fraction`` by start time. Empty when the older part cannot be fitted."""
    usable = [r for r in records if reject_reason(r, as_of_s) is None]
    if len(usable) < 20:
        return {}
    starts = np.array([r.started_at_s for r in usable], dtype=np.float64)
    cut = float(np.quantile(starts, 1.0 - holdout_fraction))
    older: list[HistoryRecord] = []
    for r in usable:
        if r.started_at_s >= cut:
            continue
        dur, cens = _duration_form(r, as_of_s)
        if r.started_at_s + dur > cut:  # not yet restored at the cut: censored there
            dur, cens = cut - r.started_at_s, True
        older.append(replace(r, duration_s=dur, censored=cens, restored_at_s=None))
    cols = history_from_records(
        older, as_of_s=cut, thresholds=thresholds, utc_offset_s=config.utc_offset_s
    )
    try:
        model = fit_survival_model(cols.duration_s, cols.censored, cols.class_code, fit_config)
    except HistoryError:
        return {}
    set_model_thresholds(model, thresholds)
    outages = []
    for r in usable:
        dur, cens = _duration_form(r, as_of_s)
        outages.append(
            BacktestOutage(
                r.started_at_s, dur, cens, r.device_kind, r.cause, r.zone or "all", r.customers
            )
        )
    return backtest_scales(model, outages, cut, config)


def set_interval_scales(model: SurvivalModel, scales: dict[str, IntervalScale]) -> None:
    model.info["interval_scale"] = {k: v.to_list() for k, v in scales.items()}
