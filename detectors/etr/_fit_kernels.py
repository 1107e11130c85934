"""Fitting kernels on per-class histograms (counts per log-duration bin).

Maximum likelihood with right-censoring: a restored outage contributes its density at the
bin's log-midpoint, a censored one its survival there. Shrinkage toward the parent class is
a Gaussian penalty equal to ``prior_w`` pseudo-observations' Fisher information at the
parent's parameters (penalised ML, i.e. the MAP under an empirical-Bayes prior). With no
data, a class's fit is exactly its parent's.

Optimiser: Levenberg–Marquardt on the 2-parameter log-likelihood (analytic gradient and
Hessian), which converges in a handful of steps from the parent's parameters.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors.etr._special import LOG_SQRT_2PI, log_norm_sf

WEIBULL_INFO_LOGK = 1.8236806608528  # pi^2/6 + (1 - Euler gamma)^2: Fisher info of ln k per obs
MAX_ITER = 200


@njit(cache=True, nogil=True)
def _lognormal_terms(
    ev: npt.NDArray[np.float64],
    ce: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    mu: float,
    th: float,
    pm: float,
    pth: float,
    pw: float,
    ps: float,
) -> tuple[float, float, float, float, float, float]:
    s = math.exp(th)
    ll = 0.0
    g0 = 0.0
    g1 = 0.0
    h00 = 0.0
    h01 = 0.0
    h11 = 0.0
    for j in range(x.shape[0]):
        e = ev[j]
        c = ce[j]
        if e == 0.0 and c == 0.0:
            continue
        z = (x[j] - mu) / s
        if e > 0.0:
            ll += e * (-th - x[j] - 0.5 * z * z - LOG_SQRT_2PI)
            g0 += e * z / s
            g1 += e * (z * z - 1.0)
            h00 -= e / (s * s)
            h01 -= 2.0 * e * z / s
            h11 -= 2.0 * e * z * z
        if c > 0.0:
            lq = log_norm_sf(z)
            h = math.exp(-0.5 * z * z - LOG_SQRT_2PI - lq)
            hp = h * (h - z)
            ll += c * lq
            g0 += c * h / s
            g1 += c * h * z
            h00 -= c * hp / (s * s)
            h01 -= c * (hp * z + h) / s
            h11 -= c * z * (hp * z + h)
    if pw > 0.0:
        dm = mu - pm
        dt = th - pth
        ll -= 0.5 * pw * (dm * dm / (ps * ps) + 2.0 * dt * dt)
        g0 -= pw * dm / (ps * ps)
        g1 -= 2.0 * pw * dt
        h00 -= pw / (ps * ps)
        h11 -= 2.0 * pw
    return ll, g0, g1, h00, h01, h11


@njit(cache=True, nogil=True)
def _weibull_terms(
    ev: npt.NDArray[np.float64],
    ce: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    a: float,
    b: float,
    pa: float,
    pb: float,
    pw: float,
    pk: float,
) -> tuple[float, float, float, float, float, float]:
    k = math.exp(b)
    ll = 0.0
    g0 = 0.0
    g1 = 0.0
    h00 = 0.0
    h01 = 0.0
    h11 = 0.0
    for j in range(x.shape[0]):
        e = ev[j]
        c = ce[j]
        n = e + c
        if n == 0.0:
            continue
        u = k * (x[j] - a)
        if u > 50.0:  # exp(50) keeps n k^2 w finite; such trial steps are rejected anyway
            u = 50.0
        w = math.exp(u)
        ll += e * (b - x[j] + u) - n * w
        g0 += k * (n * w - e)
        g1 += e * (1.0 + u) - n * u * w
        h00 -= n * k * k * w
        h01 += k * (n * w - e) + n * k * u * w
        h11 += e * u - n * (u * w + u * u * w)
    if pw > 0.0:
        da = a - pa
        db = b - pb
        ll -= 0.5 * pw * (pk * pk * da * da + WEIBULL_INFO_LOGK * db * db)
        g0 -= pw * pk * pk * da
        g1 -= pw * WEIBULL_INFO_LOGK * db
        h00 -= pw * pk * pk
        h11 -= pw * WEIBULL_INFO_LOGK
    return ll, g0, g1, h00, h01, h11


@njit(cache=True, nogil=True)
def _lm_fit(
    family: int,
    ev: npt.NDArray[np.float64],
    ce: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    p0: float,
    p1: float,
    q0: float,
    q1: float,
    pw: float,
    qs: float,
    lo1: float,
    hi1: float,
) -> tuple[float, float, int]:
    """Maximise one class's penalised log-likelihood; second parameter kept in [lo1, hi1]."""
    if family == 0:
        ll, g0, g1, h00, h01, h11 = _lognormal_terms(ev, ce, x, p0, p1, q0, q1, pw, qs)
    else:
        ll, g0, g1, h00, h01, h11 = _weibull_terms(ev, ce, x, p0, p1, q0, q1, pw, qs)
    lam = 1e-3
    it = 0
    while it < MAX_ITER:
        it += 1
        a00 = -h00
        a11 = -h11
        a01 = -h01
        scale = max(abs(a00), abs(a11), 1e-12)
        d00 = a00 + lam * max(abs(a00), 1e-12 * scale)
        d11 = a11 + lam * max(abs(a11), 1e-12 * scale)
        det = d00 * d11 - a01 * a01
        if det <= 0.0 or d00 <= 0.0:
            lam *= 10.0
            if lam > 1e12:
                break
            continue
        s0 = (d11 * g0 - a01 * g1) / det
        s1 = (d00 * g1 - a01 * g0) / det
        n0 = p0 + s0
        n1 = min(max(p1 + s1, lo1), hi1)
        if family == 0:
            nll, ng0, ng1, nh00, nh01, nh11 = _lognormal_terms(ev, ce, x, n0, n1, q0, q1, pw, qs)
        else:
            nll, ng0, ng1, nh00, nh01, nh11 = _weibull_terms(ev, ce, x, n0, n1, q0, q1, pw, qs)
        if nll >= ll:
            tiny_step = abs(n0 - p0) < 1e-9 and abs(n1 - p1) < 1e-9
            done = tiny_step or nll - ll < 1e-12 * (1.0 + abs(ll))
            p0, p1 = n0, n1
            ll, g0, g1, h00, h01, h11 = nll, ng0, ng1, nh00, nh01, nh11
            lam = max(lam * 0.1, 1e-12)
            if done:
                break
        else:
            lam *= 10.0
            if lam > 1e12:
                break
    return p0, p1, it


