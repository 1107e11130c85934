"""ETRs for the open outages: the survival model, the crew queue in a backlog, overrides.

Which source wins, per outage:
  1. an override in force whose time is still ahead (``override``);
  2. in a zone with more open outages than crews, the crew-queue simulation (``backlog``);
  3. otherwise the conditional survival model of the outage's class (``model``).
An override whose time has passed without restoration is reported as expired and the
outage gets a model ETR at once: an ETR is never left in the past.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.etr import (
    DEFAULT_PROBS,
    DEVICE_KINDS,
    BacklogResult,
    StormThresholds,
    SurvivalModel,
    backlog_etr,
    cause_code,
    conditional_etr,
    decode_class,
    encode_classes,
    kind_code,
    tod_band,
)


@dataclass(frozen=True)
class EtrConfig:
    thresholds: StormThresholds = field(default_factory=StormThresholds)
    utc_offset_s: float = 7 * 3600.0  # the utility's local time (Asia/Ho_Chi_Minh, no DST)
    crews_per_zone: Mapping[str, int] = field(default_factory=dict)
    default_crews: int = 4
    # One pool of this many crews serving every zone (one crew queue), instead of crews per
    # zone: a small utility's crews go wherever the next job is.
    shared_crews: int | None = None
    # Extra crew time per queued job beyond a quiet-day outage duration, which already
    # includes the crew's travel (1800 here double-counted it on the development seeds).
    travel_s: float = 0.0
    backlog_runs: int = 200
    # Where no crew status is known in a queue (no OMS feed), which outages crews are
    # working on is unknown: mix the crew queue run with the highest-priority outages in
    # work and the run with the oldest in work (no crew is pulled off a job). False: the
    # highest-priority ones only.
    unknown_crews_mix: bool = True
    # Log-time sd added to a crew-queue (backlog) interval whose inputs come from no local
    # history (the bundled prior or another grid's fit) and whose backlog scale was not
    # measured: the queue's per-job times and storm classes are not the grid's, and a storm
    # on an unfamiliar grid outlasts the queue's arrival forecast. Chosen on the storm's
    # development seeds through the service (docs/accuracy-etr.md, third session).
    queue_log_sd: float = 0.4
    seed: int = 0
    zone_fraction: float = 0.9
    # Outages still to come in a backlogged queue, the storm-length forecast
    # (``storm_forecast``, docs/etr-model.md "Storm length"): the storm's rate is the queue's
    # open outages over the time since the first of them started (at least
    # ``storm_min_age_s``); the storm, having lasted A (first to last start, at least
    # ``storm_min_age_s``), goes on past its last outage for R with P(R > r) = 1 / (1 + r /
    # (storm_remaining_ratio * A)) (median ratio * A: 0.5, half as long again as it has
    # lasted; 1 would be as long again), capped at ``storm_max_remaining_s``; the quiet time
    # since the last outage weighs each R by the Poisson chance of that silence,
    # exp(-rate * min(R, quiet)). Ratio chosen on the storm's development seeds through the
    # service (docs/accuracy-etr.md, fourth session); the rest are not tuned.
    storm_forecast: bool = True
    storm_min_age_s: float = 3600.0
    storm_remaining_ratio: float = 0.5
    storm_max_remaining_s: float = 86400.0
    # The previous forecast (``storm_forecast`` False): the rate of the open outages that
    # started in the last ``arrival_window_s``, lasting an exponential time of mean
    # ``arrival_horizon_s`` (0 = no arrivals), chosen on the simulator's own storm grid.
    arrival_window_s: float = 3600.0
    arrival_horizon_s: float = 5400.0
    critical_weight: float = 50.0  # one critical load counts like 50 ordinary customers
    min_remaining_s: float = 300.0
    max_override_ahead_s: float = 14 * 86400.0
    min_override_ahead_s: float = 60.0
    # Refits derive the storm thresholds from the history's own concurrency (stored with the
    # model, which was fitted with them); False keeps ``thresholds`` for every model.
    calibrate_thresholds: bool = True
    # Refits measure interval scales on a held-out backtest (``_calibration``).
    calibrate_intervals: bool = True
    # A fit's device kinds shrink toward the bundled prior's kinds rather than the history's
    # own outages pooled over kinds (gridwatch.etr._prior; docs/etr-model.md, "Provenance
    # and unfamiliar grids"). False: the pooled root, as before 2026-12-08.
    prior_root: bool = True
    # An outage seen later than it started (``OpenOutage.seen_at_s``) is a repair from its
    # sighting: its age, time of day and place in the crew queue count from then, not from
    # the start of the outage above it (docs/etr-model.md, "Outages found later"). False:
    # from its recorded start, as before 2026-12-08.
    repair_from_sighting: bool = True
    # Another grid's fit's widening (log-time sd); None: the calibrated FOREIGN_LOG_SD.
    foreign_log_sd: float | None = None

    def crews(self, zone: str) -> int:
        if self.shared_crews is not None:
            return int(self.shared_crews)
        return int(self.crews_per_zone.get(zone, self.default_crews))

    def queue_of(self, zone: str) -> str:
        """The crew queue an outage in ``zone`` waits in."""
        return SHARED_QUEUE if self.shared_crews is not None else zone


SHARED_QUEUE = "*"  # the one queue of a shared crew pool


@dataclass(frozen=True)
class OpenOutage:
    outage_id: int
    zone: str
    device_kind: str | None
    cause: str | None
    started_at_s: float
    customers_affected: int = 0
    critical_customers: int = 0
    open_at_start: int | None = None  # outages open when it started (storm level); None = now
    # A crew is dispatched to it or on site: it is in work, not waiting in the crew queue.
    crew_assigned: bool = False
    # When its fault could first be seen, for an outage recorded from an earlier start: a
    # fault on a line already dark (under an outage above) is found when that line is
    # re-energised, and only then is a crew asked for. None: at its start.
    seen_at_s: float | None = None


@dataclass(frozen=True)
class Override:
    override_id: int
    etr_at_s: float
    reason: str
    set_by: str


@dataclass(frozen=True)
class EtrEstimate:
    outage_id: int
    p10_s: float
    p50_s: float
    p90_s: float
    source: str  # "model" | "backlog" | "override"
    model_version: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class ZoneEtr:
    """The storm-style global ETR: when ``fraction`` of the zone's affected customers are back."""

    zone: str
    open_outages: int
    customers_affected: int
    crews: int
    fraction: float
    p10_s: float
    p50_s: float
    p90_s: float


