"""Scalar special functions for the kernels (Numba-compiled, usable from other kernels).

Everything works in log space where a survival probability can underflow: a 3-day-old
outage of a class whose median is 40 minutes has S(t) far below 1e-300.
"""

from __future__ import annotations

import math

from numba import njit

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
SQRT2 = math.sqrt(2.0)


@njit(cache=True, nogil=True)
def log_norm_sf(z: float) -> float:
    """log Q(z), Q the standard normal survival function, accurate far into the tail."""
    if z < 30.0:
        return math.log(0.5 * math.erfc(z / SQRT2))
    # Asymptotic (Mills ratio) series; relative error < 1e-12 beyond z = 30.
    iz2 = 1.0 / (z * z)
    series = 1.0 - iz2 + 3.0 * iz2 * iz2 - 15.0 * iz2 * iz2 * iz2
    return -0.5 * z * z - math.log(z) - LOG_SQRT_2PI + math.log(series)


@njit(cache=True, nogil=True)
def norm_hazard(z: float) -> float:
    """phi(z) / Q(z) (inverse Mills ratio), stable for large z."""
    return math.exp(-0.5 * z * z - LOG_SQRT_2PI - log_norm_sf(z))


@njit(cache=True, nogil=True)
def norm_ppf(p: float) -> float:
    """Inverse standard normal CDF: Acklam's rational approximation + one Halley step."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    a0, a1, a2 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
    a3, a4, a5 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
    b0, b1, b2 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
    b3, b4 = 6.680131188771972e01, -1.328068155288572e01
    c0, c1, c2 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
    c3, c4, c5 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
    d0, d1, d2, d3 = (
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e00,
        3.754408661907416e00,
    )
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / (
            (((d0 * q + d1) * q + d2) * q + d3) * q + 1.0
        )
    elif p <= 1.0 - plow:
        q = p - 0.5
        r = q * q
        x = (
            (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5)
            * q
            / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1.0)
        )
    else:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / (
            (((d0 * q + d1) * q + d2) * q + d3) * q + 1.0
        )
    # Halley refinement against erfc brings it to full double precision.
    e = 0.5 * math.erfc(-x / SQRT2) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


@njit(cache=True, nogil=True)
def inv_log_norm_sf(log_p: float) -> float:
    """z with log Q(z) = log_p (log_p <= 0)."""
    if log_p >= 0.0:
        return -math.inf
    if log_p > -700.0:
        p = math.exp(log_p)
        if p > 0.5:
            return norm_ppf(1.0 - p)
        return -norm_ppf(p)
    # Deep tail: Newton on log Q from the asymptotic start (d log Q / dz = -hazard).
    t = -2.0 * log_p
    z = math.sqrt(t - math.log(t) - 2.0 * LOG_SQRT_2PI)
    for _ in range(50):
        step = (log_norm_sf(z) - log_p) / norm_hazard(z)
        z += step
        if abs(step) < 1e-12 * z:
            break
    return z
