"""A seeded synthetic outage history with known per-class truth (tests, benchmarks, docs).

The simulators' history generator is the real source; this one exists so the model can be
checked against a process whose answer is known. Durations are lognormal, with the median
set by device kind, cause, storm level and time of day, and a heavier (Weibull) shape for
some kinds so that the family choice has something to choose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.etr._classes import N_CAUSE, N_KIND, N_STORM, N_TOD, encode_classes

# Median repair (s) per device kind: unknown, substation, breaker, recloser, sectionalizer,
# switch, fuse, transformer.
_KIND_MEDIAN_S = np.array([5400, 14400, 3600, 2700, 3000, 3600, 5400, 10800], dtype=np.float64)
_CAUSE_SHIFT = np.array([0.0, 0.35, 0.3, 0.45, -0.25, 0.5, 0.1, -0.4, 0.0])
_STORM_SHIFT = np.array([0.0, 0.35, 0.8, 1.4])
_TOD_SHIFT = np.array([0.25, 0.0, -0.05, 0.1])
_STORM_P = np.array([0.72, 0.14, 0.09, 0.05])

# The bundled prior's medians (``prior_history``), seconds, same order as _KIND_MEDIAN_S.
# Measured on the simulator's quiet-day world over the published grids of the cross-grid
# benchmark (``benchmarks.etr_accuracy --cross-grid``), tuning histories only (seeds
# 1100..1108, 30 years each, 4,700 restored outages): the median duration per device kind
# pooled over grids was breaker 202 min, recloser 189, fuse 130, transformer 285 (the
# synthetic medians above are 60 / 45 / 90 / 180: every unfamiliar grid's outages outlasted
# the old prior's P50). Kinds the grids do not have are scaled from the world's repair
# medians: substation 4/3 of a transformer, switch and sectionalizer 2/3 of a breaker's
# repair plus the same patrol; unknown is the pooled median of every kind (160 min).
PRIOR_KIND_MEDIAN_S = np.array(
    [9600, 22800, 12000, 11400, 10200, 10200, 7800, 17100], dtype=np.float64
)
# Median ln-duration shift per cause (unknown, weather, vegetation, equipment, animal,
# vehicle, overload, planned, other) and per local time-of-day band (night, morning,
# afternoon, evening) relative to the kind, from the same tuning histories: off-shift
# call-outs and darkness make nights and evenings ~35% longer than mornings.
PRIOR_CAUSE_SHIFT = np.array([0.0, 0.14, 0.08, -0.03, -0.18, 0.23, -0.08, 0.0, 0.0])
PRIOR_TOD_SHIFT = np.array([0.16, -0.25, -0.16, 0.15])
# Spread of ln duration within a grid around grid x kind x cause x time of day in the same
# histories (0.40; pooled over grids 0.41-0.47): what is left after the location is known.
# Not knowing the grid's location is the widening (``gridwatch.etr._estimate``,
# FOREIGN_LOG_SD["prior"]), calibrated on the same tuning grids. The synthetic default (0.7,
# Weibull shape 1.6 = log-sd 0.80) made the prior's P10-P90 cover 89-98% of every tuning
# grid's outages. Weibull kinds get the shape of the same log-sd (pi / (sd sqrt 6)).
PRIOR_SIGMA = 0.40
PRIOR_WEIBULL_SHAPE = float(np.pi / (PRIOR_SIGMA * np.sqrt(6.0)))
_WEIBULL_KINDS = (2, 3)  # breakers and reclosers: a lighter left tail (Weibull shape 1.6)


@dataclass(frozen=True)
class SyntheticHistory:
    started_at_s: npt.NDArray[np.float64]
    duration_s: npt.NDArray[np.float64]  # observed (censored rows: time open so far)
    true_duration_s: npt.NDArray[np.float64]
    censored: npt.NDArray[np.bool_]
    kind: npt.NDArray[np.int64]
    cause: npt.NDArray[np.int64]
    storm: npt.NDArray[np.int64]
    tod: npt.NDArray[np.int64]
    class_code: npt.NDArray[np.int64]


def synthetic_history(
    n: int,
    *,
    seed: int = 0,
    span_s: float = 365 * 86400.0,
    start_s: float = 1.7e9,
    sigma: float = 0.7,
    kind_median_s: npt.NDArray[np.float64] | None = None,
    cause_shift: npt.NDArray[np.float64] | None = None,
    tod_shift: npt.NDArray[np.float64] | None = None,
    weibull_shape: float = 1.6,
) -> SyntheticHistory:
    """``n`` outages started uniformly over ``span_s``; those still open at the end are
    right-censored there (as a real history taken at a moment is). ``kind_median_s``,
    ``cause_shift`` and ``tod_shift`` replace the generator's per-kind medians and log
    shifts (``prior_history`` uses the bundled prior's)."""
    kind_med = _KIND_MEDIAN_S if kind_median_s is None else kind_median_s
    cause_sh = _CAUSE_SHIFT if cause_shift is None else cause_shift
    tod_sh = _TOD_SHIFT if tod_shift is None else tod_shift
    rng = np.random.default_rng(seed)
    started = start_s + np.sort(rng.random(n)) * span_s
    kind = rng.integers(0, N_KIND, n)
    cause = rng.integers(0, N_CAUSE, n)
    storm = rng.choice(N_STORM, size=n, p=_STORM_P)
    tod = (np.floor(np.mod(started + 7 * 3600.0, 86400.0) / 3600.0).astype(np.int64) // 6).clip(
        0, N_TOD - 1
    )
    log_median = np.log(kind_med[kind]) + cause_sh[cause] + _STORM_SHIFT[storm] + tod_sh[tod]
    normal = log_median + sigma * rng.standard_normal(n)
    shape = weibull_shape
    weib = np.exp(log_median) / np.log(2.0) ** (1.0 / shape) * rng.weibull(shape, n)
    true = np.where(np.isin(kind, _WEIBULL_KINDS), weib, np.exp(normal))
    true = np.maximum(true, 60.0)
    end = start_s + span_s
    censored = started + true > end
    observed = np.where(censored, end - started, true)
    observed = np.maximum(observed, 1.0)
    codes = encode_classes(kind, storm, cause, tod)
    return SyntheticHistory(started, observed, true, censored, kind, cause, storm, tod, codes)


def prior_history(n: int, *, seed: int = 0) -> SyntheticHistory:
    """The bundled prior's history: the synthetic process with medians measured on the
    simulator's published grids (``PRIOR_KIND_MEDIAN_S``)."""
    return synthetic_history(
        n,
        seed=seed,
        kind_median_s=PRIOR_KIND_MEDIAN_S,
        cause_shift=PRIOR_CAUSE_SHIFT,
        tod_shift=PRIOR_TOD_SHIFT,
        sigma=PRIOR_SIGMA,
        weibull_shape=PRIOR_WEIBULL_SHAPE,
    )
