"""Fit the per-class survival model from a restoration-duration history.

1. Validate the rows (``prepare_history``), split 20% of them (seeded) off as held-out.
2. Reduce the rows to event/censoring counts per (full class, log-duration bin): one pass.
3. For each family (lognormal, Weibull, grouped Kaplan–Meier) fit the hierarchy from the
   top: level 0 (all outages) by plain ML; each class of level l shrunk toward its parent
   in level l-1 by ``shrink_pseudo_count`` pseudo-outages (see ``_fit_kernels``). Given a
   ``KindRoot`` (another history's device-kind classes, e.g. the bundled prior's), the
   device kinds shrink toward its kinds instead of this history's pooled outages, and a
   kind the history has no row of takes the root's full classes: it is then the root's
   kind (with its storm, time-of-day and cause effects), not every other kind pooled. The
   cause level (4) is shrunk toward its parent *shifted in log time by the cause's effect
   pooled over storm levels and times of day* (``cause_log_shift``): a cause class has few
   outages of its own, and shrinking it to a parent pooled over causes threw the cause
   away, where the pooled effect (e.g. a vehicle-hit pole takes longer than a fuse blown
   by an animal, whatever the hour) is estimated from all of the kind's outages.
4. Per class choose the family with the best held-out log-likelihood; classes with fewer
   than ``min_holdout`` held-out outages inherit their parent's choice (their own held-out
   score is noise).
5. Refit all three hierarchies on every row and keep, per full class, the chosen family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.etr._classes import (
    CAUSES,
    DEVICE_KINDS,
    LEVEL_SIZES,
    N_CAUSE,
    N_CLASSES,
    N_KIND,
    N_STORM,
    N_TOD,
    parent_codes,
)
from detectors.etr._fit_kernels import (
    _fit_km_kernel,
    _fit_parametric_kernel,
    _holdout_loglik_kernel,
)
from detectors.etr._history import HistoryError, class_histograms, prepare_history
from detectors.etr._model import FAMILY_NAMES, KM, LOGNORMAL, WEIBULL, LogGrid, SurvivalModel

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FitConfig:
    grid: LogGrid = field(default_factory=LogGrid)
    shrink_pseudo_count: float = 20.0
    holdout_fraction: float = 0.2
    min_holdout: int = 30
    min_events: int = 10
    seed: int = 0
    max_sigma: float = 5.0
    min_shape: float = 0.1
    max_shape: float = 20.0
    pooled_cause_effect: bool = True  # shrink cause classes toward parent x cause effect

    def __post_init__(self) -> None:
        if not 0.0 <= self.shrink_pseudo_count <= 1e6:
            raise ValueError("shrink_pseudo_count must be in 0..1e6")
        if not 0.0 < self.holdout_fraction < 0.9:
            raise ValueError("holdout_fraction must be in (0, 0.9)")
        if self.min_holdout < 1 or self.min_events < 1:
            raise ValueError("min_holdout and min_events must be >= 1")


@dataclass
class _Hierarchy:
    """Parameters of one family at every level (index = level)."""

    p1: list[F64]
    p2: list[F64]
    cumhaz: list[F64]
    tail: list[F64]
    km_q: list[F64] = field(default_factory=list)  # KM: hazard per bin (the children's parent)
    km_r: list[F64] = field(default_factory=list)  # KM: at-risk fraction per bin


@dataclass(frozen=True)
class KindRoot:
    """Every family's device-kind classes fitted on another history: the parents a fit's
    kinds shrink toward in place of its own pooled root (``kind_root``)."""

    lognormal: tuple[F64, F64]  # (p1, p2) per kind
    weibull: tuple[F64, F64]
    km_q: F64  # (kind, bin)
    km_r: F64
    source: str  # what it was fitted on (the model's info names it)
    model: SurvivalModel  # its full classes: a kind the fitted history has no row of

    def parametric(self, family: int) -> tuple[F64, F64]:
        return self.lognormal if family == LOGNORMAL else self.weibull


def _level(h: F64, level: int) -> F64:
    out: F64 = h.reshape(LEVEL_SIZES[level], N_CLASSES // LEVEL_SIZES[level], h.shape[1]).sum(
        axis=1
    )
    return out


def _start_values(ev: F64, x: F64) -> tuple[float, float]:
    weights = ev.sum(axis=0)
    total = float(weights.sum())
    mu = float((weights * x).sum() / total)
    var = float((weights * (x - mu) ** 2).sum() / total)
    return mu, max(math.sqrt(var), 0.1)


def cause_log_shift(ev: list[F64], cfg: FitConfig) -> F64:
    """Per full class, the log-time shift of its (kind, cause) from its parent class: the
    event-weighted mean over every kind x storm x time-of-day cell of (the cause's mean log
    duration - the cell's), shrunk toward 0 by ``shrink_pseudo_count`` outages. Zero for a
    cause with no outages, and for every class when ``pooled_cause_effect`` is off."""
    if not cfg.pooled_cause_effect:
        return np.zeros(N_CLASSES)
    x = cfg.grid.log_mids()
    n4, n3 = ev[4].sum(axis=1), ev[3].sum(axis=1)
    m4 = np.divide(ev[4] @ x, n4, out=np.zeros(N_CLASSES), where=n4 > 0)
    m3 = np.divide(ev[3] @ x, n3, out=np.zeros(n3.shape[0]), where=n3 > 0)
    diff = np.where(n4 > 0, m4 - m3[parent_codes(4)], 0.0)
    codes = np.arange(N_CLASSES)
    group = (codes // (N_CAUSE * N_TOD * N_STORM)) * N_CAUSE + codes % N_CAUSE
    n_groups = N_KIND * N_CAUSE
    num = np.bincount(group, weights=n4 * diff, minlength=n_groups)
    den = np.bincount(group, weights=n4, minlength=n_groups) + cfg.shrink_pseudo_count
    shift: F64 = np.divide(num, den, out=np.zeros(n_groups), where=den > 0)[group]
    return shift


def _shift_table(shift4: F64) -> dict[str, dict[str, float]]:
    """The non-zero pooled cause shifts by kind and cause name (model info, for the API)."""
    table: dict[str, dict[str, float]] = {}
    stride = N_CAUSE * N_TOD * N_STORM
    for kind in range(N_KIND):
        for cause in range(N_CAUSE):
            value = float(shift4[kind * stride + cause])
            if value != 0.0:
                table.setdefault(DEVICE_KINDS[kind], {})[CAUSES[cause]] = round(value, 4)
    return table


def _shift_bins(q: F64, r: F64, bins: npt.NDArray[np.int64]) -> tuple[F64, F64]:
    """KM prior rows moved ``bins`` log-grid bins later (negative: earlier): before the
    start nothing ends and everyone is at risk; past the end the last bin repeats."""
    n_bins = q.shape[1]
    j = np.arange(n_bins)[None, :] - bins[:, None]
    inside = (j >= 0) & (j < n_bins)
    src = np.clip(j, 0, n_bins - 1)
    rows = np.arange(q.shape[0])[:, None]
    q2 = np.where(inside | (j >= n_bins), q[rows, src], 0.0)
    r2 = np.where(j < 0, 1.0, r[rows, src])
    return q2, r2


def _fit_parametric(
    family: int, ev: list[F64], ce: list[F64], cfg: FitConfig, shift4: F64, root: KindRoot | None
) -> _Hierarchy:
    grid = cfg.grid
    x = grid.log_mids()
    mu0, sd0 = _start_values(ev[0], x)
    if family == LOGNORMAL:
        p1 = np.array([mu0])
        p2 = np.array([sd0])
        lo, hi = grid.width, cfg.max_sigma
    else:
        k0 = 1.2825 / sd0  # sd of ln T under a Weibull is pi / (k sqrt 6)
        p1 = np.array([mu0 + 0.5772 / k0])
        p2 = np.array([min(max(k0, cfg.min_shape), cfg.max_shape)])
        lo, hi = cfg.min_shape, cfg.max_shape
    out1: list[F64] = []
    out2: list[F64] = []
    for level in range(5):
        if level == 0:
            a, b, _ = _fit_parametric_kernel(family, ev[0], ce[0], x, p1, p2, 0.0, p1, p2, lo, hi)
        else:
            parent = parent_codes(level)
            pa, pb = out1[-1][parent], out2[-1][parent]
            if level == 1 and root is not None:
                pa, pb = root.parametric(family)
            if level == 4:
                pa = pa + shift4  # both families' p1 is a log-time location
            w = cfg.shrink_pseudo_count
            a, b, _ = _fit_parametric_kernel(
                family, ev[level], ce[level], x, pa, pb, w, pa, pb, lo, hi
            )
        out1.append(a)
        out2.append(b)
    empty = [np.zeros((LEVEL_SIZES[lv], grid.n_bins + 1)) for lv in range(5)]
    return _Hierarchy(out1, out2, empty, [np.ones(LEVEL_SIZES[lv]) for lv in range(5)])


def _fit_km(
    ev: list[F64], ce: list[F64], cfg: FitConfig, shift4: F64, root: KindRoot | None
) -> _Hierarchy:
    edges_s = np.exp(cfg.grid.log_edges())
    n_bins = cfg.grid.n_bins
    cum: list[F64] = []
    tails: list[F64] = []
    qs: list[F64] = []
    rs: list[F64] = []
    q_prev = np.zeros((1, n_bins))
    r_prev = np.zeros((1, n_bins))
    for level in range(5):
        n_lv = LEVEL_SIZES[level]
        if level == 0:
            pq, pr, w = np.zeros((1, n_bins)), np.zeros((1, n_bins)), 0.0
        else:
            parent = parent_codes(level)
            pq, pr, w = q_prev[parent], r_prev[parent], cfg.shrink_pseudo_count
            if level == 1 and root is not None:
                pq, pr = root.km_q, root.km_r
            if level == 4:
                bins = np.rint(shift4 / cfg.grid.width).astype(np.int64)
                pq, pr = _shift_bins(pq, pr, bins)
        q, r, cumhaz, tail = _fit_km_kernel(ev[level], ce[level], pq, pr, w, edges_s)
        assert q.shape[0] == n_lv
        q_prev, r_prev = q, r
        qs.append(q)
        rs.append(r)
        cum.append(cumhaz)
        tails.append(tail)
    zeros = [np.zeros(LEVEL_SIZES[lv]) for lv in range(5)]
    ones = [np.ones(LEVEL_SIZES[lv]) for lv in range(5)]
    return _Hierarchy(zeros, ones, cum, tails, qs, rs)


def _fit_all(
    ev_full: F64, ce_full: F64, cfg: FitConfig, root: KindRoot | None = None
) -> tuple[list[_Hierarchy], F64]:
    """The three families' hierarchies and the pooled cause shift they were shrunk with."""
    ev = [_level(ev_full, lv) for lv in range(5)]
    ce = [_level(ce_full, lv) for lv in range(5)]
    shift4 = cause_log_shift(ev, cfg)
    families = [
        _fit_parametric(LOGNORMAL, ev, ce, cfg, shift4, root),
        _fit_parametric(WEIBULL, ev, ce, cfg, shift4, root),
        _fit_km(ev, ce, cfg, shift4, root),
    ]
    return families, shift4


def kind_root(
    duration_s: npt.NDArray[np.float64],
    censored: npt.NDArray[np.bool_],
    class_code: npt.NDArray[np.int64],
    source: str,
    config: FitConfig | None = None,
) -> KindRoot:
    """The device-kind classes of every family fitted on this history (all of it, no
    held-out split), for other fits to shrink their kinds toward. Raises HistoryError
    as ``fit_survival_model`` does."""
    cfg = config or FitConfig()
    prep = prepare_history(duration_s, censored, class_code, cfg.grid, min_events=cfg.min_events)
    none_held = np.zeros(prep.duration_s.shape[0], dtype=np.bool_)
    ev, ce, _, _ = class_histograms(
        prep.duration_s, prep.censored, prep.class_code, none_held, cfg.grid
    )
    fams, _ = _fit_all(ev, ce, cfg)
    model = fit_survival_model(duration_s, censored, class_code, cfg)
    return KindRoot(
        lognormal=(fams[LOGNORMAL].p1[1], fams[LOGNORMAL].p2[1]),
        weibull=(fams[WEIBULL].p1[1], fams[WEIBULL].p2[1]),
        km_q=fams[KM].km_q[1],
        km_r=fams[KM].km_r[1],
        source=source,
        model=model,
    )


def fit_survival_model(
    duration_s: npt.NDArray[np.float64],
    censored: npt.NDArray[np.bool_],
    class_code: npt.NDArray[np.int64],
    config: FitConfig | None = None,
    *,
    root: KindRoot | None = None,
) -> SurvivalModel:
    """Fit the per-class model. Columns: float64 durations (s), bool censored (still open
    when the history was taken), int64 full class codes. Raises HistoryError (a ValueError)
    when the history is unusable; rejected and capped rows are counted in ``model.info``.
    With ``root`` the device kinds shrink toward its kinds (module docstring, step 3)."""
    cfg = config or FitConfig()
    grid = cfg.grid
    prep = prepare_history(duration_s, censored, class_code, grid, min_events=cfg.min_events)
    rng = np.random.default_rng(cfg.seed)
    holdout: npt.NDArray[np.bool_] = np.asarray(
        rng.random(prep.duration_s.shape[0]) < cfg.holdout_fraction, dtype=np.bool_
    )
    tr_ev, tr_ce, ho_ev, ho_ce = class_histograms(
        prep.duration_s, prep.censored, prep.class_code, holdout, grid
    )

    trained, _ = _fit_all(tr_ev, tr_ce, cfg, root)
    log_edges = grid.log_edges()
    choice: list[npt.NDArray[np.int64]] = []
    holdout_ll_full = np.zeros(3)
    for level in range(5):
        hev, hce = _level(ho_ev, level), _level(ho_ce, level)
        lls = np.stack(
            [
                _holdout_loglik_kernel(
                    hev,
                    hce,
                    fam,
                    trained[fam].p1[level],
                    trained[fam].p2[level],
                    trained[fam].cumhaz[level],
                    log_edges,
                )
                for fam in (LOGNORMAL, WEIBULL, KM)
            ],
            axis=1,
        )
        best = np.argmax(lls, axis=1).astype(np.int64)
        n_hold = (hev + hce).sum(axis=1)
        if level == 0:
            chosen = best if n_hold[0] >= 1 else np.array([LOGNORMAL], dtype=np.int64)
        else:
            inherited = choice[-1][parent_codes(level)]
            chosen = np.where(n_hold >= cfg.min_holdout, best, inherited)
        choice.append(chosen)
        if level == 4:
            holdout_ll_full = lls.sum(axis=0)
            selected_ll = float(lls[np.arange(lls.shape[0]), chosen].sum())

    final, shift4 = _fit_all(tr_ev + ho_ev, tr_ce + ho_ce, cfg, root)
    fam = choice[4]
    p1 = np.zeros(N_CLASSES)
    p2 = np.ones(N_CLASSES)
    for f in (LOGNORMAL, WEIBULL):
        sel = fam == f
        p1[sel] = final[f].p1[4][sel]
        p2[sel] = final[f].p2[4][sel]
    km_cumhaz = np.where((fam == KM)[:, None], final[KM].cumhaz[4], 0.0)
    tail_rate = np.where(fam == KM, final[KM].tail[4], 1.0)
    all_ev = tr_ev + ho_ev
    all_ce = tr_ce + ho_ce
    from_root: list[str] = []
    if root is not None:
        if root.model.grid != grid:
            raise HistoryError("the kind root was fitted on another duration grid")
        rows = (all_ev + all_ce).sum(axis=1).reshape(N_KIND, -1).sum(axis=1)
        from_root = [DEVICE_KINDS[k] for k in np.flatnonzero(rows == 0)]
        absent = np.repeat(rows == 0, N_CLASSES // N_KIND)
        m = root.model
        fam = np.where(absent, m.family, fam)
        p1 = np.where(absent, m.p1, p1)
        p2 = np.where(absent, m.p2, p2)
        km_cumhaz = np.where(absent[:, None], m.km_cumhaz, km_cumhaz)
        tail_rate = np.where(absent, m.tail_rate, tail_rate)
    n_hold_total = float((ho_ev + ho_ce).sum())
    info: dict[str, Any] = {
        "n_rows": int(duration_s.shape[0]),
        "n_used": int(prep.duration_s.shape[0]),
        "n_events": int(np.count_nonzero(~prep.censored)),
        "n_censored": int(np.count_nonzero(prep.censored)),
        "rejected": prep.rejected,
        "outliers_capped": prep.capped,
        "shrink_pseudo_count": cfg.shrink_pseudo_count,
        "holdout_fraction": cfg.holdout_fraction,
        "seed": cfg.seed,
        "holdout_loglik_per_outage": {
            **{
                FAMILY_NAMES[f]: float(holdout_ll_full[f]) / max(n_hold_total, 1.0)
                for f in (LOGNORMAL, WEIBULL, KM)
            },
            "selected": selected_ll / max(n_hold_total, 1.0),
        },
        "classes_by_family": {
            FAMILY_NAMES[f]: int(np.count_nonzero(fam == f)) for f in (LOGNORMAL, WEIBULL, KM)
        },
    }
    if cfg.pooled_cause_effect:
        info["cause_log_shift"] = _shift_table(shift4)
    if root is not None:
        info["kind_root"] = root.source
        info["kinds_from_root"] = from_root
    return SurvivalModel(
        grid=grid,
        family=fam,
        p1=p1,
        p2=p2,
        km_cumhaz=km_cumhaz,
        tail_rate=tail_rate,
        n_events=all_ev.sum(axis=1).astype(np.int64),
        n_censored=all_ce.sum(axis=1).astype(np.int64),
        info=info,
    )