@dataclass(frozen=True)
class EtrBatch:
    estimates: list[EtrEstimate]
    zones: list[ZoneEtr]
    expired_overrides: list[int]  # outage ids whose override time passed unrestored


MIN_SCALE = 0.5
MAX_SCALE = 4.0
CALIBRATED_MIN_ITEMS = 30  # held-out outages behind a measured scale (``_calibration``)


@dataclass(frozen=True)
class IntervalScale:
    """Stretch of the P10 / P90 half-widths in log remaining time (see ``_calibration``)."""

    lower: float = 1.0
    upper: float = 1.0
    n: int = 0  # held-out outages it was measured on

    def to_list(self) -> list[float]:
        return [self.lower, self.upper, float(self.n)]


def interval_scales(model: SurvivalModel) -> dict[str, IntervalScale]:
    """The calibration stored with the model; malformed or out-of-range entries are ignored
    (scale 1), so a hand-edited model cannot produce absurd intervals."""
    got: Any = model.info.get("interval_scale")
    out: dict[str, IntervalScale] = {}
    if not isinstance(got, dict):
        return out
    for k, v in got.items():
        try:
            lo, hi, n = (float(x) for x in v)
        except (TypeError, ValueError):
            continue
        if MIN_SCALE <= lo <= MAX_SCALE and MIN_SCALE <= hi <= MAX_SCALE and n >= 0:
            out[str(k)] = IntervalScale(lo, hi, int(n))
    return out


def _scaled(now_s: float, q: np.ndarray, scale: IntervalScale, floor_s: float) -> np.ndarray:
    r = np.maximum(q - now_s, floor_s)
    l10, l50, l90 = np.log(r)
    lo = l50 - scale.lower * (l50 - l10)
    hi = l50 + scale.upper * (l90 - l50)
    out = now_s + np.maximum(np.exp(np.array([lo, l50, hi])), floor_s)
    return np.asarray(np.maximum.accumulate(out), dtype=np.float64)


