"""Storm / backlog ETR: a seeded Monte-Carlo simulation of each zone's crew queue.

Model (documented in docs/etr-model.md):
  * Each zone has ``crews`` crews; outages are served in priority order (priority desc, then
    the oldest first). The first ``crews`` outages are taken to be in work already: their
    remaining time is drawn from the quiet-day duration model of their class conditional on
    the time already elapsed.
  * Every other outage waits for the next free crew, then takes ``travel_s`` plus a repair
    time drawn from the quiet-day (storm level 0) model of its class: in quiet times there
    is no queue, so quiet-day durations are the best history of "crew time per job".
  * Outages still to come (``arrival_rate_per_s`` per zone, lasting ``arrival_horizons_s``
    [run, zone] from the caller's storm forecast, else an exponential time of mean
    ``arrival_horizon_s``): a Poisson number per run, at uniform times, each a copy
    (priority and class) of one of the zone's open outages drawn at random. A free crew
    takes the waiting job of highest priority, so a large outage that starts later is
    served before a small one waiting now (the way a utility dispatches in a storm).
  * A zone's global ETR is the time by which ``zone_fraction`` of its affected customers
    are restored, per run; quantiles are taken over runs.
Draws are inverse-CDF from uniforms the wrapper generates with ``numpy.random.default_rng
(seed)``, so a seed gives the same answer with or without the JIT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors.etr._classes import N_CLASSES, with_storm_level
from detectors.etr._conditional import DEFAULT_PROBS
from detectors.etr._model import SurvivalModel, conditional_quantile


@njit(cache=True, nogil=True)
def _sift_down(heap: npt.NDArray[np.float64], size: int) -> None:
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        if left + 1 < size and heap[left + 1] < heap[left]:
            child = left + 1
        if heap[child] < heap[i]:
            heap[i], heap[child] = heap[child], heap[i]
            i = child
        else:
            return


@njit(cache=True, nogil=True)
def _backlog_kernel(
    order: npt.NDArray[np.int64],
    zone_start: npt.NDArray[np.int64],
    crews: npt.NDArray[np.int64],
    repair_class: npt.NDArray[np.int64],
    elapsed_s: npt.NDArray[np.float64],
    customers: npt.NDArray[np.float64],
    priority: npt.NDArray[np.float64],
    uniforms: npt.NDArray[np.float64],
    arr_zone_start: npt.NDArray[np.int64],
    arr_time_s: npt.NDArray[np.float64],
    arr_priority: npt.NDArray[np.float64],
    arr_class: npt.NDArray[np.int64],
    arr_uniform: npt.NDArray[np.float64],
    family: npt.NDArray[np.int64],
    p1: npt.NDArray[np.float64],
    p2: npt.NDArray[np.float64],
    km_cumhaz: npt.NDArray[np.float64],
    tail_rate: npt.NDArray[np.float64],
    log_min: float,
    width: float,
    travel_s: float,
    zone_fraction: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Run r, zone z: future arrivals are ``arr_*[r, arr_zone_start[r, z]:arr_zone_start[r,
    z + 1]]``, sorted by ``arr_time_s`` (offset from now). A free crew takes the waiting job
    of highest priority; a known outage wins ties (it has waited longer)."""
    runs, n = uniforms.shape
    n_zones = crews.shape[0]
    finish = np.empty((runs, n))
    zone_done = np.zeros((runs, n_zones))
    max_arr = arr_time_s.shape[1]
    taken = np.zeros(max_arr, dtype=np.bool_)
    for r in range(runs):
        for z in range(n_zones):
            lo = zone_start[z]
            hi = zone_start[z + 1]
            m = hi - lo
            if m == 0:
                continue
            a_lo = arr_zone_start[r, z]
            a_hi = arr_zone_start[r, z + 1]
            for j in range(a_lo, a_hi):
                taken[j] = False
            n_crew = crews[z]
            heap = np.zeros(n_crew)
            busy = min(n_crew, m)
            for k in range(busy):
                i = order[lo + k]
                c = repair_class[i]
                t = conditional_quantile(
                    family[c],
                    p1[c],
                    p2[c],
                    km_cumhaz[c],
                    tail_rate[c],
                    log_min,
                    width,
                    elapsed_s[i],
                    uniforms[r, i],
                )
                finish[r, i] = t - elapsed_s[i]
                heap[k] = finish[r, i]
            heap.sort()  # a sorted array is a valid min-heap
            k = busy
            while k < m:
                now = heap[0]
                i = order[lo + k]
                best = -1
                for j in range(a_lo, a_hi):
                    if arr_time_s[r, j] > now:
                        break
                    if not taken[j] and (best < 0 or arr_priority[r, j] > arr_priority[r, best]):
                        best = j
                arrival = best >= 0 and arr_priority[r, best] > priority[i]
                if arrival:
                    taken[best] = True
                    c = arr_class[r, best]
                    u = arr_uniform[r, best]
                else:
                    c = repair_class[i]
                    u = uniforms[r, i]
                repair = conditional_quantile(
                    family[c],
                    p1[c],
                    p2[c],
                    km_cumhaz[c],
                    tail_rate[c],
                    log_min,
                    width,
                    0.0,
                    u,
                )
                done = now + travel_s + repair
                heap[0] = done
                _sift_down(heap, n_crew)
                if not arrival:
                    finish[r, i] = done
                    k += 1
            # Time by which zone_fraction of the zone's customers have power back.
            times = np.empty(m)
            weights = np.empty(m)
            total = 0.0
            for k in range(m):
                i = order[lo + k]
                times[k] = finish[r, i]
                weights[k] = customers[i]
                total += customers[i]
            idx = np.argsort(times)
            need = zone_fraction * total
            acc = 0.0
            zone_done[r, z] = times[idx[m - 1]]
            for k in range(m):
                acc += weights[idx[k]]
                if acc >= need * (1.0 - 1e-12):
                    zone_done[r, z] = times[idx[k]]
                    break
    return finish, zone_done


