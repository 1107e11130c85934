"""Plain-Python reference implementations of the detector kernels: slow and obvious.

They follow the rules as written in docs/detection-model.md, one meter / one device at a
time, with explicit subtree walks instead of the kernels' bottom-up accumulations.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

ON_KINDS = {2, 3, 7}  # power_restore, ping_on, report_on
OFF_KINDS = {1, 4, 5, 6}  # last_gasp, ping_off, ping_timeout, report_out
RANK = [3, 3, 3, 3, 3, 1, 2, 2]


@dataclass
class RefMeter:
    state: int = 0
    source: int = 0
    since_s: float = -math.inf
    last_s: float = -math.inf
    prev_s: float = -math.inf


def ref_apply_meter_evidence(
    meters: list[RefMeter],
    rows: list[tuple[int, float, int, float]],
    *,
    now_s: float,
    horizon_s: float,
    future_skew_s: float,
    v_dead_v: float = 20.0,
    v_max_v: float = 1000.0,
) -> tuple[list[int], set[int]]:
    """rows: (meter, ts_s, kind, v_rms_v). Returns (status per row, meters changed)."""

    def says_on(kind: int, v: float) -> bool:
        return kind in ON_KINDS or (kind == 0 and not math.isnan(v) and v >= v_dead_v)

    def sort_key(i: int) -> tuple[float, int, int]:
        _, ts, kind, v = rows[i]
        return (ts if math.isfinite(ts) else math.inf, 1 if says_on(kind, v) else 0, i)

    status = [0] * len(rows)
    changed: set[int] = set()
    for i in sorted(range(len(rows)), key=sort_key):
        m, ts, kind, v = rows[i]
        if not 0 <= m < len(meters):
            status[i] = 2
            continue
        if not 0 <= kind < 8:
            status[i] = 3
            continue
        if not math.isfinite(ts):
            status[i] = 4
            continue
        if ts < now_s - horizon_s:
            status[i] = 5
            continue
        if ts > now_s + future_skew_s:
            status[i] = 6
            continue
        if kind == 0:
            if math.isnan(v):
                status[i] = 1
                continue
            if math.isinf(v) or v < 0 or v > v_max_v:
                status[i] = 7
                continue
            new = 2 if v < v_dead_v else 1
        else:
            new = 1 if kind in ON_KINDS else 2
        me = meters[m]
        if kind == 5:  # a ping timeout: silence; never renews, extends or restarts "off"
            if me.state != 2 and ts > me.last_s:
                me.prev_s, me.state, me.source = me.last_s, 2, kind
                me.since_s = me.last_s = ts
                changed.add(m)
            continue
        if new == me.state:
            if ts > me.last_s:
                me.last_s = ts
            elif me.prev_s < ts < me.since_s:
                me.since_s = ts
            if RANK[kind] > RANK[me.source] or (RANK[kind] == RANK[me.source] and kind != 4):
                me.source = kind
        elif ts > me.last_s or (ts == me.last_s and new == 1):
            me.prev_s, me.state, me.source = me.last_s, new, kind
            me.since_s = me.last_s = ts
            changed.add(m)
        elif ts > me.since_s:
            me.prev_s, me.since_s = ts, me.last_s
        elif ts > me.prev_s:
            me.prev_s = ts
    return status, changed


@dataclass
class RefInference:
    chosen: list[bool]
    onset_s: list[float]
    margin: list[float]
    n_off: list[int]
    n_on: list[int]
    n_meters: list[int]
    suppressed: list[bool]
    weight: list[float]


def _children(parent: list[int]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parent]
    for d, p in enumerate(parent):
        if p >= 0:
            kids[p].append(d)
    return kids


def _subtree(kids: list[list[int]], d: int) -> list[int]:
    out, todo = [], [d]
    while todo:
        x = todo.pop()
        out.append(x)
        todo.extend(kids[x])
    return out


def _ancestors_and_self(parent: list[int], d: int) -> list[int]:
    out = []
    while d >= 0:
        out.append(d)
        d = parent[d]
    return out


def _dark_from(me: RefMeter) -> float:
    if me.source == 4 and math.isfinite(me.prev_s):
        return me.prev_s
    return me.since_s


def ref_infer(
    parent: list[int],
    meter_device: list[int],
    meters: list[RefMeter],
    prior: list[float],
    forced: list[int],
    forced_onset_s: list[float],
    suppressed_own: list[bool],
    llr_off: list[float],
    llr_on: list[float],
    llr_unknown: float,
    onset_from_s: float,
    huge: float = 1e12,
    tie: float = 1e-6,
) -> RefInference:
    n = len(parent)
    kids = _children(parent)
    suppressed = [any(suppressed_own[a] for a in _ancestors_and_self(parent, d)) for d in range(n)]
    weight, onset = [0.0] * n, [0.0] * n
    n_off, n_on, n_meters = [0] * n, [0] * n, [0] * n
    for d in range(n):
        sub = set(_subtree(kids, d))
        ms = [m for m, dev in enumerate(meter_device) if dev in sub and not suppressed[dev]]
        offs = [m for m in ms if meters[m].state == 2]
        # A ping timeout (source 5) says no time; its times are the onset only of a device
        # with no other dark evidence beneath it.
        timed = [meters[m].since_s for m in offs if meters[m].source == 5]
        dated = [meters[m].since_s for m in offs if meters[m].source != 5]
        t_last = max(dated, default=-math.inf)
        # A run a ping "off" began went dark unseen, after the meter was last seen on.
        seen = [_dark_from(meters[m]) for m in offs if meters[m].source != 5]
        c_last = max(seen, default=-math.inf)
        t_first = min((t for t in dated if t >= onset_from_s), default=math.inf)
        w_last = max(timed, default=-math.inf)
        w_first = min((t for t in timed if t >= onset_from_s), default=math.inf)
        ons = [m for m in ms if meters[m].state == 1 and meters[m].last_s > c_last]
        n_off[d], n_on[d], n_meters[d] = len(offs), len(ons), len(ms)
        w = prior[d] + sum(llr_off[meters[m].source] for m in offs)
        w += sum(llr_on[meters[m].source] for m in ons)
        w += (len(ms) - len(offs) - len(ons)) * llr_unknown
        if suppressed[d] or forced[d] == 2:
            w = -huge
        elif forced[d] == 1:
            w = huge
        weight[d] = w
        if forced[d] == 1:
            onset[d] = forced_onset_s[d]
        else:
            candidates = [t_first, t_last, w_first]
            onset[d] = next((t for t in candidates if math.isfinite(t)), w_last)

    best: dict[int, float] = {}
    child_sum: dict[int, float] = {}

    def solve(d: int) -> float:
        if d not in best:
            child_sum[d] = sum(solve(c) for c in kids[d])
            best[d] = max(weight[d], child_sum[d])
        return best[d]

    for d in range(n):
        solve(d)
    chosen = [False] * n

    def decode(d: int) -> None:
        if forced[d] == 1 or (weight[d] > 0 and weight[d] >= child_sum[d] - tie):
            chosen[d] = True
            return
        for c in kids[d]:
            decode(c)

    for d in range(n):
        if parent[d] < 0:
            decode(d)
    margin = [weight[d] - child_sum[d] for d in range(n)]
    return RefInference(chosen, onset, margin, n_off, n_on, n_meters, suppressed, weight)


def brute_force_best_score(parent: list[int], weight: list[float]) -> float:
    """The best total weight over every antichain (no device under another): what the
    DP claims to find. Exponential; only for trees of a dozen devices."""
    n = len(parent)
    anc = [set(_ancestors_and_self(parent, d)) - {d} for d in range(n)]
    best = 0.0
    for r in range(1, n + 1):
        for combo in itertools.combinations(range(n), r):
            chosen = set(combo)
            if any(anc[d] & chosen for d in chosen):
                continue
            best = max(best, sum(weight[d] for d in chosen))
    return best


def subset_weight_reference(
    subset: list[int],
    meters: list[RefMeter],
    prior_d: float,
    llr_off: list[float],
    llr_on: list[float],
    llr_unknown: float,
) -> float:
    """The weight of "this device is out" judged on the meters ``subset`` only (indices
    into ``meters``; one listed twice counts twice): the prior, the "off" llr of each meter
    off, the "on" llr of each meter on by evidence newer than the newest dark-from time
    among the subset's dated "off" meters, ``llr_unknown`` for every other meter."""
    # When the dark among these meters began at the latest. A ping timeout (source 5)
    # dates nothing; a run a ping "off" began dates from the last "on" before it.
    dark_from = -math.inf
    for m in subset:
        me = meters[m]
        if me.state == 2 and me.source != 5:
            dark_from = max(dark_from, _dark_from(me))
    weight = prior_d
    for m in subset:
        me = meters[m]
        if me.state == 2:
            weight += llr_off[me.source]
    for m in subset:
        me = meters[m]
        if me.state == 1 and me.last_s > dark_from:
            weight += llr_on[me.source]
    for m in subset:
        me = meters[m]
        off = me.state == 2
        counted_on = me.state == 1 and me.last_s > dark_from
        if not off and not counted_on:
            weight += llr_unknown
    return weight