# Where a model's classes were learnt (``model.info["provenance"]``): on this utility's own
# outages (``local``: a refit on the database, or ``gridwatch etr fit`` of its own history),
# the bundled prior (``prior``), or another grid's history (``foreign``). A model without the
# entry is local, except the bundled prior, which has always carried ``info["prior"]``.
PROVENANCES = ("local", "prior", "foreign")
# The log-time standard deviation of a class's location on a grid its model was not fitted
# on, added in quadrature to the P10 / P90 half-widths (times z90). Calibrated on the
# cross-grid tuning seeds (``python -m benchmarks.etr_accuracy --cross-grid --seed-set
# dev``): the value that puts 80% of the pooled tuning outages inside P10-P90. Another
# grid's fit was 0.30 while the kinds its history lacked took its other kinds pooled. With
# them taken from the prior (``EtrConfig.prior_root``, widened as the prior) 0 already
# gives 80.3% and 0.10 80.9%: kept at 0.10, an allowance, because those grids share one
# simulated world's crews and repair laws and so understate how far two real utilities
# differ (docs/accuracy-etr.md, "Fifth session").
FOREIGN_LOG_SD: Mapping[str, float] = {"prior": 0.22, "foreign": 0.10}
# A class backed by n restored local outages keeps n0 / (n0 + n) of the widening in variance
# (the fit's own shrinkage pseudo-count): it fades as the local history grows.
LOCAL_PSEUDO_COUNT = 20.0
Z90 = 1.2815515655446004  # standard normal 90% quantile


@dataclass(frozen=True)
class Provenance:
    source: str = "local"  # one of PROVENANCES
    fitted_on: str = ""  # what the history was (a grid, a file, "bundled prior")

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "fitted_on": self.fitted_on}


def set_provenance(model: SurvivalModel, source: str, *, fitted_on: str = "") -> None:
    """Record where the model's classes were learnt (stored with the model's info)."""
    if source not in PROVENANCES:
        raise ValueError(f"provenance must be one of {', '.join(PROVENANCES)}, got {source!r}")
    model.info["provenance"] = Provenance(source, fitted_on).to_dict()


def model_provenance(model: SurvivalModel) -> Provenance:
    got = model.info.get("provenance")
    if isinstance(got, dict) and got.get("source") in PROVENANCES:
        return Provenance(str(got["source"]), str(got.get("fitted_on", "")))
    if "prior" in model.info:
        return Provenance("prior", "bundled prior")
    return Provenance()


def local_restored_by_kind(model: SurvivalModel) -> np.ndarray:
    """Restored local outages behind each device kind's classes (0 for a model that was not
    fitted on this grid's outages)."""
    per_kind = len(model.n_events) // len(DEVICE_KINDS)
    if model_provenance(model).source != "local":
        return np.zeros(len(DEVICE_KINDS))
    events = np.asarray(model.n_events, dtype=np.float64).reshape(len(DEVICE_KINDS), per_kind)
    return np.asarray(events.sum(axis=1), dtype=np.float64)


def widening_log_sd(
    provenance: Provenance,
    local_restored: float,
    calibrated: bool,
    *,
    rooted: bool = False,
    allowances: Mapping[str, float] = FOREIGN_LOG_SD,
) -> float:
    """The log-time sd added to an interval: the cross-grid allowance of the model's source,
    faded by the local outages behind the class. A local model whose intervals were
    calibrated on its own held-out outages needs none; an uncalibrated local model (a short
    history) carries an allowance faded by its own outages: the prior's when its kinds are
    rooted in the prior's (``rooted``: they are mostly the prior's until its outages come
    in), else another grid's."""
    if provenance.source == "local":
        if calibrated:
            return 0.0
        tau = allowances["prior" if rooted else "foreign"]
    else:
        tau = allowances[provenance.source]
    return tau * math.sqrt(LOCAL_PSEUDO_COUNT / (LOCAL_PSEUDO_COUNT + max(local_restored, 0.0)))


