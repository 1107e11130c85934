"""Outage classes: device kind × storm level × time-of-day band × cause, as integer codes.

The full class code nests its parents, so the hierarchy used for shrinkage is plain
integer division::

    code = ((kind * N_STORM + storm) * N_TOD + tod) * N_CAUSE + cause
    level 3 (kind × storm × tod) = code // N_CAUSE
    level 2 (kind × storm)       = code // (N_CAUSE * N_TOD)
    level 1 (kind)               = code // (N_CAUSE * N_TOD * N_STORM)
    level 0 (everything)         = 0

Cause is the most specific split because it is the one usually *missing* when an ETR is
first needed (the crew reports it on site) while a history records it for almost every
outage: an ``unknown``-cause class then has (almost) no rows of its own and is its parent,
kind × storm × time of day pooled over causes, which is the right answer before the cause
is known. With cause above time of day (the first layout), an unknown cause fell back to
kind × storm and the time of day, known from the start, was never used at first notice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEVICE_KINDS: tuple[str, ...] = (
    "unknown",
    "substation",
    "breaker",
    "recloser",
    "sectionalizer",
    "switch",
    "fuse",
    "transformer",
)
CAUSES: tuple[str, ...] = (
    "unknown",
    "weather",
    "vegetation",
    "equipment",
    "animal",
    "vehicle",
    "overload",
    "planned",
    "other",
)
STORM_LEVELS: tuple[str, ...] = ("quiet", "elevated", "storm", "major")
TOD_BANDS: tuple[str, ...] = ("night", "morning", "afternoon", "evening")  # 00-06-12-18-24 local

N_KIND = len(DEVICE_KINDS)
N_CAUSE = len(CAUSES)
N_STORM = len(STORM_LEVELS)
N_TOD = len(TOD_BANDS)
N_CLASSES = N_KIND * N_STORM * N_CAUSE * N_TOD

_KIND_INDEX = {name: i for i, name in enumerate(DEVICE_KINDS)}
_CAUSE_INDEX = {name: i for i, name in enumerate(CAUSES)}
# Causes operators type in free text, mapped to the vocabulary.
_CAUSE_ALIASES = {
    "storm": "weather",
    "wind": "weather",
    "lightning": "weather",
    "rain": "weather",
    "flood": "weather",
    "tree": "vegetation",
    "trees": "vegetation",
    "failure": "equipment",
    "equipment_failure": "equipment",
    "car": "vehicle",
    "accident": "vehicle",
    "maintenance": "planned",
    "scheduled": "planned",
}

# Level sizes, from the most general (0) to the full class (4).
LEVEL_SIZES: tuple[int, ...] = (
    1,
    N_KIND,
    N_KIND * N_STORM,
    N_KIND * N_STORM * N_TOD,
    N_CLASSES,
)


def kind_code(kind: str | None) -> int:
    """Code of a device kind; unknown or missing kinds map to ``unknown``."""
    if kind is None:
        return 0
    return _KIND_INDEX.get(kind.strip().lower(), 0)


def cause_code(cause: str | None) -> int:
    """Code of a cause; missing maps to ``unknown``, unrecognised text to ``other``."""
    if cause is None:
        return 0
    key = cause.strip().lower().replace(" ", "_").replace("-", "_")
    if key == "":
        return 0
    key = _CAUSE_ALIASES.get(key, key)
    return _CAUSE_INDEX.get(key, _CAUSE_INDEX["other"])


@dataclass(frozen=True)
class StormThresholds:
    """Open-outage counts at which the storm level steps up (elevated, storm, major)."""

    elevated: int = 10
    storm: int = 40
    major: int = 150

    def __post_init__(self) -> None:
        if not 0 < self.elevated < self.storm < self.major:
            raise ValueError("storm thresholds must satisfy 0 < elevated < storm < major")

    def level(self, open_count: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        counts = np.asarray(open_count, dtype=np.int64)
        edges = np.array([self.elevated, self.storm, self.major], dtype=np.int64)
        return np.searchsorted(edges, counts, side="right").astype(np.int64)


def calibrate_storm_thresholds(
    open_counts: npt.NDArray[np.int64],
    quantiles: tuple[float, float, float] = (0.90, 0.97, 0.995),
) -> StormThresholds:
    """Storm thresholds from a history's own concurrency: the counts of outages open at each
    outage's start (itself included). The defaults (10/40/150) suit a city-sized network; a
    small one never reaches them, so every outage would look "quiet". Elevated / storm /
    major start at the given quantiles of the history's counts (at least 2, 3, 4: one outage
    alone is never a storm)."""
    counts = np.asarray(open_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError("open_counts must be a non-empty 1-D array")
    if counts.min() < 0:
        raise ValueError("open_counts must be >= 0")
    if not 0.0 < quantiles[0] < quantiles[1] < quantiles[2] < 1.0:
        raise ValueError("quantiles must be increasing inside (0, 1)")
    q = np.quantile(counts, quantiles)
    elevated = max(2, math.ceil(float(q[0])) + 1)
    storm = max(elevated + 1, math.ceil(float(q[1])) + 1)
    major = max(storm + 1, math.ceil(float(q[2])) + 1)
    return StormThresholds(elevated, storm, major)


def tod_band(started_at_s: npt.NDArray[np.float64], utc_offset_s: float) -> npt.NDArray[np.int64]:
    """Time-of-day band of each start in local time (fixed offset; DST-free zones)."""
    local_s = np.asarray(started_at_s, dtype=np.float64) + utc_offset_s
    hour = np.floor(np.mod(local_s, 86400.0) / 3600.0).astype(np.int64)
    return np.minimum(hour // 6, N_TOD - 1)


def concurrent_open_counts(
    query_at_s: npt.NDArray[np.float64],
    started_at_s: npt.NDArray[np.float64],
    ended_at_s: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """How many outages were open at each query time (start ≤ t < end; NaN end = still open).

    Used for the storm level: an outage's class uses the count open at its start.
    """
    starts = np.sort(np.asarray(started_at_s, dtype=np.float64))
    ends = np.asarray(ended_at_s, dtype=np.float64)
    ends = np.sort(np.where(np.isnan(ends), np.inf, ends))
    q = np.asarray(query_at_s, dtype=np.float64)
    opened = np.searchsorted(starts, q, side="right")
    closed = np.searchsorted(ends, q, side="right")
    return (opened - closed).astype(np.int64)


def encode_classes(
    kind: npt.NDArray[np.int64],
    storm: npt.NDArray[np.int64],
    cause: npt.NDArray[np.int64],
    tod: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Full class codes from component codes; raises ValueError on an out-of-range component."""
    parts = [
        ("kind", np.asarray(kind, dtype=np.int64), N_KIND),
        ("storm", np.asarray(storm, dtype=np.int64), N_STORM),
        ("cause", np.asarray(cause, dtype=np.int64), N_CAUSE),
        ("tod", np.asarray(tod, dtype=np.int64), N_TOD),
    ]
    for name, values, size in parts:
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{name} code out of range 0..{size - 1}")
    k, s, c, t = (p[1] for p in parts)
    codes: npt.NDArray[np.int64] = ((k * N_STORM + s) * N_TOD + t) * N_CAUSE + c
    return codes


