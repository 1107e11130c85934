"""Storm / backlog ETR: a seeded Monte-Carlo simulation of each zone's crew queue.

Model (documented in docs/etr-model.md):
  * Each zone has ``crews`` crews; outages are served in priority order (priority desc, then
    the oldest first). The first ``crews`` outages are taken to be in work already: their
    remaining time is drawn from the quiet-day duration model of their class conditional on
    the time already elapsed.
  * Every other outage waits for the next free crew, then takes ``travel_s`` plus a repair
    time drawn from the quiet-day (storm level 0) model of its class: in quiet times there
    is no queue, so quiet-day durations are the best history of "crew time per job".
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
    uniforms: npt.NDArray[np.float64],
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
    runs, n = uniforms.shape
    n_zones = crews.shape[0]
    finish = np.empty((runs, n))
    zone_done = np.zeros((runs, n_zones))
    for r in range(runs):
        for z in range(n_zones):
            lo = zone_start[z]
            hi = zone_start[z + 1]
            m = hi - lo
            if m == 0:
                continue
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
            for k in range(busy, m):
                i = order[lo + k]
                c = repair_class[i]
                repair = conditional_quantile(
                    family[c],
                    p1[c],
                    p2[c],
                    km_cumhaz[c],
                    tail_rate[c],
                    log_min,
                    width,
                    0.0,
                    uniforms[r, i],
                )
                done = heap[0] + travel_s + repair
                finish[r, i] = done
                heap[0] = done
                _sift_down(heap, n_crew)
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
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Outages sorted by zone, then priority desc, then oldest first; and zone offsets."""
    order = np.lexsort((-elapsed_s, -priority, zone_index)).astype(np.int64)
    counts = np.bincount(zone_index, minlength=n_zones)
    zone_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return order, zone_start


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
    order, zone_start = queue_order(zone_index, priority, elapsed_s, n_zones)
    rng = np.random.default_rng(seed)
    # Kept off the exact 0/1 ends where a quantile is infinite.
    uniforms = np.clip(rng.random((runs, n)), 1e-9, 1.0 - 1e-9)
    # Zones where nobody is counted as a customer fall back to one per outage.
    weights = customers.copy()
    zone_customers = np.bincount(zone_index, weights=customers, minlength=n_zones)
    weights[zone_customers[zone_index] <= 0] = 1.0
    finish, zone_done = _backlog_kernel(
        order,
        zone_start,
        crews_per_zone,
        with_storm_level(class_code, 0),
        elapsed_s,
        weights,
        uniforms,
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
