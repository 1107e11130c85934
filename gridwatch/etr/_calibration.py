"""Interval calibration by a held-out backtest (split-conformal scaling in log time).

The model's P10/P90 are right only if its family and classes are right. A refit therefore
replays every block of a ``folds``-way split of the history (by start time) through
``estimate_etrs`` with a model fitted on the other blocks, at each outage's first notice and
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
from dataclasses import dataclass

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
from gridwatch.etr._prior import kind_root_for


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


Scores = dict[str, tuple[list[float], list[float]]]


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
    scores = backtest_scores(
        model,
        outages,
        starts >= holdout_from_s,
        config,
        notice_delay_s=notice_delay_s,
        max_items=max_items,
        seed=seed,
    )
    return scales_from_scores(scores, min_items)


def scales_from_scores(scores: Scores, min_items: int = 30) -> dict[str, IntervalScale]:
    out: dict[str, IntervalScale] = {}
    for source, (u, v) in scores.items():
        if len(u) >= min_items:
            out[source] = IntervalScale(
                conformal_scale(np.array(u)), conformal_scale(np.array(v)), len(u)
            )
        else:
            out[source] = IntervalScale(n=len(u))
    return out


def backtest_scores(
    model: SurvivalModel,
    outages: Sequence[BacktestOutage],
    held_out: np.ndarray,
    config: EtrConfig,
    *,
    notice_delay_s: float = 105.0,
    max_items: int = 2000,
    seed: int = 0,
) -> Scores:
    """Per source, the held-out outages' (u, v) scores (module doc) at first notice, with
    the outages open then; ``held_out`` is a mask over ``outages`` the model has not seen."""
    starts = np.array([o.started_at_s for o in outages], dtype=np.float64)
    ends = np.array([math.inf if o.censored else o.started_at_s + o.duration_s for o in outages])
    targets = np.flatnonzero(held_out & np.isfinite(ends) & (ends - starts > notice_delay_s))
    if targets.size > max_items:
        targets = np.sort(np.random.default_rng(seed).choice(targets, max_items, replace=False))
    open_at_start = concurrent_open_counts(starts, starts, np.where(np.isinf(ends), np.nan, ends))
    order = np.argsort(starts, kind="stable")
    sorted_starts = starts[order]
    scores: Scores = {"model": ([], []), "backlog": ([], [])}
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
    return scores


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
    folds: int = 5,
) -> dict[str, IntervalScale]:
    """Cross-validated backtest: the history is cut by start time into ``folds`` blocks;
    each block is replayed with a model fitted on the other blocks, and the scores of all
    blocks are pooled, so every outage is held out once (a single 20% split left the scale
    to ~140 outages on a 30-year test history, too few for a 10% tail). Empty when no
    block can be fitted."""
    if not 2 <= folds <= 20:
        raise ValueError("folds must be in 2..20")
    usable = [r for r in records if reject_reason(r, as_of_s) is None]
    if len(usable) < 20:
        return {}
    starts = np.array([r.started_at_s for r in usable], dtype=np.float64)
    edges = np.quantile(starts, np.linspace(0.0, 1.0, folds + 1))
    block = np.clip(np.searchsorted(edges, starts, side="right") - 1, 0, folds - 1)
    outages = []
    for r in usable:
        dur, cens = _duration_form(r, as_of_s)
        outages.append(
            BacktestOutage(
                r.started_at_s, dur, cens, r.device_kind, r.cause, r.zone or "all", r.customers
            )
        )
    pooled: Scores = {"model": ([], []), "backlog": ([], [])}
    root = kind_root_for(config)
    for k in range(folds):
        train = [r for r, b in zip(usable, block, strict=True) if b != k]
        cols = history_from_records(
            train, as_of_s=as_of_s, thresholds=thresholds, utc_offset_s=config.utc_offset_s
        )
        try:
            model = fit_survival_model(
                cols.duration_s, cols.censored, cols.class_code, fit_config, root=root
            )
        except HistoryError:
            continue
        set_model_thresholds(model, thresholds)
        scores = backtest_scores(model, outages, block == k, config, seed=k)
        for source, (u, v) in scores.items():
            pooled[source][0].extend(u)
            pooled[source][1].extend(v)
    if not any(u for u, _ in pooled.values()):
        return {}
    return scales_from_scores(pooled)


def set_interval_scales(model: SurvivalModel, scales: dict[str, IntervalScale]) -> None:
    model.info["interval_scale"] = {k: v.to_list() for k, v in scales.items()}
