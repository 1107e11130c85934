"""The fitted survival model: per-class distribution parameters and their survival functions.

Families (per full class):
  * ``lognormal``: p1 = mu (mean of ln t), p2 = sigma.
  * ``weibull``:   p1 = ln(scale_s), p2 = shape k.
  * ``km``: grouped Kaplan–Meier: cumulative hazard at the log-grid edges (``km_cumhaz``),
    linear in ln t inside a bin, and a constant hazard ``tail_rate`` (1/s) past the grid.

Below the grid's lower edge S(t) = 1 (shorter interruptions are not in the data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors.etr._classes import N_CLASSES
from detectors.etr._special import inv_log_norm_sf, log_norm_sf

LOGNORMAL = 0
WEIBULL = 1
KM = 2
FAMILY_NAMES: tuple[str, ...] = ("lognormal", "weibull", "km")

MODEL_FORMAT = 2  # 2: cause below time of day in the class code (see _classes)


@dataclass(frozen=True)
class LogGrid:
    """Log-spaced duration grid: histograms, the KM estimate and quantisation use it."""

    min_s: float = 30.0
    max_s: float = 14 * 86400.0
    n_bins: int = 128

    def __post_init__(self) -> None:
        if not (0 < self.min_s < self.max_s and math.isfinite(self.max_s)):
            raise ValueError("grid needs 0 < min_s < max_s < inf")
        if not 8 <= self.n_bins <= 4096:
            raise ValueError("grid n_bins must be in 8..4096")

    @property
    def log_min(self) -> float:
        return math.log(self.min_s)

    @property
    def width(self) -> float:
        return (math.log(self.max_s) - math.log(self.min_s)) / self.n_bins

    def log_edges(self) -> npt.NDArray[np.float64]:
        return self.log_min + self.width * np.arange(self.n_bins + 1, dtype=np.float64)

    def log_mids(self) -> npt.NDArray[np.float64]:
        return self.log_min + self.width * (np.arange(self.n_bins, dtype=np.float64) + 0.5)


@njit(cache=True, nogil=True)
def _km_log_sf(
    cumhaz: npt.NDArray[np.float64], tail_rate: float, log_min: float, width: float, t: float
) -> float:
    if t <= 0.0:
        return 0.0
    x = math.log(t)
    pos = (x - log_min) / width
    if pos <= 0.0:
        return 0.0
    n_bins = cumhaz.shape[0] - 1
    if pos >= n_bins:
        t_max = math.exp(log_min + width * n_bins)
        tail: float = -(cumhaz[n_bins] + tail_rate * (t - t_max))
        return tail
    j = int(pos)
    inside: float = -(cumhaz[j] + (cumhaz[j + 1] - cumhaz[j]) * (pos - j))
    return inside


@njit(cache=True, nogil=True)
def log_sf(
    family: int,
    p1: float,
    p2: float,
    cumhaz: npt.NDArray[np.float64],
    tail_rate: float,
    log_min: float,
    width: float,
    t: float,
) -> float:
    """log S(t) for one class."""
    if t <= 0.0:
        return 0.0
    if family == LOGNORMAL:
        return log_norm_sf((math.log(t) - p1) / p2)
    if family == WEIBULL:
        u = p2 * (math.log(t) - p1)
        if u > 700.0:
            u = 700.0
        return -math.exp(u)
    return _km_log_sf(cumhaz, tail_rate, log_min, width, t)


@njit(cache=True, nogil=True)
def conditional_quantile(
    family: int,
    p1: float,
    p2: float,
    cumhaz: npt.NDArray[np.float64],
    tail_rate: float,
    log_min: float,
    width: float,
    elapsed_s: float,
    q: float,
) -> float:
    """Total duration t with P(T <= t | T > elapsed) = q, so t >= elapsed."""
    if q <= 0.0:
        return elapsed_s
    log_keep = math.log1p(-q) if q < 1.0 else -745.0
    if family == LOGNORMAL:
        z_e = -math.inf if elapsed_s <= 0.0 else (math.log(elapsed_s) - p1) / p2
        log_se = 0.0 if elapsed_s <= 0.0 else log_norm_sf(z_e)
        z = inv_log_norm_sf(log_se + log_keep)
        t = math.exp(p1 + p2 * z)
    elif family == WEIBULL:
        c = -log_keep
        if elapsed_s <= 0.0:
            log_h = math.log(c)
        else:
            lh = p2 * (math.log(elapsed_s) - p1)
            log_h = lh + math.log1p(c * math.exp(-lh)) if lh > 30.0 else math.log(math.exp(lh) + c)
        t = math.exp(p1 + log_h / p2)
    else:
        target = -_km_log_sf(cumhaz, tail_rate, log_min, width, elapsed_s) - log_keep
        n_bins = cumhaz.shape[0] - 1
        if target >= cumhaz[n_bins]:
            t_max = math.exp(log_min + width * n_bins)
            t = t_max + (target - cumhaz[n_bins]) / tail_rate
        else:
            # First edge whose cumulative hazard exceeds the target (binary search).
            lo = 0
            hi = n_bins
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if cumhaz[mid] > target:
                    hi = mid
                else:
                    lo = mid
            j = hi - 1
            frac = (target - cumhaz[j]) / (cumhaz[hi] - cumhaz[j])
            t = math.exp(log_min + width * (j + frac))
    return t if t > elapsed_s else elapsed_s


def _as_list(a: npt.NDArray[Any]) -> list[Any]:
    return a.tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SurvivalModel:
    """Per full class: family and parameters. Dense over every class code (empty classes
    carry their shrunk parent's fit), so prediction never needs a fallback lookup."""

    grid: LogGrid
    family: npt.NDArray[np.int64]
    p1: npt.NDArray[np.float64]
    p2: npt.NDArray[np.float64]
    km_cumhaz: npt.NDArray[np.float64]  # [N_CLASSES, n_bins + 1]
    tail_rate: npt.NDArray[np.float64]
    n_events: npt.NDArray[np.int64]
    n_censored: npt.NDArray[np.int64]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = N_CLASSES
        for name, arr, dtype in (
            ("family", self.family, np.int64),
            ("p1", self.p1, np.float64),
            ("p2", self.p2, np.float64),
            ("tail_rate", self.tail_rate, np.float64),
            ("n_events", self.n_events, np.int64),
            ("n_censored", self.n_censored, np.int64),
        ):
            if arr.shape != (c,) or arr.dtype != dtype:
                raise ValueError(f"model {name} must be {np.dtype(dtype).name}[{c}]")
        if self.km_cumhaz.shape != (c, self.grid.n_bins + 1) or self.km_cumhaz.dtype != np.float64:
            raise ValueError("model km_cumhaz has the wrong shape or dtype")
        if self.family.min() < 0 or self.family.max() > KM:
            raise ValueError("model family code out of range")
        para = self.family != KM
        if not (np.all(np.isfinite(self.p1[para])) and np.all(self.p2[para] > 0)):
            raise ValueError("model parameters must be finite with positive scale/shape")
        if not np.all(self.tail_rate > 0):
            raise ValueError("model tail_rate must be positive")

    def describe_class(self, code: int) -> dict[str, Any]:
        fam = int(self.family[code])
        out: dict[str, Any] = {
            "family": FAMILY_NAMES[fam],
            "n_events": int(self.n_events[code]),
            "n_censored": int(self.n_censored[code]),
        }
        if fam == LOGNORMAL:
            out |= {"mu": float(self.p1[code]), "sigma": float(self.p2[code])}
        elif fam == WEIBULL:
            out |= {"scale_s": math.exp(float(self.p1[code])), "shape": float(self.p2[code])}
        return out

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready parameters; KM rows only for the classes that use them."""
        km_codes = np.flatnonzero(self.family == KM)
        return {
            "format": MODEL_FORMAT,
            "grid": {
                "min_s": self.grid.min_s,
                "max_s": self.grid.max_s,
                "n_bins": self.grid.n_bins,
            },
            "n_classes": N_CLASSES,
            "family": _as_list(self.family),
            "p1": _as_list(self.p1),
            "p2": _as_list(self.p2),
            "tail_rate": _as_list(self.tail_rate),
            "n_events": _as_list(self.n_events),
            "n_censored": _as_list(self.n_censored),
            "km": {str(int(c)): _as_list(self.km_cumhaz[c]) for c in km_codes},
            "info": self.info,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> SurvivalModel:
        """Inverse of ``to_json_dict``; raises ValueError on a malformed document."""
        try:
            if data["format"] != MODEL_FORMAT or data["n_classes"] != N_CLASSES:
                raise ValueError("model format or class count does not match this code")
            grid = LogGrid(
                float(data["grid"]["min_s"]),
                float(data["grid"]["max_s"]),
                int(data["grid"]["n_bins"]),
            )
            km = np.zeros((N_CLASSES, grid.n_bins + 1), dtype=np.float64)
            for key, row in data["km"].items():
                km[int(key)] = np.asarray(row, dtype=np.float64)
            return cls(
                grid=grid,
                family=np.asarray(data["family"], dtype=np.int64),
                p1=np.asarray(data["p1"], dtype=np.float64),
                p2=np.asarray(data["p2"], dtype=np.float64),
                km_cumhaz=km,
                tail_rate=np.asarray(data["tail_rate"], dtype=np.float64),
                n_events=np.asarray(data["n_events"], dtype=np.int64),
                n_censored=np.asarray(data["n_censored"], dtype=np.int64),
                info=dict(data.get("info", {})),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed model document: {exc!r}") from None
