"""ETR benchmark: fitting 1,000,000 outages, conditional ETRs for 10,000 open outages, the
crew-queue simulation, and every kernel beside its plain-Python reference in one run.

    python -m benchmarks.etr_bench [--quick]

References are timed on a subset where the full size would take minutes (printed as such);
ratios compare time per item.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detectors.etr import (
    LOGNORMAL,
    N_CLASSES,
    backlog_etr,
    class_histograms,
    conditional_duration_quantiles,
    conditional_etr,
    fit_survival_model,
    queue_order,
    synthetic_history,
    warm_up,
    with_storm_level,
)
from detectors.etr._backlog import _backlog_kernel, _draw_arrivals
from detectors.etr._fit_kernels import _fit_km_kernel, _fit_parametric_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import reference_etr as ref


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time (s) of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def row(name: str, n_kernel: int, t_kernel: float, n_ref: int, t_ref: float) -> str:
    per_k = t_kernel / n_kernel
    per_r = t_ref / n_ref
    return (
        f"| {name} | {n_kernel:,} | {t_kernel * 1e3:.2f} ms | {n_ref:,} | {t_ref * 1e3:.1f} ms "
        f"| {per_r / per_k:,.0f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = parser.parse_args()
    n_fit = 100_000 if args.quick else 1_000_000
    n_open = 10_000

    t0 = time.perf_counter()
    warm_up()
    print(f"warm_up (compile or load cache): {time.perf_counter() - t0:.2f} s")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")

    h = synthetic_history(n_fit, seed=1)
    t_fit = timed(lambda: fit_survival_model(h.duration_s, h.censored, h.class_code), 3)
    model = fit_survival_model(h.duration_s, h.censored, h.class_code)
    print(f"\nfit_survival_model on {n_fit:,} outages (median of 3): {t_fit * 1e3:.0f} ms")
    print(f"  classes by family: {model.info['classes_by_family']}")
    print(f"  held-out log-lik per outage: {model.info['holdout_loglik_per_outage']}")

    test = synthetic_history(n_open * 2, seed=7)
    codes = test.class_code[:n_open]
    started = test.started_at_s[:n_open]
    now = float(started.max()) + 60.0
    t_cond = timed(lambda: conditional_etr(model, codes, started, now), 50)
    print(f"conditional_etr for {n_open:,} open outages (median of 50): {t_cond * 1e3:.2f} ms")

    zones = np.arange(n_open, dtype=np.int64) % 10
    prio = np.random.default_rng(0).random(n_open)
    cust = np.full(n_open, 50.0)
    crews = np.full(10, 50, dtype=np.int64)
    elapsed = np.maximum(now - started, 0.0)
    t_back = timed(
        lambda: backlog_etr(model, codes, elapsed, zones, prio, cust, crews, runs=200), 3
    )
    print(f"backlog_etr {n_open:,} outages x 200 runs, 10 zones x 50 crews: {t_back * 1e3:.0f} ms")

    print("\n| kernel | n (kernel) | kernel | n (reference) | reference | ratio per item |")
    print("|---|---|---|---|---|---|")
    grid = model.grid
    hold = np.zeros(n_fit, dtype=np.bool_)
    t_k = timed(lambda: class_histograms(h.duration_s, h.censored, h.class_code, hold, grid), 5)
    n_r = 20_000
    sub = (h.duration_s[:n_r].tolist(), h.censored[:n_r].tolist(), h.class_code[:n_r].tolist())
    t_r = timed(
        lambda: ref.histogram(
            *sub, [False] * n_r, N_CLASSES, grid.log_min, grid.width, grid.n_bins
        ),
        1,
    )
    print(row("histogram (rows)", n_fit, t_k, n_r, t_r))

    ev, ce, _, _ = class_histograms(h.duration_s, h.censored, h.class_code, hold, grid)
    x = grid.log_mids()
    pm = np.full(N_CLASSES, 8.5)
    ps = np.full(N_CLASSES, 0.8)
    t_k = timed(
        lambda: _fit_parametric_kernel(LOGNORMAL, ev, ce, x, pm, ps, 20.0, pm, ps, grid.width, 5.0),
        3,
    )
    n_r = 4
    xl = x.tolist()

    def ref_fit() -> None:
        for c in range(n_r):
            e, s = ev[c].tolist(), ce[c].tolist()

            def loglik(a: float, b: float, e: list[float] = e, s: list[float] = s) -> float:
                return ref.penalised_loglik(0, e, s, xl, a, b, (8.5, 0.8, 20.0))

            ref.nelder_mead(loglik, (8.5, math.log(0.8)))

    t_r = timed(ref_fit, 1)
    print(row("lognormal censored fit (classes)", N_CLASSES, t_k, n_r, t_r))

    edges = np.exp(grid.log_edges())
    zero = np.zeros((N_CLASSES, grid.n_bins))
    t_k = timed(lambda: _fit_km_kernel(ev, ce, zero, zero, 0.0, edges), 5)
    n_r = 50
    el = edges.tolist()
    zl = [0.0] * grid.n_bins
    t_r = timed(
        lambda: [ref.km_fit(ev[c].tolist(), ce[c].tolist(), zl, zl, 0.0, el) for c in range(n_r)], 1
    )
    print(row("grouped Kaplan-Meier (classes)", N_CLASSES, t_k, n_r, t_r))

    el0 = np.full(n_open, 1800.0)
    t_k = timed(lambda: conditional_duration_quantiles(model, codes, el0), 50)
    n_r = 1_000

    def ref_cond() -> None:
        for i in range(n_r):
            c = int(codes[i])
            for q in (0.1, 0.5, 0.9):
                ref.conditional_quantile(
                    int(model.family[c]),
                    float(model.p1[c]),
                    float(model.p2[c]),
                    model.km_cumhaz[c].tolist(),
                    float(model.tail_rate[c]),
                    grid.log_min,
                    grid.width,
                    1800.0,
                    q,
                )

    t_r = timed(ref_cond, 1)
    print(row("conditional P10/P50/P90 (outages)", n_open, t_k, n_r, t_r))

    runs = 200
    order, zstart = queue_order(zones, prio, elapsed, 10)
    rep = with_storm_level(codes, 0)
    u = np.random.default_rng(1).random((runs, n_open))
    # Future arrivals: a quarter of each zone's open count per hour, over ~1.5 h.
    rate = np.full(10, n_open / 10 / 4 / 3600.0)
    arr = _draw_arrivals(np.random.default_rng(2), runs, zones, prio, rep, rate, 5400.0, 5000)
    print(f"crew queue: {arr[0][:, -1].mean():.0f} future arrivals per run on average")
    t_k = timed(
        lambda: _backlog_kernel(
            order,
            zstart,
            crews,
            rep,
            elapsed,
            cust,
            prio,
            u,
            *arr,
            model.family,
            model.p1,
            model.p2,
            model.km_cumhaz,
            model.tail_rate,
            grid.log_min,
            grid.width,
            0.0,
            0.9,
        ),
        3,
    )
    n_small, runs_r = 500, 2
    zs = np.arange(n_small, dtype=np.int64) % 10
    o2, s2 = queue_order(zs, prio[:n_small], elapsed[:n_small], 10)
    rate_s = np.full(10, n_small / 10 / 4 / 3600.0)
    off, at, ap, ac, au = _draw_arrivals(
        np.random.default_rng(3), runs_r, zs, prio[:n_small], rep[:n_small], rate_s, 5400.0, 5000
    )
    arrivals = [
        [
            [
                (float(at[r, j]), float(ap[r, j]), int(ac[r, j]), float(au[r, j]))
                for j in range(int(off[r, z]), int(off[r, z + 1]))
            ]
            for z in range(10)
        ]
        for r in range(runs_r)
    ]

    def quantile(c: int, e: float, q: float) -> float:
        return ref.conditional_quantile(
            int(model.family[c]),
            float(model.p1[c]),
            float(model.p2[c]),
            model.km_cumhaz[c].tolist(),
            float(model.tail_rate[c]),
            grid.log_min,
            grid.width,
            e,
            q,
        )

    t_r = timed(
        lambda: ref.backlog(
            o2.tolist(),
            s2.tolist(),
            [5] * 10,
            quantile,
            rep[:n_small].tolist(),
            elapsed[:n_small].tolist(),
            cust[:n_small].tolist(),
            prio[:n_small].tolist(),
            u[:runs_r, :n_small].tolist(),
            arrivals,
            0.0,
            0.9,
        ),
        1,
    )
    print(row("crew-queue simulation (outage-runs)", n_open * runs, t_k, n_small * runs_r, t_r))


if __name__ == "__main__":
    main()
