"""Restoration times of one fault drawn from the world's own stage distributions.

For the ETR information bound (``benchmarks.etr_accuracy --bound``): the best any estimator
can do at first notice is the median of the restoration time given everything knowable
then, and the world's parameters say exactly what that distribution is. For a fault whose
crew is free when requested, ``simulate_world`` composes:

    request = fault + dispatch delay
    leave   = request [+ call-out if off shift]
    arrive  = leave + travel x travel factor at departure
    end     = arrive + (patrol + repair) x darkness factor at arrival

This module draws that composition for many futures at once; the event loop in
``simulators._world`` draws one future per fault, interleaved with every other fault's
draws, so it cannot share the code. ``tests/test_restoration_sampler.py`` holds the two
equal in distribution, so they cannot drift apart unnoticed.
"""

from __future__ import annotations

import math

import numpy as np

from simulators._errors import SimulatorError, check_count
from simulators._world import CALM_CAUSE_P, CAUSES, STORM_CAUSE_P, CrewParams


def _lognormal(rng: np.random.Generator, median_s: float, sigma: float, n: int) -> np.ndarray:
    return median_s * np.exp(sigma * rng.standard_normal(n))


def cause_prior(storm_level: int) -> tuple[float, ...]:
    """The world's cause shares for a random fault at this storm level (0 = calm)."""
    return STORM_CAUSE_P if storm_level else CALM_CAUSE_P


def sample_restoration_s(
    crew: CrewParams,
    *,
    device_kind: str,
    fault_s: float,
    section_meters: int,
    n: int,
    rng: np.random.Generator,
    cause: str | None = None,
    storm_level: int = 0,
) -> np.ndarray:
    """``n`` restoration durations (fault to repair) of one fault with a free crew.

    ``cause=None`` mixes over the world's cause shares at ``storm_level`` (what is known
    before a crew reports); a named cause fixes it. Partial restoration by switching does
    not end the outage, so it is not drawn.
    """
    check_count("n", n, 1)
    if cause is not None and cause not in CAUSES:
        raise SimulatorError(f"cause {cause!r} is not one of {', '.join(CAUSES)}")
    request = fault_s + _lognormal(rng, crew.dispatch_median_s, crew.sigma, n)
    leave = request.copy()
    if crew.callout_median_s > 0:
        off = np.array([not crew.on_shift(float(t)) for t in request])
        leave[off] += _lognormal(rng, crew.callout_median_s, crew.callout_sigma, int(off.sum()))
    travel_factor = np.array([crew.travel_factor(float(t)) for t in leave])
    arrive = leave + _lognormal(rng, crew.travel_median_s, crew.sigma, n) * travel_factor
    if cause is None:
        picks = rng.choice(len(CAUSES), n, p=cause_prior(storm_level))
        medians = np.array([crew.repair_median_for(device_kind, c) for c in CAUSES])[picks]
    else:
        medians = np.full(n, crew.repair_median_for(device_kind, cause))
    work = medians * np.exp(crew.sigma * rng.standard_normal(n))
    patrol_median = crew.patrol_median_s(device_kind, section_meters)
    if patrol_median > 0:
        work += _lognormal(rng, patrol_median, crew.patrol_sigma, n)
    dark = np.array([crew.work_factor(float(t)) for t in arrive])
    out: np.ndarray = arrive + work * dark - fault_s
    return out


def restoration_quantiles_s(
    crew: CrewParams,
    *,
    device_kind: str,
    fault_s: float,
    section_meters: int,
    elapsed_s: float,
    rng: np.random.Generator,
    cause: str | None = None,
    storm_level: int = 0,
    n: int = 4000,
) -> tuple[float, float, float]:
    """P10 / P50 / P90 of the total duration given the outage is still open at
    ``elapsed_s``: the P50 is the minimum-absolute-error ETR under the world's law."""
    d = sample_restoration_s(
        crew,
        device_kind=device_kind,
        fault_s=fault_s,
        section_meters=section_meters,
        n=n,
        rng=rng,
        cause=cause,
        storm_level=storm_level,
    )
    alive = d[d > elapsed_s]
    if alive.size < 50:
        # Far in the tail: too few futures left to say more than "soon".
        return (elapsed_s, elapsed_s + 300.0, elapsed_s + 900.0)
    p10, p50, p90 = np.quantile(alive, [0.1, 0.5, 0.9])
    if not math.isfinite(p50):
        raise SimulatorError("restoration sample is not finite")
    return float(p10), float(p50), float(p90)
