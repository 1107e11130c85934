"""Years of past outages from the same fault/crew process, for fitting ETR models.

CSV columns (one row per sustained outage, momentaries excluded):
``outage_id, start_ts`` (RFC 3339 UTC), ``start_s`` (epoch), ``device_id, device_kind, zone,
cause, storm_level`` (0 calm .. 3 typhoon), ``planned`` (0/1), ``meters, customers,
duration_s`` (start to device restored; to the end of the history if still open),
``censored`` (1 when the outage was still open at the end, so the duration is a lower
bound), ``crew_wait_s`` (request to crew arrival), ``switched`` (0/1: partial restoration by
switching), ``hour_local, weekday_local, month`` (Indochina time, UTC+7).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np

from simulators._errors import check_non_negative, check_positive
from simulators._feeder import SimGrid
from simulators._messages import rfc3339_s
from simulators._world import YEAR_S, Storm, WorldParams, simulate_world

COLUMNS: Final = (
    "outage_id",
    "start_ts",
    "start_s",
    "device_id",
    "device_kind",
    "zone",
    "cause",
    "storm_level",
    "planned",
    "meters",
    "customers",
    "duration_s",
    "censored",
    "crew_wait_s",
    "switched",
    "hour_local",
    "weekday_local",
    "month",
)
_LOCAL: Final = timedelta(hours=7)


@dataclass(frozen=True)
class HistoryParams:
    years: float = 3.0
    storms_per_year: float = 6.0
    storm_median_s: float = 6 * 3600.0
    storm_factor: float = 40.0

    def __post_init__(self) -> None:
        check_positive("years", self.years)
        check_non_negative("storms_per_year", self.storms_per_year)
        check_positive("storm_median_s", self.storm_median_s)
        check_non_negative("storm_factor", self.storm_factor)


def generate_history(
    grid: SimGrid,
    *,
    seed: int,
    end_s: float,
    params: HistoryParams | None = None,
    world: WorldParams | None = None,
) -> list[dict[str, Any]]:
    """Rows (see module doc) for ``params.years`` before ``end_s``."""
    hp = params or HistoryParams()
    base = world or WorldParams()
    span = hp.years * YEAR_S
    rng = np.random.default_rng([seed, 0x68697374])
    zones = sorted(set(grid.topology.devices.zone.tolist()))
    n_storms = int(rng.poisson(hp.storms_per_year * hp.years))
    storms = tuple(
        Storm(
            zone=str(zones[int(rng.integers(0, len(zones)))]),
            at_s=float(rng.uniform(0, span)),
            duration_s=float(hp.storm_median_s * math.exp(0.5 * rng.standard_normal())),
            factor=hp.storm_factor * float(rng.choice([0.5, 1.0, 3.0], p=[0.5, 0.35, 0.15])),
            level=int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])),
        )
        for _ in range(n_storms)
    )
    wp = WorldParams(
        rates=base.rates,
        crew=base.crew,
        storms=base.storms + storms,
        faults=base.faults,
        planned=base.planned,
        random_faults=base.random_faults,
    )
    start_s = end_s - span
    res = simulate_world(grid, wp, start_s=start_s, duration_s=span, seed=seed, meter_truth=False)
    cust = grid.topology.meters.customer
    rows: list[dict[str, Any]] = []
    for o in res.outages:
        if o.momentary or o.start_s >= end_s:
            continue
        censored = o.end_s > end_s
        local = datetime.fromtimestamp(o.start_s, UTC) + _LOCAL
        rows.append(
            {
                "outage_id": f"H{len(rows) + 1:06d}",
                "start_ts": rfc3339_s(o.start_s),
                "start_s": round(o.start_s, 3),
                "device_id": o.device_id,
                "device_kind": o.device_kind,
                "zone": o.zone,
                "cause": o.cause,
                "storm_level": o.storm_level,
                "planned": int(o.planned),
                "meters": int(o.meters.size),
                "customers": int((cust[o.meters] >= 0).sum()),
                "duration_s": round(min(o.end_s, end_s) - o.start_s, 3),
                "censored": int(censored),
                "crew_wait_s": round(o.arrived_s - o.requested_s, 3)
                if not math.isnan(o.arrived_s)
                else "",
                "switched": int(not math.isnan(o.switched_s)),
                "hour_local": local.hour,
                "weekday_local": local.weekday(),
                "month": local.month,
            }
        )
    return rows


def write_history_csv(rows: list[dict[str, Any]], path: Path | str) -> int:
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def median_duration_s(rows: list[dict[str, Any]]) -> float:
    """The global-median ETR baseline: median duration of unplanned, uncensored outages."""
    d = [float(r["duration_s"]) for r in rows if not r["planned"] and not r["censored"]]
    return float(np.median(d)) if d else math.nan