@njit(cache=True, nogil=True)
def _fit_parametric_kernel(
    family: int,
    ev: npt.NDArray[np.float64],
    ce: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    prior_loc: npt.NDArray[np.float64],
    prior_scale: npt.NDArray[np.float64],
    prior_w: float,
    init_loc: npt.NDArray[np.float64],
    init_scale: npt.NDArray[np.float64],
    min_scale: float,
    max_scale: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per class, the penalised ML fit of one family: 0 lognormal (loc mu, scale sigma) or
    1 Weibull (loc ln lambda, scale shape k). The scale is fitted on its log, within
    [min_scale, max_scale]; returns loc, scale and the iterations taken."""
    n = ev.shape[0]
    loc = np.empty(n)
    scale = np.empty(n)
    iters = np.empty(n, dtype=np.int64)
    lo = math.log(min_scale)
    hi = math.log(max_scale)
    for c in range(n):
        b0 = min(max(math.log(init_scale[c]), lo), hi)
        a, b, it = _lm_fit(
            family,
            ev[c],
            ce[c],
            x,
            init_loc[c],
            b0,
            prior_loc[c],
            math.log(prior_scale[c]),
            prior_w,
            prior_scale[c],
            lo,
            hi,
        )
        loc[c] = a
        scale[c] = math.exp(b)
        iters[c] = it
    return loc, scale, iters


@njit(cache=True, nogil=True)
def _fit_km_kernel(
    ev: npt.NDArray[np.float64],
    ce: npt.NDArray[np.float64],
    parent_q: npt.NDArray[np.float64],
    parent_r: npt.NDArray[np.float64],
    prior_w: float,
    edges_s: npt.NDArray[np.float64],
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]:
    """Grouped (actuarial) Kaplan–Meier per class, blended with ``prior_w`` pseudo-outages
    that behave like the parent: q_j = (d_j + w r_pj q_pj) / (n'_j + w r_pj), n'_j the number
    at risk at the bin's start less half the bin's censorings.

    Returns the hazard probabilities q, per-outage at-risk fractions r, the cumulative
    hazard at the edges and the constant tail hazard (1/s) used past the grid.
    """
    n_cls, n_bins = ev.shape
    q = np.zeros((n_cls, n_bins))
    r = np.zeros((n_cls, n_bins))
    cumhaz = np.zeros((n_cls, n_bins + 1))
    tail = np.empty(n_cls)
    for c in range(n_cls):
        total = 0.0
        for j in range(n_bins):
            total += ev[c, j] + ce[c, j]
        at_risk = total
        deaths = 0.0
        exposure = 0.0
        for j in range(n_bins):
            n_eff = at_risk - 0.5 * ce[c, j] + prior_w * parent_r[c, j]
            d_eff = ev[c, j] + prior_w * parent_r[c, j] * parent_q[c, j]
            qj = d_eff / n_eff if n_eff > 0.0 else 0.0
            if qj > 1.0 - 1e-9:
                qj = 1.0 - 1e-9
            q[c, j] = qj
            r[c, j] = n_eff / (total + prior_w) if total + prior_w > 0.0 else 0.0
            cumhaz[c, j + 1] = cumhaz[c, j] - math.log1p(-qj)
            deaths += d_eff
            exposure += n_eff * (edges_s[j + 1] - edges_s[j])
            at_risk -= ev[c, j] + ce[c, j]
        rate = deaths / exposure if exposure > 0.0 else 0.0
        tail[c] = rate if rate > 1e-12 else 1e-12
    return q, r, cumhaz, tail


@njit(cache=True, nogil=True)
def _bin_log_prob(
    family: int,
    p1: float,
    p2: float,
    cumhaz: npt.NDArray[np.float64],
    log_lo: float,
    log_hi: float,
    j: int,
) -> float:
    """log P(lo < T <= hi) for grid bin j."""
    if family == 0:
        la = log_norm_sf((log_lo - p1) / p2)
        lb = log_norm_sf((log_hi - p1) / p2)
    elif family == 1:
        la = -math.exp(min(p2 * (log_lo - p1), 700.0))
        lb = -math.exp(min(p2 * (log_hi - p1), 700.0))
    else:
        la = -cumhaz[j]
        lb = -cumhaz[j + 1]
    d = lb - la
    p = -math.expm1(d) if d < 0.0 else 0.0
    return la + math.log(max(p, 1e-300))


@njit(cache=True, nogil=True)
def _holdout_loglik_kernel(
    ev: npt.NDArray[np.float64],
    ce: npt.NDArray[np.float64],
    family: int,
    p1: npt.NDArray[np.float64],
    p2: npt.NDArray[np.float64],
    cumhaz: npt.NDArray[np.float64],
    log_edges: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Held-out log-likelihood per class of one family: a restored outage scores the
    probability of its bin, a censored one the survival at its bin's midpoint."""
    n_cls, n_bins = ev.shape
    out = np.zeros(n_cls)
    for c in range(n_cls):
        total = 0.0
        for j in range(n_bins):
            e = ev[c, j]
            s = ce[c, j]
            if e == 0.0 and s == 0.0:
                continue
            if e > 0.0:
                total += e * _bin_log_prob(
                    family, p1[c], p2[c], cumhaz[c], log_edges[j], log_edges[j + 1], j
                )
            if s > 0.0:
                xm = 0.5 * (log_edges[j] + log_edges[j + 1])
                if family == 0:
                    ls = log_norm_sf((xm - p1[c]) / p2[c])
                elif family == 1:
                    ls = -math.exp(min(p2[c] * (xm - p1[c]), 700.0))
                else:
                    ls = -0.5 * (cumhaz[c, j] + cumhaz[c, j + 1])
                total += s * ls
        out[c] = total
    return out
