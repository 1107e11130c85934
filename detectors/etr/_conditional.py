"""Conditional ETR: the remaining-time distribution of outages that have already lasted a while.

For an outage open for ``elapsed`` seconds, the q-quantile of its total duration solves
S(t) = (1 - q) S(elapsed). So a one-hour-old outage gets the quantiles of "T given T > 1 h",
never its minute-one answer, and every quantile is at or after ``now``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors.etr._classes import N_CLASSES
from detectors.etr._model import SurvivalModel, conditional_quantile

DEFAULT_PROBS = np.array([0.1, 0.5, 0.9])


@njit(cache=True, nogil=True)
def _conditional_quantiles_kernel(
    class_code: npt.NDArray[np.int64],
    elapsed_s: npt.NDArray[np.float64],
    probs: npt.NDArray[np.float64],
    family: npt.NDArray[np.int64],
    p1: npt.NDArray[np.float64],
    p2: npt.NDArray[np.float64],
    km_cumhaz: npt.NDArray[np.float64],
    tail_rate: npt.NDArray[np.float64],
    log_min: float,
    width: float,
) -> npt.NDArray[np.float64]:
    n = class_code.shape[0]
    out = np.empty((n, probs.shape[0]))
    for i in range(n):
        c = class_code[i]
        for k in range(probs.shape[0]):
            out[i, k] = conditional_quantile(
                family[c],
                p1[c],
                p2[c],
                km_cumhaz[c],
                tail_rate[c],
                log_min,
                width,
                elapsed_s[i],
                probs[k],
            )
    return out


def conditional_duration_quantiles(
    model: SurvivalModel,
    class_code: npt.NDArray[np.int64],
    elapsed_s: npt.NDArray[np.float64],
    probs: npt.NDArray[np.float64] = DEFAULT_PROBS,
) -> npt.NDArray[np.float64]:
    """Total-duration quantiles [n, len(probs)] given each outage has lasted ``elapsed_s``.

    class_code int64[n] in range, elapsed_s float64[n] finite and >= 0, probs float64 in (0, 1).
    """
    if class_code.dtype != np.int64 or class_code.ndim != 1:
        raise ValueError("class_code must be a 1-D int64 array")
    if elapsed_s.dtype != np.float64 or elapsed_s.shape != class_code.shape:
        raise ValueError("elapsed_s must be float64 with the same shape as class_code")
    if probs.dtype != np.float64 or probs.ndim != 1 or probs.size == 0:
        raise ValueError("probs must be a non-empty 1-D float64 array")
    if not np.all((probs > 0.0) & (probs < 1.0)):
        raise ValueError("probs must lie strictly between 0 and 1")
    if class_code.size and (class_code.min() < 0 or class_code.max() >= N_CLASSES):
        raise ValueError(f"class codes out of range 0..{N_CLASSES - 1}")
    if not np.all(np.isfinite(elapsed_s) & (elapsed_s >= 0.0)):
        raise ValueError("elapsed_s must be finite and >= 0")
    return _conditional_quantiles_kernel(
        class_code,
        elapsed_s,
        probs,
        model.family,
        model.p1,
        model.p2,
        model.km_cumhaz,
        model.tail_rate,
        model.grid.log_min,
        model.grid.width,
    )


def conditional_etr(
    model: SurvivalModel,
    class_code: npt.NDArray[np.int64],
    started_at_s: npt.NDArray[np.float64],
    now_s: float,
    probs: npt.NDArray[np.float64] = DEFAULT_PROBS,
    *,
    min_remaining_s: float = 300.0,
) -> npt.NDArray[np.float64]:
    """Absolute ETR times (epoch s) [n, len(probs)] for open outages at ``now_s``.

    A start in the future (clock skew) counts as elapsed 0. Every ETR is at least
    ``min_remaining_s`` after now: a crew cannot be promised for "now".
    """
    if started_at_s.dtype != np.float64 or started_at_s.shape != class_code.shape:
        raise ValueError("started_at_s must be float64 with the same shape as class_code")
    if not np.all(np.isfinite(started_at_s)):
        raise ValueError("started_at_s must be finite")
    if probs.ndim != 1 or np.any(np.diff(probs) <= 0):
        raise ValueError("probs must be strictly increasing")
    if not (np.isfinite(now_s) and 0.0 <= min_remaining_s < 86400.0):
        raise ValueError("now_s must be finite and min_remaining_s in [0, 1 day)")
    elapsed = np.maximum(now_s - started_at_s, 0.0)
    durations = conditional_duration_quantiles(model, class_code, elapsed, probs)
    remaining = np.maximum(durations - elapsed[:, None], min_remaining_s)
    # Quantiles stay ordered after the floor; now + remaining is never in the past.
    return now_s + np.maximum.accumulate(remaining, axis=1)