def _widened(now_s: float, q: np.ndarray, log_sd: float, floor_s: float) -> np.ndarray:
    """P10 / P90 moved away from an unchanged P50: half-widths in log remaining time grow
    to sqrt(w^2 + (z90 * log_sd)^2), the interval of a location known only to ``log_sd``."""
    r = np.maximum(q - now_s, floor_s)
    l10, l50, l90 = np.log(r)
    extra = (Z90 * log_sd) ** 2
    lo = l50 - math.sqrt((l50 - l10) ** 2 + extra)
    hi = l50 + math.sqrt((l90 - l50) ** 2 + extra)
    out = now_s + np.maximum(np.exp(np.array([lo, l50, hi])), floor_s)
    return np.asarray(np.maximum.accumulate(out), dtype=np.float64)


def set_model_thresholds(model: SurvivalModel, thresholds: StormThresholds) -> None:
    """Record the storm thresholds a model was fitted with: its storm classes mean them."""
    model.info["storm_thresholds"] = [thresholds.elevated, thresholds.storm, thresholds.major]


def model_thresholds(model: SurvivalModel, default: StormThresholds) -> StormThresholds:
    """The thresholds the model was fitted with, else ``default`` (models fitted on
    histories that carry their own storm level, e.g. the bundled prior)."""
    got = model.info.get("storm_thresholds")
    if isinstance(got, list) and len(got) == 3:
        try:
            return StormThresholds(int(got[0]), int(got[1]), int(got[2]))
        except (TypeError, ValueError):
            return default
    return default


def priority_score(
    customers_affected: int, critical_customers: int, critical_weight: float
) -> float:
    return float(customers_affected) + critical_weight * float(critical_customers)


def _oldest_in_work(
    in_work: np.ndarray, started: np.ndarray, zone_index: np.ndarray, crews: np.ndarray
) -> np.ndarray:
    """Crews on the oldest open outages of every queue where no crew status is known."""
    out = in_work.copy()
    reported = np.bincount(zone_index[in_work], minlength=crews.size) > 0
    for z in np.flatnonzero(~reported):
        members = np.flatnonzero(zone_index == z)
        out[members[np.argsort(started[members], kind="stable")][: int(crews[z])]] = True
    return out


@dataclass(frozen=True)
class StormForecast:
    """Outages still to come, per crew queue: the storm's rate, and per run how long it goes
    on from now (0: it is over)."""

    rate_per_s: np.ndarray  # [queues]
    horizons_s: np.ndarray  # [runs, queues]
    lasted_s: np.ndarray  # [queues] the storm's length so far: first to last start, floored
    quiet_s: np.ndarray  # [queues] since the last outage started


def storm_forecast(
    started: np.ndarray,
    zone_index: np.ndarray,
    n_zones: int,
    now_s: float,
    runs: int,
    cfg: EtrConfig,
    *,
    seed: int,
) -> StormForecast:
    """The storm-length forecast of ``EtrConfig`` (``storm_forecast``), per queue. The
    storm is the queue's open outages: its rate is their number over the time since the
    first started; it has lasted A = last start - first start (both floored at
    ``storm_min_age_s``). Its remaining length past the last outage is drawn per run from
    P(R > r) = 1 / (1 + r / (ratio * A)): median ratio * A, a heavy tail (with ratio 1, a
    storm seen at a random moment of its life is as likely to go on longer than it has
    lasted as shorter), capped at ``storm_max_remaining_s``. 4 x runs candidates are weighted
    by exp(-rate * min(R, quiet)), the chance of the silence since the last outage had the
    storm gone on, and ``runs`` drawn from them. Horizon from now: max(R - quiet, 0). The
    queue sees only open outages: restored ones of the same storm are not counted."""
    rng = np.random.default_rng(seed)
    floor_s = max(cfg.storm_min_age_s, 1.0)
    rate = np.zeros(n_zones)
    lasted = np.zeros(n_zones)
    quiet = np.zeros(n_zones)
    horizons = np.zeros((runs, n_zones))
    for z in range(n_zones):
        s = np.minimum(started[zone_index == z], now_s)
        if s.size == 0:
            continue
        first, last = float(s.min()), float(s.max())
        rate[z] = s.size / max(now_s - first, floor_s)
        lasted[z] = max(last - first, floor_s)
        quiet[z] = now_s - last
        if cfg.storm_remaining_ratio <= 0.0 or cfg.storm_max_remaining_s <= 0.0:
            continue
        u = np.clip(rng.random(4 * runs), 1e-9, 1.0 - 1e-9)
        left = np.minimum(
            cfg.storm_remaining_ratio * lasted[z] * u / (1.0 - u), cfg.storm_max_remaining_s
        )
        w = np.exp(-rate[z] * np.minimum(left, quiet[z]))
        if not (np.isfinite(w.sum()) and w.sum() > 0.0):
            continue
        pick = rng.choice(left.size, size=runs, p=w / w.sum())
        horizons[:, z] = np.maximum(left[pick] - quiet[z], 0.0)
    return StormForecast(rate, horizons, lasted, quiet)


