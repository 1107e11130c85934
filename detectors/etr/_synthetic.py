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
) -> SyntheticHistory:
    """``n`` outages started uniformly over ``span_s``; those still open at the end are
    right-censored there (as a real history taken at a moment is)."""
    rng = np.random.default_rng(seed)
    started = start_s + np.sort(rng.random(n)) * span_s
    kind = rng.integers(0, N_KIND, n)
    cause = rng.integers(0, N_CAUSE, n)
    storm = rng.choice(N_STORM, size=n, p=_STORM_P)
    tod = (np.floor(np.mod(started + 7 * 3600.0, 86400.0) / 3600.0).astype(np.int64) // 6).clip(
        0, N_TOD - 1
    )
    log_median = (
        np.log(_KIND_MEDIAN_S[kind]) + _CAUSE_SHIFT[cause] + _STORM_SHIFT[storm] + _TOD_SHIFT[tod]
    )
    normal = log_median + sigma * rng.standard_normal(n)
    shape = 1.6
    weib = np.exp(log_median) / np.log(2.0) ** (1.0 / shape) * rng.weibull(shape, n)
    true = np.where(np.isin(kind, _WEIBULL_KINDS), weib, np.exp(normal))
    true = np.maximum(true, 60.0)
    end = start_s + span_s
    censored = started + true > end
    observed = np.where(censored, end - started, true)
    observed = np.maximum(observed, 1.0)
    codes = encode_classes(kind, storm, cause, tod)
    return SyntheticHistory(started, observed, true, censored, kind, cause, storm, tod, codes)
