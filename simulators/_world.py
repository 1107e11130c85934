"""The physical world: faults, protection, crews, switching, and the ground truth they make.

A small discrete-event simulation over *device* events (faults are rare; meters are not
simulated here). Supply is then swept level by level over the device tree at each change,
which turns device states into per-meter on/off transitions: the one source both the AMI
telemetry and the ground truth are drawn from, so the two cannot disagree.

Simplifications (documented in docs/simulators.md): a recloser's brief re-energisations
between shots are not seen by meters; a fault is attributed directly to the protective
device that clears it; a crew repairs one outage at a time, largest outage first.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Final, Literal, cast

import numpy as np

from gridwatch.topology import DEVICE_KINDS, KIND_CODE, BoolArray, F64Array, I32Array
from simulators._errors import (
    SimulatorError,
    check_count,
    check_non_negative,
    check_positive,
    check_probability,
)
from simulators._feeder import SimGrid

YEAR_S: Final = 365.25 * 86400.0
CAUSES: Final = ("equipment", "vegetation", "animal", "weather", "vehicle", "overload")
# Cause shares of random faults on a calm day and inside a storm window (same order as CAUSES).
CALM_CAUSE_P: Final = (0.35, 0.2, 0.2, 0.05, 0.1, 0.1)
STORM_CAUSE_P: Final = (0.1, 0.35, 0.05, 0.45, 0.03, 0.02)
CAUSE_REPAIR_FACTOR: Final = {
    "equipment": 1.0,
    "vegetation": 1.2,
    "animal": 0.7,
    "weather": 1.3,
    "vehicle": 1.6,
    "overload": 0.9,
    "planned": 1.0,
}
# Recloser / breaker shot sequence (seconds after the fault): trip, reclose, trip, reclose,
# trip -> lockout. Meters stay dark from the first trip (the 2 s re-energisations are ignored).
_LOCKOUT_SHOTS: Final = (
    (0.0, "trip"),
    (2.0, "reclose"),
    (2.2, "trip"),
    (17.2, "reclose"),
    (17.4, "trip"),
    (17.41, "lockout"),
)
_SWITCH_KIND: Final = {"breaker", "recloser"}
# Line devices: a lockout means a fault somewhere on the section behind them, which the
# crew patrols to find; a transformer (or substation) failure is found where it stands.
PATROL_KINDS: Final = {"breaker", "recloser", "fuse", "sectionalizer", "switch"}


@dataclass(frozen=True)
class FaultRates:
    """Faults per device-year by the protective device that clears them, and the share of
    breaker/recloser faults that are momentary (cleared by a reclose)."""

    breaker: float = 0.3
    recloser: float = 0.5
    fuse: float = 0.4
    transformer: float = 0.03
    momentary_share: float = 0.7

    def __post_init__(self) -> None:
        for kind in ("breaker", "recloser", "fuse", "transformer"):
            check_non_negative(f"fault rate {kind}", getattr(self, kind))
        check_probability("momentary_share", self.momentary_share)

    def per_kind(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("breaker", "recloser", "fuse", "transformer")}


@dataclass(frozen=True)
class CrewParams:
    """Lognormal durations: ``*_median_s`` and a common log-sigma; repair medians by kind."""

    crews: int = 4
    dispatch_median_s: float = 600.0
    travel_median_s: float = 1500.0
    switching_median_s: float = 900.0
    repair_median_s: tuple[tuple[str, float], ...] = (
        ("breaker", 5400.0),
        ("recloser", 4800.0),
        ("fuse", 2700.0),
        ("transformer", 10800.0),
        ("switch", 3600.0),
        ("sectionalizer", 3600.0),
        ("substation", 14400.0),
    )
    sigma: float = 0.6
    # Time of day (local time, Indochina UTC+7) and section size: see docs/simulators.md
    # ("Crews by time of day") for why these values. A crew idle outside the day shift is
    # an on-call crew called out from home; set callout_median_s = 0, the factors to 1 and
    # patrol_s_per_meter = 0 for the old time-free world.
    utc_offset_h: float = 7.0
    shift_start_h: float = 7.0  # day shift at the depot, every day
    shift_end_h: float = 17.0
    callout_median_s: float = 2400.0  # reach the on-call crew, home -> depot, load the truck
    callout_sigma: float = 0.5
    rush_travel_factor: float = 1.8  # travel starting 06:30-08:30 or 16:30-19:00
    night_travel_factor: float = 0.8  # travel starting 22:00-05:00: empty streets
    dark_work_factor: float = 1.3  # patrol and repair begun 18:00-06:00 (darkness)
    patrol_s_per_meter: float = 7.5  # line devices: patrol grows with the dark section
    patrol_sigma: float = 0.6

    def __post_init__(self) -> None:
        check_count("crews", self.crews, 1)
        for name in ("dispatch_median_s", "travel_median_s", "switching_median_s", "sigma"):
            check_positive(name, getattr(self, name))
        for kind, median in self.repair_median_s:
            check_positive(f"repair median for {kind}", median)
        for name in ("callout_median_s", "callout_sigma", "patrol_s_per_meter", "patrol_sigma"):
            check_non_negative(name, getattr(self, name))
        for name in ("rush_travel_factor", "night_travel_factor", "dark_work_factor"):
            check_positive(name, getattr(self, name))
        for name in ("shift_start_h", "shift_end_h"):
            if not 0.0 <= getattr(self, name) <= 24.0:
                raise SimulatorError(f"{name} must be in [0, 24], got {getattr(self, name)!r}")
        if not -12.0 <= self.utc_offset_h <= 14.0:
            raise SimulatorError(f"utc_offset_h must be in [-12, 14], got {self.utc_offset_h!r}")

    def local_hour(self, t_s: float) -> float:
        """Local clock hour (0 <= h < 24) of epoch time ``t_s``."""
        return ((t_s + self.utc_offset_h * 3600.0) % 86400.0) / 3600.0

    def on_shift(self, t_s: float) -> bool:
        h = self.local_hour(t_s)
        lo, hi = self.shift_start_h, self.shift_end_h
        return lo <= h < hi if lo <= hi else (h >= lo or h < hi)

    def travel_factor(self, t_s: float) -> float:
        h = self.local_hour(t_s)
        if 6.5 <= h < 8.5 or 16.5 <= h < 19.0:
            return self.rush_travel_factor
        if h >= 22.0 or h < 5.0:
            return self.night_travel_factor
        return 1.0

    def work_factor(self, t_s: float) -> float:
        h = self.local_hour(t_s)
        return self.dark_work_factor if h >= 18.0 or h < 6.0 else 1.0

    def repair_median_for(self, device_kind: str, cause: str) -> float:
        """Median repair time (after arrival and any patrol) of a fault with this cause."""
        return dict(self.repair_median_s).get(device_kind, 3600.0) * CAUSE_REPAIR_FACTOR.get(
            cause, 1.0
        )

    def patrol_median_s(self, device_kind: str, section_meters: int) -> float:
        """Median patrol before the repair: line devices only, grows with the section."""
        if device_kind not in PATROL_KINDS or self.patrol_s_per_meter <= 0:
            return 0.0
        return self.patrol_s_per_meter * max(section_meters, 1)


@dataclass(frozen=True)
class Storm:
    zone: str
    at_s: float  # offset from the window start
    duration_s: float
    factor: float = 20.0  # fault-rate multiplier inside the zone
    level: int = 2  # 1 (windy) .. 3 (typhoon), carried to the history for ETR fitting
    last_gasp_p: float | None = None  # AMI last-gasp delivery in the zone meanwhile

    def __post_init__(self) -> None:
        check_non_negative("storm at_s", self.at_s)
        check_positive("storm duration_s", self.duration_s)
        check_non_negative("storm factor", self.factor)
        if self.level not in (1, 2, 3):
            raise SimulatorError(f"storm level must be 1, 2 or 3, got {self.level!r}")
        if self.last_gasp_p is not None:
            check_probability("storm last_gasp_p", self.last_gasp_p)


@dataclass(frozen=True)
class ScriptedFault:
    device_id: str
    at_s: float
    kind: Literal["sustained", "momentary"] = "sustained"
    cause: str = "equipment"
    repair_s: float | None = None  # fixed repair time (after crew arrival) instead of a draw

    def __post_init__(self) -> None:
        check_non_negative("fault at_s", self.at_s)
        if self.kind not in ("sustained", "momentary"):
            raise SimulatorError(f"fault kind must be sustained or momentary, got {self.kind!r}")
        if self.cause not in CAUSES:
            raise SimulatorError(f"fault cause {self.cause!r} is not one of {', '.join(CAUSES)}")
        if self.repair_s is not None:
            check_positive("fault repair_s", self.repair_s)


@dataclass(frozen=True)
class PlannedOutage:
    device_id: str
    at_s: float
    duration_s: float
    overrun_sigma: float = 0.1  # actual / announced duration is lognormal(0, sigma)

    def __post_init__(self) -> None:
        check_non_negative("planned at_s", self.at_s)
        check_positive("planned duration_s", self.duration_s)
        check_non_negative("planned overrun_sigma", self.overrun_sigma)


@dataclass(frozen=True)
class WorldParams:
    rates: FaultRates = field(default_factory=FaultRates)
    crew: CrewParams = field(default_factory=CrewParams)
    storms: tuple[Storm, ...] = ()
    faults: tuple[ScriptedFault, ...] = ()
    planned: tuple[PlannedOutage, ...] = ()
    random_faults: bool = True


@dataclass(eq=False)
class TrueOutage:
    """Ground truth for one interruption cleared by one device."""

    outage_id: str
    device: int
    device_id: str
    device_kind: str
    zone: str
    cause: str
    start_s: float
    end_s: float  # the device closed again (reclose, repair, end of planned work)
    momentary: bool
    planned: bool
    storm_level: int
    meters: I32Array = field(repr=False)  # meters below the device
    restore_s: F64Array = field(repr=False)  # per meter: supply actually back (nested: later)
    requested_s: float = math.nan
    # When the fault could first be seen: its start, or for a fault on a line already dark
    # (inside an upstream outage) the moment the line above is re-energised and the device
    # trips. Nobody can send a crew to a fault before this.
    found_s: float = math.nan
    arrived_s: float = math.nan
    switched_s: float = math.nan  # partial restoration by switching via a tie
    nested_in: str | None = None  # an outage upstream that overlapped this one
    announced_end_s: float = math.nan  # planned outages: the end announced to customers

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class ScadaOp:
    t_s: float
    device: int
    kind: str  # open | close | trip | reclose | lockout


@dataclass(eq=False)
class WorldResult:
    start_s: float
    end_s: float
    outages: list[TrueOutage]
    scada: list[ScadaOp]
    # Per-meter supply transitions, sorted by (t, meter): the meter's supply became ``on``.
    tr_t: F64Array = field(repr=False)
    tr_meter: I32Array = field(repr=False)
    tr_on: BoolArray = field(repr=False)
    storms: tuple[Storm, ...] = ()
    _key: np.ndarray = field(init=False, repr=False)  # (meter, ms) keys in key order
    _key_on: BoolArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        key = _meter_time_key(self.tr_meter, self.tr_t, self.start_s)
        order = np.argsort(key, kind="stable")
        self._key = key[order]
        self._key_on = self.tr_on[order]

    def meters_on_at(self, meters: I32Array, t_s: float | F64Array) -> BoolArray:
        """Supply state of ``meters`` at ``t_s`` (on unless a transition turned it off)."""
        m = np.asarray(meters, dtype=np.int32)
        q = _meter_time_key(
            m, np.broadcast_to(np.asarray(t_s, dtype=np.float64), m.shape), self.start_s
        )
        pos = np.searchsorted(self._key, q, side="right") - 1
        found = pos >= 0
        same = np.zeros(m.shape, dtype=np.bool_)
        same[found] = (self._key[pos[found]] >> _KEY_SHIFT) == m[found]
        state = np.ones(m.shape, dtype=np.bool_)
        state[same] = self._key_on[pos[same]]
        return state

    def first_on_after(self, meters: I32Array, t_s: float, default_s: float) -> F64Array:
        """Per meter, the first time at or after ``t_s`` its supply is on (``t_s`` if it is
        on then, ``default_s`` if it never comes back in the window)."""
        out = np.full(meters.shape, default_s, dtype=np.float64)
        on_now = self.meters_on_at(meters, t_s)
        out[on_now] = t_s
        sel = (self.tr_on) & (self.tr_t > t_s)
        if (~on_now).any() and sel.any():
            cand_m, cand_t = self.tr_meter[sel], self.tr_t[sel]
            first = np.full(int(meters.max()) + 1 if meters.size else 0, np.inf)
            np.minimum.at(first, cand_m[cand_m < first.shape[0]], cand_t[cand_m < first.shape[0]])
            dark = ~on_now
            got = first[meters[dark]]
            out[dark] = np.where(np.isfinite(got), got, default_s)
        return out


_KEY_SHIFT: Final = 40  # meter index above 2**40 ms (34 years) of time


def _meter_time_key(meter: np.ndarray, t_s: np.ndarray, origin_s: float) -> np.ndarray:
    ms = np.floor((np.asarray(t_s) - (origin_s - 86400.0)) * 1000.0).astype(np.int64)
    return (np.asarray(meter).astype(np.int64) << _KEY_SHIFT) | np.clip(
        ms, 0, (1 << _KEY_SHIFT) - 1
    )


class _Supply:
    """Device states and the level-wise supply sweep."""

    def __init__(self, grid: SimGrid) -> None:
        self.grid = grid
        n = len(grid.topology.devices)
        self.open_count = np.zeros(n, dtype=np.int32)
        self.backfed = np.zeros(n, dtype=np.int32)
        self.parent = grid.topology.devices.parent

    def supply(self) -> BoolArray:
        out = np.zeros(self.open_count.shape[0], dtype=np.bool_)
        closed = self.open_count == 0
        fed = self.backfed > 0
        for level in self.grid.levels:
            par = self.parent[level]
            up = np.zeros(level.shape[0], dtype=np.bool_)
            has = par >= 0
            up[has] = out[par[has]]
            up[~has] = True  # a substation is fed by the transmission grid
            out[level] = fed[level] | (up & closed[level])
        return out


def _lognormal(rng: np.random.Generator, median_s: float, sigma: float) -> float:
    return float(median_s * math.exp(sigma * rng.standard_normal()))


def _draw_faults(
    grid: SimGrid, params: WorldParams, duration_s: float, rng: np.random.Generator
) -> list[tuple[float, int, bool, str, int]]:
    """Random faults: (offset_s, device, momentary, cause, storm_level)."""
    dev = grid.topology.devices
    out: list[tuple[float, int, bool, str, int]] = []
    if not params.random_faults:
        return out
    windows: list[tuple[float, float, float, BoolArray, int]] = [
        (0.0, duration_s, 1.0, np.ones(len(dev), dtype=np.bool_), 0)
    ]
    for st in params.storms:
        lo, hi = st.at_s, min(duration_s, st.at_s + st.duration_s)
        if hi > lo and st.factor > 1.0:
            windows.append((lo, hi, st.factor - 1.0, dev.zone == st.zone, st.level))
    for kind, rate in params.rates.per_kind().items():
        of_kind = dev.kind == KIND_CODE[kind]
        for lo, hi, factor, mask, level in windows:
            cand = np.flatnonzero(of_kind & mask)
            lam = cand.size * rate * factor * (hi - lo) / YEAR_S
            if cand.size == 0 or lam <= 0:
                continue
            n = int(rng.poisson(lam))
            devs = cand[rng.integers(0, cand.size, n)]
            times = rng.uniform(lo, hi, n)
            momentary = (rng.random(n) < params.rates.momentary_share) & (kind in _SWITCH_KIND)
            cause_p = STORM_CAUSE_P if level else CALM_CAUSE_P
            causes = rng.choice(len(CAUSES), n, p=cause_p)
            out += [
                (float(t), int(d), bool(m), CAUSES[c], level)
                for t, d, m, c in zip(times, devs, momentary, causes, strict=True)
            ]
    return out


def _storm_level_at(params: WorldParams, zone: str, offset_s: float) -> int:
    levels = [
        s.level
        for s in params.storms
        if s.zone == zone and s.at_s <= offset_s < s.at_s + s.duration_s
    ]
    return max(levels, default=0)


@dataclass(order=True)
class _Ev:
    t: float
    seq: int
    kind: str = field(compare=False)
    data: dict[str, object] = field(compare=False, default_factory=dict)


def simulate_world(
    grid: SimGrid,
    params: WorldParams,
    *,
    start_s: float,
    duration_s: float,
    seed: int,
    meter_truth: bool = True,
) -> WorldResult:
    """Run faults, protection, crews and switching over ``[start_s, start_s + duration_s)``.

    Outages still open at the end keep running past it (crews finish them), so every true
    outage has an end; ``meter_truth=False`` skips the per-meter sweep (history generation).
    """
    check_positive("duration_s", duration_s)
    rng = np.random.default_rng([seed, 0x776F726C64])
    # Call-out and patrol draws come from their own stream, so the main sequence (faults,
    # causes, dispatch / travel / repair draws) is the one the time-free world drew.
    crew_rng = np.random.default_rng([seed, 0x6372657773])
    dev = grid.topology.devices
    kinds = [DEVICE_KINDS[k] for k in dev.kind.tolist()]
    state = _Supply(grid)
    crew_p = params.crew

    events: list[_Ev] = []
    seq = 0

    def push(t: float, kind: str, **data: object) -> None:
        nonlocal seq
        heapq.heappush(events, _Ev(t, seq, kind, data))
        seq += 1

    for off, d, momentary, cause, level in _draw_faults(grid, params, duration_s, rng):
        push(start_s + off, "fault", device=d, momentary=momentary, cause=cause, level=level)
    for f in params.faults:
        if f.device_id not in grid.topology.device_index:
            raise SimulatorError(f"scripted fault: unknown device {f.device_id!r}")
        d = grid.topology.device_index[f.device_id]
        if f.kind == "momentary" and kinds[d] not in _SWITCH_KIND:
            raise SimulatorError(
                f"scripted momentary fault on {f.device_id}: only a breaker or recloser recloses"
            )
        level = _storm_level_at(params, str(dev.zone[d]), f.at_s)
        push(
            start_s + f.at_s,
            "fault",
            device=d,
            momentary=f.kind == "momentary",
            cause=f.cause,
            level=level,
            repair_s=f.repair_s,
        )
    for p in params.planned:
        if p.device_id not in grid.topology.device_index:
            raise SimulatorError(f"planned outage: unknown device {p.device_id!r}")
        push(start_s + p.at_s, "planned", device=grid.topology.device_index[p.device_id], plan=p)

    ops: list[tuple[float, int, int, int]] = []  # (t, device, d_open, d_backfed)
    scada: list[ScadaOp] = []
    outages: list[TrueOutage] = []
    faulted_until: dict[int, TrueOutage] = {}
    free_crews = crew_p.crews
    queue: list[tuple[int, float, int, TrueOutage]] = []  # (-meters, t, seq, outage)
    n_meters_under = np.bincount(
        grid.topology.meters.device, minlength=len(dev)
    )  # direct meters per device; subtree sums below
    subtree_meters = n_meters_under.astype(np.int64)
    for lv in reversed(grid.levels):
        par = dev.parent[lv]
        has = par >= 0
        np.add.at(subtree_meters, par[has], subtree_meters[lv[has]])

    def scada_op(t: float, d: int, kind: str) -> None:
        if dev.has_scada[d]:
            scada.append(ScadaOp(t, d, kind))

    def new_outage(
        t: float, d: int, cause: str, momentary: bool, planned: bool, level: int
    ) -> TrueOutage:
        o = TrueOutage(
            outage_id=f"T{len(outages) + 1:05d}",
            device=d,
            device_id=str(dev.ids[d]),
            device_kind=kinds[d],
            zone=str(dev.zone[d]),
            cause=cause,
            start_s=t,
            end_s=math.nan,
            momentary=momentary,
            planned=planned,
            storm_level=level,
            meters=np.empty(0, dtype=np.int32),
            restore_s=np.empty(0),
        )
        outages.append(o)
        return o

    def energised_above(d: int, sup: BoolArray) -> bool:
        """The line feeding ``d`` is live (its parent supplied, or back-fed by a tie)."""
        p = int(dev.parent[d])
        return bool(state.backfed[d] > 0 or p < 0 or sup[p])

    def found(t: float, o: TrueOutage) -> None:
        """The fault is seen at ``t``: protection operates, a crew is requested."""
        o.found_s = t
        if kinds[o.device] in _SWITCH_KIND:
            for off, kind in _LOCKOUT_SHOTS:
                scada_op(t + off, o.device, kind)
        o.requested_s = t + report_delay.pop(id(o))
        push(o.requested_s, "request", outage=o)

    report_delay: dict[int, float] = {}  # fault -> delay from its being found to the request
    hidden: list[TrueOutage] = []  # faults on dead lines, not found yet

    def find_hidden(t: float) -> None:
        if not hidden:
            return
        sup = state.supply()
        seen = [o for o in hidden if energised_above(o.device, sup)]
        for o in seen:
            hidden.remove(o)
            found(t, o)

    def dispatch(t: float, o: TrueOutage, *, idle: bool) -> None:
        travel = _lognormal(rng, crew_p.travel_median_s, crew_p.sigma)
        leave = t
        if idle and crew_p.callout_median_s > 0 and not crew_p.on_shift(t):
            # Off shift an idle crew is at home: call it out before it can drive to site.
            # A crew coming from another job (a storm queue) is already mobilised.
            leave = t + _lognormal(crew_rng, crew_p.callout_median_s, crew_p.callout_sigma)
        arrive = leave + travel * crew_p.travel_factor(leave)
        o.arrived_s = arrive
        push(arrive, "arrive", outage=o)

    def switch_plan(d: int) -> tuple[int, int] | None:
        """(downstream trunk recloser to open, tie to close) for a faulted trunk device."""
        if kinds[d] not in _SWITCH_KIND:
            return None
        children = np.flatnonzero(dev.parent == d)
        below = [int(c) for c in children if kinds[c] == "recloser"]
        if not below:
            return None
        sub = grid.subtree_devices(below[0])
        ties = [int(x) for x in sub if grid.tie_alt_parent[x] >= 0]
        return (below[0], ties[0]) if ties else None

    pending: list[tuple[float, int, int, int]] = []
    n_seen = 0
    while events:
        ev = heapq.heappop(events)
        t = ev.t
        while pending and pending[0][0] <= t:
            _, d_op, d_open, d_fed = heapq.heappop(pending)
            state.open_count[d_op] += d_open
            state.backfed[d_op] += d_fed
        if ev.kind == "fault":
            d = int(ev.data["device"])  # type: ignore[call-overload]
            if d in faulted_until:
                continue  # already open for an earlier fault: nothing more to clear
            momentary = bool(ev.data["momentary"])
            o = new_outage(t, d, str(ev.data["cause"]), momentary, False, int(ev.data["level"]))  # type: ignore[call-overload]
            if momentary:
                if not state.supply()[d]:
                    outages.pop()  # a de-energised line cannot trip its recloser
                    continue
                dt = float(rng.uniform(0.5, 5.0))
                ops += [(t, d, 1, 0), (t + dt, d, -1, 0)]
                scada_op(t, d, "trip")
                scada_op(t + dt, d, "reclose")
                o.end_s = t + dt
                continue
            faulted_until[d] = o
            repair = ev.data.get("repair_s")
            o.announced_end_s = float(repair) if repair is not None else math.nan  # type: ignore[arg-type]
            # Drawn now even for a hidden fault, so every later draw is the one a world
            # without hidden faults makes (the change moves only the hidden faults' crews).
            report_delay[id(o)] = _lognormal(rng, crew_p.dispatch_median_s, crew_p.sigma)
            if not energised_above(d, state.supply()):
                # A fault on a dead line (inside an outage upstream) cannot be seen: no
                # protection operates, no meter changes, nobody calls. It is found when the
                # line above is re-energised (``find_hidden``), and only then is a crew asked.
                ops.append((t, d, 1, 0))
                hidden.append(o)
                for op in pending:  # steps already scheduled (a planned outage's end, ...)
                    if op[0] > t:
                        push(op[0], "supply")
            else:
                ops.append((t, d, 1, 0))
                found(t, o)
        elif ev.kind == "request":
            o = ev.data["outage"]  # type: ignore[assignment]
            if free_crews > 0:
                free_crews -= 1
                dispatch(t, o, idle=True)
            else:
                heapq.heappush(queue, (-int(subtree_meters[o.device]), t, seq, o))
                seq += 1
        elif ev.kind == "arrive":
            o = ev.data["outage"]  # type: ignore[assignment]
            plan = switch_plan(o.device)
            if plan is not None:
                sw_t = t + _lognormal(rng, crew_p.switching_median_s, crew_p.sigma)
                push(sw_t, "switch", outage=o, plan=plan)
            fixed = o.announced_end_s
            base = crew_p.repair_median_for(o.device_kind, o.cause)
            repair = fixed if not math.isnan(fixed) else _lognormal(rng, base, crew_p.sigma)
            if math.isnan(fixed):
                # Line devices: patrol the dark section to find the fault first; its length
                # grows with the meters behind the device. Darkness slows patrol and repair.
                # (simulators._restoration samples these same stages for one fault.)
                patrol = 0.0
                median = crew_p.patrol_median_s(o.device_kind, int(subtree_meters[o.device]))
                if median > 0:
                    patrol = _lognormal(crew_rng, median, crew_p.patrol_sigma)
                repair = (patrol + repair) * crew_p.work_factor(t)
            o.announced_end_s = math.nan
            push(t + repair, "repaired", outage=o, plan=plan)
        elif ev.kind == "switch":
            o = ev.data["outage"]  # type: ignore[assignment]
            down, tie = cast(tuple[int, int], ev.data["plan"])
            if not math.isnan(o.end_s):
                continue  # repaired before the switching finished
            alt = int(grid.tie_alt_parent[tie])
            if not state.supply()[alt]:
                ev.data["plan"] = None
                continue  # the neighbour feeder is dark too: nothing to borrow
            o.switched_s = t
            ops += [(t, down, 1, 0), (t, down, 0, 1)]
            scada_op(t, down, "open")
            scada_op(t + 1.0, tie, "close")
        elif ev.kind == "repaired":
            o = ev.data["outage"]  # type: ignore[assignment]
            o.end_s = t
            ops.append((t, o.device, -1, 0))
            scada_op(t, o.device, "close")
            del faulted_until[o.device]
            if not math.isnan(o.switched_s):
                down, tie = cast(tuple[int, int], switch_plan(o.device))
                ops += [(t + 2.0, down, -1, 0), (t + 2.0, down, 0, -1)]
                scada_op(t + 1.0, tie, "open")
                scada_op(t + 2.0, down, "close")
            if queue:
                _, _, _, nxt = heapq.heappop(queue)
                dispatch(t, nxt, idle=False)
            else:
                free_crews += 1
        elif ev.kind == "planned":
            d = int(ev.data["device"])  # type: ignore[call-overload]
            work = cast(PlannedOutage, ev.data["plan"])
            o = new_outage(t, d, "planned", False, True, 0)
            actual = work.duration_s * math.exp(work.overrun_sigma * rng.standard_normal())
            o.announced_end_s = t + work.duration_s
            o.end_s = t + actual
            ops += [(t, d, 1, 0), (t + actual, d, -1, 0)]
            scada_op(t, d, "open")
            scada_op(t + actual, d, "close")
        # Apply ops as they happen so supply() answers for "now" in later events.
        for op in ops[n_seen:]:
            heapq.heappush(pending, op)
            if op[0] > t and hidden:
                push(op[0], "supply")  # a later switching step may re-energise a hidden fault
        n_seen = len(ops)
        while pending and pending[0][0] <= t:
            _, d_op, d_open, d_fed = heapq.heappop(pending)
            state.open_count[d_op] += d_open
            state.backfed[d_op] += d_fed
        if ev.kind != "fault":
            find_hidden(t)

    if hidden:
        raise SimulatorError(f"{len(hidden)} faults on dead lines were never found")
    end_s = start_s + duration_s
    tr_t, tr_meter, tr_on = (
        _sweep(grid, ops)
        if meter_truth
        else (np.empty(0), np.empty(0, np.int32), np.empty(0, np.bool_))
    )
    scada.sort(key=lambda s: (s.t_s, s.device))
    result = WorldResult(
        start_s=start_s,
        end_s=end_s,
        outages=outages,
        scada=scada,
        tr_t=tr_t,
        tr_meter=tr_meter.astype(np.int32),
        tr_on=tr_on,
        storms=params.storms,
    )
    _fill_truth(grid, result, meter_truth)
    return result


def _sweep(
    grid: SimGrid, ops: list[tuple[float, int, int, int]]
) -> tuple[F64Array, I32Array, BoolArray]:
    state = _Supply(grid)
    meter_dev = grid.topology.meters.device
    prev = np.ones(meter_dev.shape[0], dtype=np.bool_)
    ts: list[F64Array] = []
    ms: list[I32Array] = []
    ons: list[BoolArray] = []
    ops_sorted = sorted(ops, key=lambda o: o[0])
    i = 0
    while i < len(ops_sorted):
        t = ops_sorted[i][0]
        while i < len(ops_sorted) and ops_sorted[i][0] == t:
            _, d, d_open, d_fed = ops_sorted[i]
            state.open_count[d] += d_open
            state.backfed[d] += d_fed
            i += 1
        cur = state.supply()[meter_dev]
        changed = np.flatnonzero(cur != prev).astype(np.int32)
        if changed.size:
            ts.append(np.full(changed.size, t))
            ms.append(changed)
            ons.append(cur[changed])
        prev = cur
    if not ts:
        return np.empty(0), np.empty(0, dtype=np.int32), np.empty(0, dtype=np.bool_)
    return np.concatenate(ts), np.concatenate(ms), np.concatenate(ons)


def _fill_truth(grid: SimGrid, world: WorldResult, meter_truth: bool) -> None:
    dev = grid.topology.devices
    by_device: dict[int, list[TrueOutage]] = {}
    for o in world.outages:
        o.meters = grid.subtree_meters(o.device)
        if meter_truth and o.meters.size:
            o.restore_s = world.first_on_after(o.meters, o.start_s + 1e-3, o.end_s)
            # A meter back on before the outage started (already dark upstream) counts from start.
            o.restore_s = np.maximum(o.restore_s, o.start_s)
        else:
            o.restore_s = np.full(o.meters.shape, o.end_s)
        by_device.setdefault(o.device, []).append(o)
    for o in world.outages:
        if o.momentary:
            continue
        a = int(dev.parent[o.device])
        while a >= 0 and o.nested_in is None:
            for up in by_device.get(a, []):
                if not up.momentary and up.start_s < o.end_s and o.start_s < up.end_s:
                    o.nested_in = up.outage_id
                    break
            a = int(dev.parent[a])
