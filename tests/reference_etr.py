"""Slow, obviously-correct references for the ETR kernels (plain Python + math, no numpy
in the arithmetic, no scipy). They solve the same problems by different means where that
helps: bisection instead of closed-form inversion, Nelder–Mead instead of Newton steps,
heapq instead of the hand-written heap."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
WEIBULL_INFO_LOGK = math.pi**2 / 6.0 + (1.0 - 0.5772156649015329) ** 2


def log_norm_sf(z: float) -> float:
    if z < 30.0:
        return math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    # Continued-fraction form of the Mills ratio, evaluated by hand (independent of the
    # kernel's series).
    cf = z
    for k in range(60, 0, -1):
        cf = z + k / cf
    return -0.5 * z * z - LOG_SQRT_2PI - math.log(cf)


def log_sf(
    family: int,
    p1: float,
    p2: float,
    cumhaz: Sequence[float],
    tail: float,
    log_min: float,
    width: float,
    t: float,
) -> float:
    if t <= 0.0:
        return 0.0
    x = math.log(t)
    if family == 0:
        return log_norm_sf((x - p1) / p2)
    if family == 1:
        return -math.exp(min(p2 * (x - p1), 700.0))
    pos = (x - log_min) / width
    n_bins = len(cumhaz) - 1
    if pos <= 0.0:
        return 0.0
    if pos >= n_bins:
        return -(cumhaz[n_bins] + tail * (t - math.exp(log_min + width * n_bins)))
    j = int(pos)
    return -(cumhaz[j] + (cumhaz[j + 1] - cumhaz[j]) * (pos - j))


def conditional_quantile(
    family: int,
    p1: float,
    p2: float,
    cumhaz: Sequence[float],
    tail: float,
    log_min: float,
    width: float,
    elapsed: float,
    q: float,
) -> float:
    """Bisection in ln t on log S(t) = log S(elapsed) + log(1 - q)."""
    target = log_sf(family, p1, p2, cumhaz, tail, log_min, width, elapsed) + math.log1p(-q)
    lo = math.log(elapsed) if elapsed > 0 else -50.0
    hi = max(lo, 0.0) + 1.0
    while log_sf(family, p1, p2, cumhaz, tail, log_min, width, math.exp(hi)) > target:
        hi += 1.0 + (hi - lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if log_sf(family, p1, p2, cumhaz, tail, log_min, width, math.exp(mid)) > target:
            lo = mid
        else:
            hi = mid
    return max(math.exp(0.5 * (lo + hi)), elapsed)


def histogram(
    duration: Sequence[float],
    censored: Sequence[bool],
    codes: Sequence[int],
    holdout: Sequence[bool],
    n_classes: int,
    log_min: float,
    width: float,
    n_bins: int,
) -> list[list[list[float]]]:
    """[train_ev, train_ce, hold_ev, hold_ce], each n_classes x n_bins."""
    out = [[[0.0] * n_bins for _ in range(n_classes)] for _ in range(4)]
    for d, c, k, h in zip(duration, censored, codes, holdout, strict=True):
        j = min(max(math.floor((math.log(d) - log_min) / width), 0), n_bins - 1)
        out[(2 if h else 0) + (1 if c else 0)][k][j] += 1.0
    return out


def penalised_loglik(
    family: int,
    ev: Sequence[float],
    ce: Sequence[float],
    x: Sequence[float],
    p: float,
    log_scale: float,
    prior: tuple[float, float, float],
) -> float:
    """Lognormal (p=mu, log_scale=ln sigma) or Weibull (p=ln scale, log_scale=ln k)."""
    prior_p, prior_scale, weight = prior
    total = 0.0
    s = math.exp(log_scale)
    for e, c, xj in zip(ev, ce, x, strict=True):
        if family == 0:
            z = (xj - p) / s
            log_f = -log_scale - xj - 0.5 * z * z - LOG_SQRT_2PI
            log_s = log_norm_sf(z)
        else:
            u = min(s * (xj - p), 700.0)
            log_f = log_scale - xj + u - math.exp(u)
            log_s = -math.exp(u)
        total += e * log_f + c * log_s
    if weight > 0:
        dp = p - prior_p
        dl = log_scale - math.log(prior_scale)
        if family == 0:
            total -= 0.5 * weight * (dp * dp / prior_scale**2 + 2.0 * dl * dl)
        else:
            total -= 0.5 * weight * (prior_scale**2 * dp * dp + WEIBULL_INFO_LOGK * dl * dl)
    return total


def nelder_mead(
    f: Callable[[float, float], float],
    x0: tuple[float, float],
    step: float = 0.3,
    iters: int = 2000,
) -> tuple[float, float]:
    """Maximise f(a, b) with the textbook Nelder–Mead simplex."""
    pts = [list(x0), [x0[0] + step, x0[1]], [x0[0], x0[1] + step]]
    vals = [f(*p) for p in pts]
    for _ in range(iters):
        order = sorted(range(3), key=lambda i: -vals[i])
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if (
            abs(vals[0] - vals[2]) < 1e-13 * (1 + abs(vals[0]))
            and max(abs(pts[0][k] - pts[2][k]) for k in range(2)) < 1e-10
        ):
            break
        cen = [(pts[0][k] + pts[1][k]) / 2 for k in range(2)]
        ref = [cen[k] + (cen[k] - pts[2][k]) for k in range(2)]
        fr = f(*ref)
        if fr > vals[0]:
            exp = [cen[k] + 2 * (cen[k] - pts[2][k]) for k in range(2)]
            fe = f(*exp)
            pts[2], vals[2] = (exp, fe) if fe > fr else (ref, fr)
        elif fr > vals[1]:
            pts[2], vals[2] = ref, fr
        else:
            con = [cen[k] + 0.5 * (pts[2][k] - cen[k]) for k in range(2)]
            fc = f(*con)
            if fc > vals[2]:
                pts[2], vals[2] = con, fc
            else:
                for i in (1, 2):
                    pts[i] = [pts[0][k] + 0.5 * (pts[i][k] - pts[0][k]) for k in range(2)]
                    vals[i] = f(*pts[i])
    best = max(range(3), key=lambda i: vals[i])
    return pts[best][0], pts[best][1]


def km_fit(
    ev: Sequence[float],
    ce: Sequence[float],
    parent_q: Sequence[float],
    parent_r: Sequence[float],
    weight: float,
    edges_s: Sequence[float],
) -> tuple[list[float], list[float], list[float], float]:
    n_bins = len(ev)
    total = sum(ev) + sum(ce)
    q: list[float] = []
    r: list[float] = []
    cumhaz = [0.0]
    deaths = exposure = 0.0
    for j in range(n_bins):
        at_risk = sum(ev[j:]) + sum(ce[j:])
        n_eff = at_risk - 0.5 * ce[j] + weight * parent_r[j]
        d_eff = ev[j] + weight * parent_r[j] * parent_q[j]
        qj = min(d_eff / n_eff if n_eff > 0 else 0.0, 1.0 - 1e-9)
        q.append(qj)
        r.append(n_eff / (total + weight) if total + weight > 0 else 0.0)
        cumhaz.append(cumhaz[-1] - math.log(1.0 - qj))
        deaths += d_eff
        exposure += n_eff * (edges_s[j + 1] - edges_s[j])
    rate = deaths / exposure if exposure > 0 else 0.0
    return q, r, cumhaz, max(rate, 1e-12)


def holdout_loglik(
    ev: Sequence[float],
    ce: Sequence[float],
    family: int,
    p1: float,
    p2: float,
    cumhaz: Sequence[float],
    log_edges: Sequence[float],
) -> float:
    def ls(x: float, j_edge: int) -> float:
        if family == 2:
            return -cumhaz[j_edge]
        return log_sf(family, p1, p2, [], 1.0, 0.0, 1.0, math.exp(x))

    total = 0.0
    for j, (e, c) in enumerate(zip(ev, ce, strict=True)):
        if e:
            a, b = ls(log_edges[j], j), ls(log_edges[j + 1], j + 1)
            # P(bin) = S(lo) (1 - S(hi)/S(lo)); expm1 keeps tiny hazards exact.
            total += e * (a + math.log(max(-math.expm1(b - a), 1e-300)))
        if c:
            xm = 0.5 * (log_edges[j] + log_edges[j + 1])
            total += c * (-0.5 * (cumhaz[j] + cumhaz[j + 1]) if family == 2 else ls(xm, 0))
    return total


def backlog(
    order: Sequence[int],
    zone_start: Sequence[int],
    crews: Sequence[int],
    quantile: Callable[[int, float, float], float],
    repair_class: Sequence[int],
    elapsed: Sequence[float],
    customers: Sequence[float],
    priority: Sequence[float],
    uniforms: Sequence[Sequence[float]],
    arrivals: Sequence[Sequence[Sequence[tuple[float, float, int, float]]]],
    travel_s: float,
    zone_fraction: float,
) -> tuple[list[list[float]], list[list[float]]]:
    """quantile(c, elapsed, u) -> total duration of repair class c (outage i's is
    repair_class[i]).
    arrivals[r][z]: (time, priority, class, uniform) of run r's future outages in zone z."""
    runs, n, n_zones = len(uniforms), len(elapsed), len(crews)
    finish = [[0.0] * n for _ in range(runs)]
    zone_done = [[0.0] * n_zones for _ in range(runs)]
    for r in range(runs):
        for z in range(n_zones):
            members = list(order[zone_start[z] : zone_start[z + 1]])
            if not members:
                continue
            busy = min(crews[z], len(members))
            free = [0.0] * crews[z]
            for k in range(busy):
                i = members[k]
                finish[r][i] = quantile(repair_class[i], elapsed[i], uniforms[r][i]) - elapsed[i]
                free[k] = finish[r][i]
            heapq.heapify(free)
            waiting_arrivals = sorted(arrivals[r][z])
            taken = [False] * len(waiting_arrivals)
            queue = members[busy:]
            while queue:
                now = free[0]
                # Highest-priority arrival already there; the earliest among equals.
                best = None
                for j, (t, p, _, _) in enumerate(waiting_arrivals):
                    if (
                        t <= now
                        and not taken[j]
                        and (best is None or p > waiting_arrivals[best][1])
                    ):
                        best = j
                i = queue[0]
                if best is not None and waiting_arrivals[best][1] > priority[i]:
                    taken[best] = True
                    _, _, c, u = waiting_arrivals[best]
                    done = now + travel_s + quantile(c, 0.0, u)
                else:
                    done = now + travel_s + quantile(repair_class[i], 0.0, uniforms[r][i])
                    finish[r][i] = done
                    queue.pop(0)
                heapq.heapreplace(free, done)
            done_list = sorted((finish[r][i], customers[i]) for i in members)
            need = zone_fraction * sum(customers[i] for i in members)
            acc = 0.0
            zone_done[r][z] = done_list[-1][0]
            for t, w in done_list:
                acc += w
                if acc >= need * (1 - 1e-12):
                    zone_done[r][z] = t
                    break
    return finish, zone_done