@dataclass(frozen=True)
class BacklogResult:
    """Offsets from now (s): per outage [n, len(probs)], per zone [n_zones, len(probs)]."""

    outage_remaining_s: npt.NDArray[np.float64]
    zone_remaining_s: npt.NDArray[np.float64]
    probs: npt.NDArray[np.float64]
    runs: int
    seed: int


def queue_order(
    zone_index: npt.NDArray[np.int64],
    priority: npt.NDArray[np.float64],
    elapsed_s: npt.NDArray[np.float64],
    n_zones: int,
    in_work: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Outages sorted by zone, then known to be in work (a crew on site) first, then priority
    desc, then oldest first; and zone offsets."""
    working = np.zeros(zone_index.shape[0]) if in_work is None else in_work.astype(np.float64)
    order = np.lexsort((-elapsed_s, -priority, -working, zone_index)).astype(np.int64)
    counts = np.bincount(zone_index, minlength=n_zones)
    zone_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return order, zone_start


def _draw_arrivals(
    rng: np.random.Generator,
    runs: int,
    zone_index: npt.NDArray[np.int64],
    priority: npt.NDArray[np.float64],
    repair_class: npt.NDArray[np.int64],
    rate_per_s: npt.NDArray[np.float64],
    horizon_s: float,
    max_arrivals: int,
    horizons_s: npt.NDArray[np.float64] | None = None,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
]:
    """Future outages per run, grouped by zone and sorted by time within a zone: (zone
    offsets [runs, n_zones + 1], time, priority, class, repair uniform [runs, width]).
    A run over ``max_arrivals`` has its zones' counts scaled down to fit. ``horizons_s``
    [runs, n_zones]: how long the rate lasts in each run and zone (the caller's storm
    forecast); None: exponential with mean ``horizon_s``, one per run."""
    n_zones = rate_per_s.shape[0]
    if horizons_s is not None:
        run_horizon_s = horizons_s
    else:
        # How long the recent rate lasts is unknown: exponential with mean ``horizon_s`` per
        # run (a fixed horizon gave intervals too narrow on the development seeds).
        one = rng.exponential(horizon_s, size=(runs, 1)) if horizon_s > 0 else np.zeros((runs, 1))
        run_horizon_s = np.broadcast_to(one, (runs, n_zones))  # one horizon a run, every zone
    counts = rng.poisson(rate_per_s[None, :] * run_horizon_s).astype(np.int64)
    # A zone with no open outage has nothing to copy a size from.
    counts[:, np.bincount(zone_index, minlength=n_zones) == 0] = 0
    over = counts.sum(axis=1) > max_arrivals
    if np.any(over):  # scale down proportionally, keeping the total within the cap
        scaled = counts[over] * max_arrivals // counts[over].sum(axis=1, keepdims=True)
        counts[over] = scaled
    width = max(int(counts.sum(axis=1).max()) if runs else 0, 1)
    zone_off = np.zeros((runs, n_zones + 1), dtype=np.int64)
    zone_off[:, 1:] = np.cumsum(counts, axis=1)
    t = np.full((runs, width), np.inf)
    prio = np.zeros((runs, width))
    cls = np.zeros((runs, width), dtype=np.int64)
    u = np.full((runs, width), 0.5)
    members = [np.flatnonzero(zone_index == z) for z in range(n_zones)]
    for r in range(runs):
        for z in range(n_zones):
            c = int(counts[r, z])
            if c == 0:
                continue
            lo = int(zone_off[r, z])
            t[r, lo : lo + c] = np.sort(rng.uniform(0.0, float(run_horizon_s[r, z]), c))
            pick = members[z][rng.integers(0, members[z].size, c)]
            prio[r, lo : lo + c] = priority[pick]
            cls[r, lo : lo + c] = repair_class[pick]
            u[r, lo : lo + c] = np.clip(rng.random(c), 1e-9, 1.0 - 1e-9)
    return zone_off, t, prio, cls, u


def backlog_etr(
    model: SurvivalModel,
    class_code: npt.NDArray[np.int64],
    elapsed_s: npt.NDArray[np.float64],
    zone_index: npt.NDArray[np.int64],
    priority: npt.NDArray[np.float64],
    customers: npt.NDArray[np.float64],
    crews_per_zone: npt.NDArray[np.int64],
    *,
    runs: int = 200,
    seed: int = 0,
    travel_s: float = 1800.0,
    zone_fraction: float = 0.9,
    probs: npt.NDArray[np.float64] = DEFAULT_PROBS,
    in_work: npt.NDArray[np.bool_] | None = None,
    arrival_rate_per_s: npt.NDArray[np.float64] | None = None,
    arrival_horizon_s: float = 0.0,
    arrival_horizons_s: npt.NDArray[np.float64] | None = None,
    max_arrivals: int = 5000,
) -> BacklogResult:
    """Simulate the crew queues; see the module docstring for the model."""
    n = class_code.shape[0]
    for name, arr, dtype in (
        ("class_code", class_code, np.int64),
        ("elapsed_s", elapsed_s, np.float64),
        ("zone_index", zone_index, np.int64),
        ("priority", priority, np.float64),
        ("customers", customers, np.float64),
    ):
        if arr.dtype != dtype or arr.shape != (n,):
            raise ValueError(f"{name} must be {np.dtype(dtype).name}[{n}]")
    if crews_per_zone.dtype != np.int64 or crews_per_zone.ndim != 1 or crews_per_zone.size == 0:
        raise ValueError("crews_per_zone must be a non-empty 1-D int64 array")
    n_zones = crews_per_zone.shape[0]
    if np.any(crews_per_zone < 1) or np.any(crews_per_zone > 100_000):
        raise ValueError("every zone needs between 1 and 100000 crews")
    if n and (zone_index.min() < 0 or zone_index.max() >= n_zones):
        raise ValueError("zone_index out of range of crews_per_zone")
    if n and (class_code.min() < 0 or class_code.max() >= N_CLASSES):
        raise ValueError("class codes out of range")
    if not (np.all(np.isfinite(elapsed_s) & (elapsed_s >= 0)) and np.all(np.isfinite(priority))):
        raise ValueError("elapsed_s must be finite and >= 0, priority finite")
    if not np.all(np.isfinite(customers) & (customers >= 0)):
        raise ValueError("customers must be finite and >= 0")
    if not (1 <= runs <= 100_000 and 0.0 < zone_fraction <= 1.0 and 0.0 <= travel_s < 86400.0):
        raise ValueError("runs in 1..100000, zone_fraction in (0, 1], travel_s in [0, 1 day)")
    if in_work is not None and (in_work.dtype != np.bool_ or in_work.shape != (n,)):
        raise ValueError(f"in_work must be bool[{n}]")
    rate = np.zeros(n_zones) if arrival_rate_per_s is None else arrival_rate_per_s
    if rate.dtype != np.float64 or rate.shape != (n_zones,):
        raise ValueError(f"arrival_rate_per_s must be float64[{n_zones}]")
    if not (np.all(np.isfinite(rate)) and np.all(rate >= 0.0)):
        raise ValueError("arrival_rate_per_s must be finite and >= 0")
    if not (0.0 <= arrival_horizon_s <= 7 * 86400.0) or not (0 <= max_arrivals <= 1_000_000):
        raise ValueError("arrival_horizon_s in [0, 7 days], max_arrivals in 0..1000000")
    if arrival_horizons_s is not None:
        h = arrival_horizons_s
        if h.dtype != np.float64 or h.shape != (runs, n_zones):
            raise ValueError(f"arrival_horizons_s must be float64[{runs}, {n_zones}]")
        if not np.all(np.isfinite(h) & (h >= 0.0) & (h <= 7 * 86400.0)):
            raise ValueError("arrival_horizons_s must be finite, in [0, 7 days]")
    order, zone_start = queue_order(zone_index, priority, elapsed_s, n_zones, in_work)
    rng = np.random.default_rng(seed)
    # Kept off the exact 0/1 ends where a quantile is infinite.
    uniforms = np.clip(rng.random((runs, n)), 1e-9, 1.0 - 1e-9)
    repair_class = with_storm_level(class_code, 0)
    arrivals = _draw_arrivals(
        rng,
        runs,
        zone_index,
        priority,
        repair_class,
        rate,
        arrival_horizon_s,
        max_arrivals,
        arrival_horizons_s,
    )
    # Zones where nobody is counted as a customer fall back to one per outage.
    weights = customers.copy()
    zone_customers = np.bincount(zone_index, weights=customers, minlength=n_zones)
    weights[zone_customers[zone_index] <= 0] = 1.0
    finish, zone_done = _backlog_kernel(
        order,
        zone_start,
        crews_per_zone,
        repair_class,
        elapsed_s,
        weights,
        priority,
        uniforms,
        *arrivals,
        model.family,
        model.p1,
        model.p2,
        model.km_cumhaz,
        model.tail_rate,
        model.grid.log_min,
        model.grid.width,
        travel_s,
        zone_fraction,
    )
    per_outage = np.quantile(finish, probs, axis=0).T if n else np.zeros((0, probs.size))
    per_zone = np.quantile(zone_done, probs, axis=0).T
    empty = np.bincount(zone_index, minlength=n_zones) == 0
    per_zone[empty] = 0.0
    return BacklogResult(per_outage, per_zone, probs, runs, seed)
