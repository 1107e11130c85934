"""Restoration-duration history: validation rules and the per-class histogram kernel.

Rules (each row is kept, capped or rejected with a reason; good rows always go through):
  * ``non_finite``: NaN or infinite duration -> rejected.
  * ``non_positive``: duration <= 0 (restored at or before its start) -> rejected.
  * ``bad_class``: class code outside 0..N_CLASSES-1 -> rejected.
  * ``outlier_capped``: duration above the grid's max (default 14 days) -> kept, right-censored
    at the max: it lasted at least that long, and a forgotten "restored" click must not
    stretch a class's tail by months.
  * durations below the grid's min (default 30 s) are kept and fall into the first bin.
The whole history is refused (HistoryError) when fewer than ``min_events`` restored
outages survive the rules: no model can be fitted on nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors.etr._classes import N_CLASSES
from detectors.etr._model import LogGrid


class HistoryError(ValueError):
    """The history cannot produce a model (empty, too few restorations, wrong shapes)."""


@dataclass(frozen=True)
class PreparedHistory:
    duration_s: npt.NDArray[np.float64]
    censored: npt.NDArray[np.bool_]
    class_code: npt.NDArray[np.int64]
    rejected: dict[str, int]
    capped: int


def check_columns(
    duration_s: npt.NDArray[np.float64],
    censored: npt.NDArray[np.bool_],
    class_code: npt.NDArray[np.int64],
) -> None:
    """Shapes and dtypes of the history columns, or HistoryError naming the column."""
    for name, arr, dtype in (
        ("duration_s", duration_s, np.float64),
        ("censored", censored, np.bool_),
        ("class_code", class_code, np.int64),
    ):
        if not isinstance(arr, np.ndarray):
            raise HistoryError(f"{name} must be a numpy array")
        if arr.dtype != dtype:
            raise HistoryError(f"{name} must be {np.dtype(dtype).name}, got {arr.dtype}")
        if arr.ndim != 1:
            raise HistoryError(f"{name} must be 1-D")
    if not duration_s.shape == censored.shape == class_code.shape:
        raise HistoryError("duration_s, censored and class_code must have the same length")


def prepare_history(
    duration_s: npt.NDArray[np.float64],
    censored: npt.NDArray[np.bool_],
    class_code: npt.NDArray[np.int64],
    grid: LogGrid,
    *,
    min_events: int = 10,
) -> PreparedHistory:
    check_columns(duration_s, censored, class_code)
    finite = np.isfinite(duration_s)
    positive = finite & (duration_s > 0)
    good_class = (class_code >= 0) & (class_code < N_CLASSES)
    keep = positive & good_class
    rejected = {
        "non_finite": int(np.count_nonzero(~finite)),
        "non_positive": int(np.count_nonzero(finite & ~positive)),
        "bad_class": int(np.count_nonzero(positive & ~good_class)),
    }
    dur = duration_s[keep]
    cens = censored[keep].copy()
    over = dur > grid.max_s
    capped = int(np.count_nonzero(over))
    if capped:
        dur = np.where(over, grid.max_s, dur)
        cens[over] = True
    n_events = int(np.count_nonzero(~cens))
    if n_events < min_events:
        raise HistoryError(
            f"history has {n_events} usable restored outages (need at least {min_events}); "
            f"rejected: {rejected}, capped: {capped}"
        )
    return PreparedHistory(dur, cens, class_code[keep], rejected, capped)


@njit(cache=True, nogil=True)
def _histogram_kernel(
    duration_s: npt.NDArray[np.float64],
    censored: npt.NDArray[np.bool_],
    class_code: npt.NDArray[np.int64],
    holdout: npt.NDArray[np.bool_],
    n_classes: int,
    log_min: float,
    width: float,
    n_bins: int,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]:
    train_ev = np.zeros((n_classes, n_bins))
    train_ce = np.zeros((n_classes, n_bins))
    hold_ev = np.zeros((n_classes, n_bins))
    hold_ce = np.zeros((n_classes, n_bins))
    for i in range(duration_s.shape[0]):
        pos = (math.log(duration_s[i]) - log_min) / width
        j = int(pos) if pos > 0.0 else 0
        if j >= n_bins:
            j = n_bins - 1
        c = class_code[i]
        if holdout[i]:
            if censored[i]:
                hold_ce[c, j] += 1.0
            else:
                hold_ev[c, j] += 1.0
        elif censored[i]:
            train_ce[c, j] += 1.0
        else:
            train_ev[c, j] += 1.0
    return train_ev, train_ce, hold_ev, hold_ce


def class_histograms(
    duration_s: npt.NDArray[np.float64],
    censored: npt.NDArray[np.bool_],
    class_code: npt.NDArray[np.int64],
    holdout: npt.NDArray[np.bool_],
    grid: LogGrid,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]:
    """Event and censoring counts per (class, log-bin), split into training and held-out rows.

    Durations must be positive and codes in range (``prepare_history`` guarantees both).
    """
    check_columns(duration_s, censored, class_code)
    if holdout.dtype != np.bool_ or holdout.shape != duration_s.shape:
        raise HistoryError("holdout must be bool with the same length as duration_s")
    if duration_s.size and (
        not np.all(duration_s > 0) or class_code.min() < 0 or class_code.max() >= N_CLASSES
    ):
        raise HistoryError(
            "durations must be positive and class codes in range; run prepare_history"
        )
    return _histogram_kernel(
        duration_s, censored, class_code, holdout, N_CLASSES, grid.log_min, grid.width, grid.n_bins
    )