def _backlog_mixture(
    hypotheses: Sequence[np.ndarray],
    model: SurvivalModel,
    codes: np.ndarray,
    elapsed: np.ndarray,
    zone_index: np.ndarray,
    priority: np.ndarray,
    customers: np.ndarray,
    crews: np.ndarray,
    *,
    cfg: EtrConfig,
    arrival_rate: np.ndarray,
    arrival_horizons: np.ndarray | None,
) -> BacklogResult:
    """The crew queue simulated once per hypothesis of which outages are in work, the runs
    split evenly between them and pooled: quantiles of the mixture."""
    k = len(hypotheses)
    runs = max(cfg.backlog_runs // k, 1)
    if k == 1:
        probs = DEFAULT_PROBS
    else:  # every run's own value (order statistics), to pool the hypotheses' runs
        probs = np.linspace(0.0, 1.0, runs) if runs > 1 else np.array([0.5])
    got = [
        backlog_etr(
            model,
            codes,
            elapsed,
            zone_index,
            priority,
            customers,
            crews,
            runs=runs,
            seed=cfg.seed + h,
            travel_s=cfg.travel_s,
            zone_fraction=cfg.zone_fraction,
            probs=probs,
            in_work=in_work,
            arrival_rate_per_s=arrival_rate,
            arrival_horizon_s=cfg.arrival_horizon_s,
            arrival_horizons_s=arrival_horizons,
        )
        for h, in_work in enumerate(hypotheses)
    ]
    if k == 1:
        return got[0]

    def pooled(parts: list[np.ndarray]) -> np.ndarray:
        both = np.concatenate(parts, axis=1)
        return np.asarray(np.quantile(both, DEFAULT_PROBS, axis=1).T, dtype=np.float64)

    return BacklogResult(
        pooled([g.outage_remaining_s for g in got]),
        pooled([g.zone_remaining_s for g in got]),
        DEFAULT_PROBS,
        runs * k,
        cfg.seed,
    )


def estimate_etrs(
    model: SurvivalModel,
    model_version: str,
    outages: Sequence[OpenOutage],
    now_s: float,
    *,
    config: EtrConfig | None = None,
    overrides: Mapping[int, Override] | None = None,
) -> EtrBatch:
    """ETRs (absolute epoch seconds) for every open outage at ``now_s``. CPU-bound: call it
    through ``asyncio.to_thread`` from async code."""
    cfg = config or EtrConfig()
    overrides = overrides or {}
    n = len(outages)
    if n == 0:
        return EtrBatch([], [], [])
    started = np.array([o.started_at_s for o in outages], dtype=np.float64)
    # The repair's clock: from the start, or from the sighting of a fault found later.
    repair_from = started.copy()
    if cfg.repair_from_sighting:
        seen = np.array([o.seen_at_s or -np.inf for o in outages], dtype=np.float64)
        repair_from = np.minimum(np.maximum(started, seen), now_s)
    open_now = np.array(
        [o.open_at_start if o.open_at_start is not None else n for o in outages], dtype=np.int64
    )
    thresholds = model_thresholds(model, cfg.thresholds)
    scales = interval_scales(model)
    provenance = model_provenance(model)
    local_by_kind = local_restored_by_kind(model)
    rooted = "kind_root" in model.info
    from_root = frozenset(model.info.get("kinds_from_root") or ())
    allowances = dict(FOREIGN_LOG_SD)
    if cfg.foreign_log_sd is not None:
        allowances["foreign"] = cfg.foreign_log_sd
    storm = thresholds.level(open_now)
    codes = encode_classes(
        np.array([kind_code(o.device_kind) for o in outages], dtype=np.int64),
        storm,
        np.array([cause_code(o.cause) for o in outages], dtype=np.int64),
        tod_band(repair_from, cfg.utc_offset_s),
    )
    model_etr = conditional_etr(
        model, codes, repair_from, now_s, DEFAULT_PROBS, min_remaining_s=cfg.min_remaining_s
    )
    elapsed = np.maximum(now_s - repair_from, 0.0)

    zone_names = sorted({cfg.queue_of(o.zone) for o in outages})
    zone_idx = {z: i for i, z in enumerate(zone_names)}
    zone_index = np.array([zone_idx[cfg.queue_of(o.zone)] for o in outages], dtype=np.int64)
    crews = np.array([max(cfg.crews(z), 1) for z in zone_names], dtype=np.int64)
    customers = np.array([max(o.customers_affected, 0) for o in outages], dtype=np.float64)
    priority = np.array(
        [
            priority_score(o.customers_affected, o.critical_customers, cfg.critical_weight)
            for o in outages
        ],
        dtype=np.float64,
    )
    in_work = np.array([o.crew_assigned for o in outages], dtype=np.bool_)
    oldest_in_work = _oldest_in_work(in_work, repair_from, zone_index, crews)
    hypotheses = [in_work]
    if cfg.unknown_crews_mix and not np.array_equal(oldest_in_work, in_work):
        hypotheses.append(oldest_in_work)
    forecast: StormForecast | None = None
    if cfg.storm_forecast:
        runs = max(cfg.backlog_runs // len(hypotheses), 1)
        forecast = storm_forecast(
            # its own stream: the queue's draws (seeded with cfg.seed) stay as they were
            started,
            zone_index,
            len(zone_names),
            now_s,
            runs,
            cfg,
            seed=cfg.seed + 7919,
        )
        arrival_rate = forecast.rate_per_s
    else:
        window_s = max(cfg.arrival_window_s, 1.0)
        recent = (started > now_s - window_s) & (started <= now_s)
        arrival_rate = np.bincount(zone_index[recent], minlength=len(zone_names)) / window_s
    backlog = _backlog_mixture(
        hypotheses,
        model,
        codes,
        elapsed,
        zone_index,
        priority,
        customers,
        crews,
        cfg=cfg,
        arrival_rate=arrival_rate.astype(np.float64),
        arrival_horizons=None if forecast is None else forecast.horizons_s,
    )
    per_zone_open = np.bincount(zone_index, minlength=len(zone_names))
    backlogged = per_zone_open[zone_index] > crews[zone_index]
    backlog_etr_s = now_s + np.maximum.accumulate(
        np.maximum(backlog.outage_remaining_s, cfg.min_remaining_s), axis=1
    )

    estimates: list[EtrEstimate] = []
    expired: list[int] = []
    for i, o in enumerate(outages):
        code = int(codes[i])
        inputs: dict[str, Any] = {
            "now_s": now_s,
            "started_at_s": o.started_at_s,
            "elapsed_s": float(elapsed[i]),
            "class_code": code,
            "class": decode_class(code),
            "open_outages_at_start": int(open_now[i]),
            "storm_thresholds": [thresholds.elevated, thresholds.storm, thresholds.major],
            "model_class": model.describe_class(code),
            "model_p50_s": float(model_etr[i, 1]),
            "crew_assigned": o.crew_assigned,
        }
        if repair_from[i] != started[i]:
            inputs["repair_from_s"] = float(repair_from[i])  # found later: timed from then
        ov = overrides.get(o.outage_id)
        if ov is not None and ov.etr_at_s > now_s:
            inputs["override"] = {
                "override_id": ov.override_id,
                "reason": ov.reason,
                "set_by": ov.set_by,
            }
            estimates.append(
                EtrEstimate(
                    o.outage_id,
                    ov.etr_at_s,
                    ov.etr_at_s,
                    ov.etr_at_s,
                    "override",
                    model_version,
                    inputs,
                )
            )
            continue
        if ov is not None:
            expired.append(o.outage_id)
            inputs["expired_override"] = {"override_id": ov.override_id, "etr_at_s": ov.etr_at_s}
        if backlogged[i]:
            z = int(zone_index[i])
            source = "backlog"
            inputs["backlog"] = {
                "zone": zone_names[z],
                "open_in_zone": int(per_zone_open[z]),
                "crews": int(crews[z]),
                "priority": float(priority[i]),
                "runs": backlog.runs,
                "seed": backlog.seed,
                "travel_s": cfg.travel_s,
                "arrivals_per_h": round(float(arrival_rate[z]) * 3600.0, 3),
            }
            if forecast is None:
                inputs["backlog"]["arrival_horizon_s"] = cfg.arrival_horizon_s
            else:
                left = np.quantile(forecast.horizons_s[:, z], [0.5, 0.9])
                inputs["backlog"]["storm"] = {
                    "lasted_s": float(forecast.lasted_s[z]),
                    "quiet_s": float(forecast.quiet_s[z]),
                    "left_p50_s": round(float(left[0]), 1),
                    "left_p90_s": round(float(left[1]), 1),
                }
            q = backlog_etr_s[i]
        else:
            q = model_etr[i]
            source = "model"
        scale = scales.get(source)
        if scale is not None:
            q = _scaled(now_s, q, scale, cfg.min_remaining_s)
            inputs["interval_scale"] = scale.to_list()
        local_n = float(local_by_kind[kind_code(o.device_kind)])
        calibrated = scale is not None and scale.n >= CALIBRATED_MIN_ITEMS
        kind = DEVICE_KINDS[kind_code(o.device_kind)]
        if kind in from_root:
            # The prior's own classes (the history had no outage of this kind): its allowance.
            log_sd = widening_log_sd(Provenance("prior"), 0.0, False, allowances=allowances)
        else:
            log_sd = widening_log_sd(
                provenance, local_n, calibrated, rooted=rooted, allowances=allowances
            )
        # A crew queue run on no local history: the queue's own allowance on top.
        unfamiliar_queue = source == "backlog" and not calibrated and provenance.source != "local"
        queue_sd = cfg.queue_log_sd if unfamiliar_queue else 0.0
        log_sd = math.sqrt(log_sd**2 + queue_sd**2)
        if log_sd > 0.0:
            q = _widened(now_s, q, log_sd, cfg.min_remaining_s)
        inputs["provenance"] = provenance.to_dict() | {
            "local_restored_of_kind": int(local_n),
            "kind_from_prior": kind in from_root,
            "widening_log_sd": round(log_sd, 4),
            "queue_log_sd": queue_sd,
        }
        estimates.append(
            EtrEstimate(
                o.outage_id, float(q[0]), float(q[1]), float(q[2]), source, model_version, inputs
            )
        )

    zones = []
    for z, name in enumerate(zone_names):
        zq = now_s + np.maximum(backlog.zone_remaining_s[z], cfg.min_remaining_s)
        members = zone_index == z
        zones.append(
            ZoneEtr(
                zone=name,
                open_outages=int(per_zone_open[z]),
                customers_affected=int(customers[members].sum()),
                crews=int(crews[z]),
                fraction=cfg.zone_fraction,
                p10_s=float(zq[0]),
                p50_s=float(max(zq[1], zq[0])),
                p90_s=float(max(zq[2], zq[1], zq[0])),
            )
        )
    return EtrBatch(estimates, zones, expired)


def check_override(
    etr_at_s: float, reason: str, set_by: str, now_s: float, started_at_s: float, config: EtrConfig
) -> str | None:
    """Why an override is refused, or None: past, too soon, absurd or unexplained ETRs."""
    if not math.isfinite(etr_at_s):
        return "etr must be a finite time"
    if etr_at_s <= now_s:
        return "etr is in the past"
    if etr_at_s < now_s + config.min_override_ahead_s:
        return f"etr must be at least {config.min_override_ahead_s:.0f} s ahead"
    if etr_at_s > now_s + config.max_override_ahead_s:
        return f"etr is more than {config.max_override_ahead_s / 86400:.0f} days ahead"
    if etr_at_s <= started_at_s:
        return "etr is before the outage started"
    if not reason.strip():
        return "a reason is required"
    if len(reason) > 500 or not reason.isprintable():
        return "reason must be printable text of at most 500 characters"
    if not set_by.strip() or len(set_by) > 200 or not set_by.isprintable():
        return "set_by must name who set it (printable, at most 200 characters)"
    return None