def decode_class(code: int) -> dict[str, str]:
    """Names of the components of one full class code (for logs and the API)."""
    if not 0 <= code < N_CLASSES:
        raise ValueError(f"class code {code} out of range")
    cause = code % N_CAUSE
    tod = (code // N_CAUSE) % N_TOD
    storm = (code // (N_CAUSE * N_TOD)) % N_STORM
    kind = code // (N_CAUSE * N_TOD * N_STORM)
    return {
        "device_kind": DEVICE_KINDS[kind],
        "storm_level": STORM_LEVELS[storm],
        "cause": CAUSES[cause],
        "tod_band": TOD_BANDS[tod],
    }


def with_storm_level(code: npt.NDArray[np.int64], storm: int) -> npt.NDArray[np.int64]:
    """The same classes with the storm level replaced (quiet-day repair times for the queue)."""
    c = np.asarray(code, dtype=np.int64)
    cause = c % N_CAUSE
    tod = (c // N_CAUSE) % N_TOD
    kind = c // (N_CAUSE * N_TOD * N_STORM)
    return ((kind * N_STORM + storm) * N_TOD + tod) * N_CAUSE + cause


def parent_codes(level: int) -> npt.NDArray[np.int64]:
    """For each class at ``level`` (1..4), the index of its parent at ``level - 1``."""
    if not 1 <= level <= 4:
        raise ValueError("level must be 1..4")
    divisor = LEVEL_SIZES[level] // LEVEL_SIZES[level - 1]
    out: npt.NDArray[np.int64] = np.arange(LEVEL_SIZES[level], dtype=np.int64) // divisor
    return out
