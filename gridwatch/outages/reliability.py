"""Reliability indices per IEEE 1366 and its 2.5-beta major event day method. Pure
functions over per-day sums (numpy); the database gives the sums (``store.reliability``).

- SAIFI = sum of customers interrupted / customers served
- SAIDI = sum of customer minutes of interruption / customers served (minutes)
- CAIDI = SAIDI / SAIFI (minutes per interruption)
- MAIFIe = momentary interruption events experienced by customers / customers served
- Major event day: a day whose SAIDI exceeds T_MED = exp(alpha + 2.5 beta), with alpha and
  beta the mean and standard deviation of ln(daily SAIDI) over the preceding (up to) five
  years of days with non-zero SAIDI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MED_BETA_MULTIPLIER = 2.5
# With fewer non-zero history days than this, beta means nothing: no day is called major.
MIN_HISTORY_DAYS = 2


@dataclass(frozen=True, slots=True)
class Indices:
    saifi: float
    saidi_min: float
    caidi_min: float | None  # undefined without interruptions
    maifi_e: float
    customer_interruptions: float
    customer_minutes: float
    momentary_interruptions: float


@dataclass(frozen=True, slots=True)
class MedThreshold:
    alpha: float
    beta: float
    t_med_min: float
    history_days: int  # non-zero SAIDI days the threshold is built on


@dataclass(frozen=True, slots=True)
class ReliabilityReport:
    customers_served: int
    all_days: Indices
    excluding_major_events: Indices
    major_events: Indices
    major_event_days: list[tuple[int, float]]  # (day number, that day's SAIDI in minutes)
    threshold: MedThreshold | None


def _check_same_length(*arrays: npt.NDArray[np.generic]) -> None:
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1 or any(a.ndim != 1 for a in arrays):
        raise ValueError(f"per-day arrays must be 1-D and the same length, got {sizes}")


def indices(
    customer_interruptions: F64,
    customer_minutes: F64,
    momentary_interruptions: F64,
    customers_served: int,
) -> Indices:
    """Indices from per-day (or any) sums; all zero when no customers are served."""
    _check_same_length(customer_interruptions, customer_minutes, momentary_interruptions)
    ci = float(np.sum(customer_interruptions))
    cmi = float(np.sum(customer_minutes))
    mci = float(np.sum(momentary_interruptions))
    if customers_served <= 0:
        return Indices(0.0, 0.0, None, 0.0, ci, cmi, mci)
    saifi = ci / customers_served
    saidi = cmi / customers_served
    return Indices(
        saifi=saifi,
        saidi_min=saidi,
        caidi_min=saidi / saifi if saifi > 0 else None,
        maifi_e=mci / customers_served,
        customer_interruptions=ci,
        customer_minutes=cmi,
        momentary_interruptions=mci,
    )


def major_event_threshold(daily_saidi_min: F64) -> MedThreshold | None:
    """T_MED from the history's daily SAIDI values (days absent from the array count as
    zero and, like explicit zeros, are left out: ln(0) is undefined)."""
    values = np.asarray(daily_saidi_min, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("daily SAIDI must be 1-D")
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size < MIN_HISTORY_DAYS:
        return None
    logs = np.log(positive)
    alpha = float(np.mean(logs))
    # IEEE 1366 uses the sample standard deviation.
    beta = float(np.std(logs, ddof=1))
    return MedThreshold(
        alpha, beta, math.exp(alpha + MED_BETA_MULTIPLIER * beta), int(positive.size)
    )


def reliability_report(
    day: I64,
    customer_interruptions: F64,
    customer_minutes: F64,
    momentary_interruptions: F64,
    customers_served: int,
    threshold: MedThreshold | None,
) -> ReliabilityReport:
    """Indices for a period (per-day sums in), split into major event days and the rest."""
    _check_same_length(day, customer_interruptions, customer_minutes, momentary_interruptions)
    if customers_served > 0:
        daily_saidi = customer_minutes / customers_served
    else:
        daily_saidi = np.zeros_like(customer_minutes)
    if threshold is None:
        is_med = np.zeros(day.shape, dtype=np.bool_)
    else:
        is_med = daily_saidi > threshold.t_med_min
    normal = ~is_med
    return ReliabilityReport(
        customers_served=customers_served,
        all_days=indices(
            customer_interruptions, customer_minutes, momentary_interruptions, customers_served
        ),
        excluding_major_events=indices(
            customer_interruptions[normal],
            customer_minutes[normal],
            momentary_interruptions[normal],
            customers_served,
        ),
        major_events=indices(
            customer_interruptions[is_med],
            customer_minutes[is_med],
            momentary_interruptions[is_med],
            customers_served,
        ),
        major_event_days=[
            (int(d), float(s)) for d, s in zip(day[is_med], daily_saidi[is_med], strict=True)
        ],
        threshold=threshold,
    )
