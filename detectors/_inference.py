"""MAP inference of which devices are out, from per-meter states (one pass, Numba).

The model (docs/detection-model.md): a set S of out devices (an antichain of the tree)
darkens every meter beneath it. Each meter contributes a log-likelihood ratio
llr = log P(obs | dark) - log P(obs | lit) by its state and the source of that state;
an "on" counts against a device only when it is newer than the dark evidence beneath
that device (an on-read from before the fault is not a contradiction; a ping timeout
dates nothing: it is silence, not a time the meter went dark). The score of S is
sum over d in S of prior_log_odds(d) + sum of llr of meters under d, and the best S is
found exactly by a bottom-up dynamic programme: best(d) = max(w(d), sum best(children)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors._codes import N_METER_KINDS
from detectors._meter_state import MeterState
from detectors._model import DetectionModel
from detectors._tree import TreeIndex

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

FREE = 0
FORCED_OUT = 1  # SCADA says open / tripped / locked out
FORCED_IN = 2  # SCADA says closed: this device is not the one out
_HUGE = 1e12
_TIE_S = 1e-6  # prefer the single upstream device when the two explanations tie


@njit(cache=True, nogil=True)
def _dark_from_s(source: int, since_s: float, prev_s: float) -> float:  # pragma: no cover
    """When a meter "off" went dark at the latest, for judging an "on" as newer than the
    dark beneath a device. A run a ping "off" began (source 4) went dark unseen, after the
    meter was last seen on (``prev_s``, when known): an "on" from between the two is no
    older than the fault. A ping timeout (source 5) dates nothing (-inf): it is silence,
    not a time the meter went dark. Else the run's start (``since_s``)."""
    if source == 5:
        return -np.inf
    if source == 4 and np.isfinite(prev_s):
        return prev_s
    return since_s


@njit(cache=True, nogil=True)
def _infer_outages_kernel(  # pragma: no cover - compiled
    parent: I32,
    order: I32,
    meter_device: I32,
    state: I8,
    source: I8,
    since_s: F64,
    last_s: F64,
    prev_s: F64,
    prior: F64,
    forced: I8,
    forced_onset_s: F64,
    suppressed_own: B,
    llr_off: F64,
    llr_on: F64,
    llr_unknown: float,
    onset_from_s: float,
    chosen: B,
    onset_s: F64,
    margin: F64,
    n_off: I32,
    n_on: I32,
    n_meters: I32,
    suppressed: B,
) -> None:
    n_dev = parent.shape[0]
    n_m = meter_device.shape[0]
    # Times come from dark evidence that says when a meter went dark. A ping timeout
    # (source 5) says only that it did not answer: it sets no time (its "off" start must
    # not make every "on" beneath look older than the fault), except the onset of a
    # device with no other dark evidence (w_last / w_first).
    t_last = np.full(n_dev, -np.inf)  # newest start of "off" beneath the device
    t_first = np.full(n_dev, np.inf)  # earliest (recent) start of "off" beneath it
    # When the dark beneath began at the latest, for judging an "on" (``_dark_from_s``,
    # shared with ``subset_weight``: a ping "off" run dates from the last "on" before it).
    c_last = np.full(n_dev, -np.inf)
    w_last = np.full(n_dev, -np.inf)  # the same over ping timeouts only
    w_first = np.full(n_dev, np.inf)
    off_llr = np.zeros(n_dev)
    on_llr = np.zeros(n_dev)
    w = np.empty(n_dev)
    child_sum = np.zeros(n_dev)
    for d in range(n_dev):
        n_off[d] = 0
        n_on[d] = 0
        n_meters[d] = 0
    # Suppression (planned outage, open switch) covers the whole subtree.
    for j in range(n_dev):
        d = order[j]
        p = parent[d]
        suppressed[d] = suppressed_own[d] or (p >= 0 and suppressed[p])
    # Direct meters.
    for m in range(n_m):
        d = meter_device[m]
        if suppressed[d]:
            continue
        n_meters[d] += 1
        if state[m] == 2:
            n_off[d] += 1
            off_llr[d] += llr_off[source[m]]
            c = _dark_from_s(source[m], since_s[m], prev_s[m])
            if c > c_last[d]:
                c_last[d] = c
            t = since_s[m]
            if source[m] == 5:
                if t > w_last[d]:
                    w_last[d] = t
                if t >= onset_from_s and t < w_first[d]:
                    w_first[d] = t
                continue
            if t > t_last[d]:
                t_last[d] = t
            if t >= onset_from_s and t < t_first[d]:
                t_first[d] = t
    # Subtree totals (children before parents).
    for j in range(n_dev - 1, -1, -1):
        d = order[j]
        p = parent[d]
        if p >= 0:
            n_meters[p] += n_meters[d]
            n_off[p] += n_off[d]
            off_llr[p] += off_llr[d]
            if t_last[d] > t_last[p]:
                t_last[p] = t_last[d]
            if c_last[d] > c_last[p]:
                c_last[p] = c_last[d]
            if t_first[d] < t_first[p]:
                t_first[p] = t_first[d]
            if w_last[d] > w_last[p]:
                w_last[p] = w_last[d]
            if w_first[d] < w_first[p]:
                w_first[p] = w_first[d]
    # "On" newer than the dark evidence beneath a device counts against it. c_last only
    # grows going up, so a meter counts for a run of ancestors from its own device up to
    # (not including) the first whose dark evidence is newer: +1 there, -1 at the stop.
    for m in range(n_m):
        if state[m] != 1:
            continue
        d = meter_device[m]
        if suppressed[d]:
            continue
        a = last_s[m]
        if c_last[d] >= a:
            continue
        val = llr_on[source[m]]
        on_llr[d] += val
        n_on[d] += 1
        x = parent[d]
        while x >= 0:
            if c_last[x] >= a:
                on_llr[x] -= val
                n_on[x] -= 1
                break
            x = parent[x]
    for j in range(n_dev - 1, -1, -1):
        d = order[j]
        p = parent[d]
        if p >= 0:
            on_llr[p] += on_llr[d]
            n_on[p] += n_on[d]
    # Weights and the bottom-up DP.
    for j in range(n_dev - 1, -1, -1):
        d = order[j]
        n_unknown = n_meters[d] - n_off[d] - n_on[d]
        wd = prior[d] + off_llr[d] + on_llr[d] + n_unknown * llr_unknown
        if suppressed[d] or forced[d] == 2:
            wd = -_HUGE
        elif forced[d] == 1:
            wd = _HUGE
        w[d] = wd
        best = wd if wd > child_sum[d] else child_sum[d]
        p = parent[d]
        if p >= 0:
            child_sum[p] += best
    # Top-down decode: take a device when it explains its subtree at least as well as its
    # children do, unless an ancestor was taken.
    covered = np.zeros(n_dev, dtype=np.bool_)
    for j in range(n_dev):
        d = order[j]
        p = parent[d]
        cov = p >= 0 and (covered[p] or chosen[p])
        covered[d] = cov
        take = forced[d] == 1 or (w[d] > 0.0 and w[d] >= child_sum[d] - _TIE_S)
        chosen[d] = (not cov) and take
        margin[d] = w[d] - child_sum[d]
        if forced[d] == 1:
            onset_s[d] = forced_onset_s[d]
        elif np.isfinite(t_first[d]):
            onset_s[d] = t_first[d]
        elif np.isfinite(t_last[d]):
            onset_s[d] = t_last[d]
        elif np.isfinite(w_first[d]):
            onset_s[d] = w_first[d]
        else:
            onset_s[d] = w_last[d]


@njit(cache=True, nogil=True)
def _subset_weight_kernel(  # pragma: no cover - compiled
    meters: I32,
    state: I8,
    source: I8,
    since_s: F64,
    last_s: F64,
    prev_s: F64,
    prior_d: float,
    llr_off: F64,
    llr_on: F64,
    llr_unknown: float,
) -> float:
    # The device's weight as the inference's, over these meters only: the "on" threshold
    # is the newest dark-from time among the subset's own dated "off" meters.
    n = meters.shape[0]
    dark_from = -np.inf
    off_sum = 0.0
    n_off = 0
    for i in range(n):
        m = meters[i]
        if state[m] == 2:
            n_off += 1
            off_sum += llr_off[source[m]]
            c = _dark_from_s(source[m], since_s[m], prev_s[m])
            if c > dark_from:
                dark_from = c
    on_sum = 0.0
    n_on = 0
    for i in range(n):
        m = meters[i]
        if state[m] == 1 and last_s[m] > dark_from:
            n_on += 1
            on_sum += llr_on[source[m]]
    return float(prior_d + off_sum + on_sum + (n - n_off - n_on) * llr_unknown)


@njit(cache=True, nogil=True)
def _subset_weights_kernel(  # pragma: no cover - compiled
    meters: I32,
    starts: I64,
    ends: I64,
    state: I8,
    source: I8,
    since_s: F64,
    last_s: F64,
    prev_s: F64,
    priors: F64,
    llr_off: F64,
    llr_on: F64,
    llr_unknown: float,
    out: F64,
) -> None:
    for k in range(starts.shape[0]):
        out[k] = _subset_weight_kernel(
            meters[starts[k] : ends[k]],
            state,
            source,
            since_s,
            last_s,
            prev_s,
            priors[k],
            llr_off,
            llr_on,
            llr_unknown,
        )


@dataclass(frozen=True, eq=False)
class Inference:
    """One inference pass. Per device: ``chosen`` (out, and not under another chosen
    device), ``onset_s`` (earliest recent dark evidence beneath it, or the SCADA time),
    ``margin`` (log-odds of this explanation over the best alternative for its subtree),
    evidence counts over its (unsuppressed) subtree, and whether it is suppressed."""

    chosen: B
    onset_s: F64
    margin: F64
    n_off: I32
    n_on: I32
    n_meters: I32
    suppressed: B

    @property
    def out_devices(self) -> I32:
        return np.flatnonzero(self.chosen).astype(np.int32)

    def confidence(self, device: int) -> float:
        """Posterior-style confidence in (0, 1) from the margin (logistic)."""
        m = float(np.clip(self.margin[device], -700.0, 700.0))
        return float(1.0 / (1.0 + np.exp(-m)))


def infer_outages(
    tree: TreeIndex,
    meter_device: I32,
    meter_state: MeterState,
    prior_log_odds: F64,
    model: DetectionModel,
    *,
    now_s: float,
    forced: I8 | None = None,
    forced_onset_s: F64 | None = None,
    suppressed: B | None = None,
    llr_off: F64 | None = None,
) -> Inference:
    """Run one MAP pass over the whole network. O(devices + meters x depth).

    ``llr_off`` replaces ``model.llr_off_by_source()`` (the engine passes one whose ping
    timeout is weighed by the ping answer rate it observes)."""
    n_dev = len(tree)
    n_m = len(meter_state)
    _check(meter_device, np.int32, n_m, "meter_device")
    _check(prior_log_odds, np.float64, n_dev, "prior_log_odds")
    if n_m and (int(meter_device.min()) < 0 or int(meter_device.max()) >= n_dev):
        raise ValueError("meter_device has an index outside the device table")
    if forced is None:
        forced = np.zeros(n_dev, dtype=np.int8)
    if forced_onset_s is None:
        forced_onset_s = np.full(n_dev, np.nan)
    if suppressed is None:
        suppressed = np.zeros(n_dev, dtype=np.bool_)
    _check(forced, np.int8, n_dev, "forced")
    _check(forced_onset_s, np.float64, n_dev, "forced_onset_s")
    _check(suppressed, np.bool_, n_dev, "suppressed")
    if llr_off is None:
        llr_off = model.llr_off_by_source()
    _check(llr_off, np.float64, N_METER_KINDS, "llr_off")
    out = Inference(
        chosen=np.zeros(n_dev, dtype=np.bool_),
        onset_s=np.empty(n_dev),
        margin=np.empty(n_dev),
        n_off=np.empty(n_dev, dtype=np.int32),
        n_on=np.empty(n_dev, dtype=np.int32),
        n_meters=np.empty(n_dev, dtype=np.int32),
        suppressed=np.empty(n_dev, dtype=np.bool_),
    )
    _infer_outages_kernel(
        tree.parent,
        tree.order,
        meter_device,
        meter_state.state,
        meter_state.source,
        meter_state.since_s,
        meter_state.last_s,
        meter_state.prev_s,
        prior_log_odds,
        forced,
        forced_onset_s,
        suppressed,
        llr_off,
        model.llr_on_by_source(),
        model.llr_unknown(),
        float(now_s - model.onset_lookback_s),
        out.chosen,
        out.onset_s,
        out.margin,
        out.n_off,
        out.n_on,
        out.n_meters,
        out.suppressed,
    )
    return out


def subset_weight(
    meters: I32,
    meter_state: MeterState,
    prior_d: float,
    *,
    llr_off: F64,
    llr_on: F64,
    llr_unknown: float,
) -> float:
    """The weight (log-odds) of "this device is out" judged on ``meters`` only, by the
    inference's own per-device rule: ``prior_d`` + the "off" llr of each meter off (by its
    source; a ping timeout counts, at ``llr_off[PING_TIMEOUT]``) + the "on" llr of each
    meter on by evidence newer than the newest dark-from time among the subset's dated
    "off" meters (a ping "off" run from its last "on"; a ping timeout dates nothing) +
    ``llr_unknown`` for each other meter. Over every unsuppressed meter beneath an
    unforced device it is that device's weight in ``infer_outages``; the engine uses it
    on the meters that open outages beneath do not explain. O(len(meters)).

    ``meters`` are indices into ``meter_state`` (a meter listed twice counts twice);
    ``llr_off`` / ``llr_on`` are per-source tables (``DetectionModel.llr_off_by_source``,
    ``llr_on_by_source``). Raises ValueError on a bad dtype, shape or index."""
    ends = np.array([meters.shape[0] if isinstance(meters, np.ndarray) else 0], dtype=np.int64)
    weights = subset_weights(
        meters,
        np.zeros(1, dtype=np.int64),
        ends,
        np.array([prior_d], dtype=np.float64),
        meter_state,
        llr_off=llr_off,
        llr_on=llr_on,
        llr_unknown=llr_unknown,
    )
    return float(weights[0])


def subset_weights(
    meters: I32,
    starts: I64,
    ends: I64,
    priors: F64,
    meter_state: MeterState,
    *,
    llr_off: F64,
    llr_on: F64,
    llr_unknown: float,
) -> F64:
    """``subset_weight`` of many subsets in one call (one validation, one kernel call): subset k is
    ``meters[starts[k]:ends[k]]`` (subsets may overlap: a device's meters and, inside
    them, each child's), weighed with ``priors[k]``. The engine's explaining away judges a
    device and all its children this way on every pass. O(total subset length)."""
    n_m = len(meter_state)
    if (
        not isinstance(meters, np.ndarray)
        or meters.dtype != np.int32
        or meters.ndim != 1
        or not meters.flags.c_contiguous
    ):
        raise ValueError("meters must be a contiguous 1-d int32 array of meter indices")
    if meters.size and (int(meters.min()) < 0 or int(meters.max()) >= n_m):
        raise ValueError(f"meters has an index outside the meter table (0..{n_m - 1})")
    n_sub = starts.shape[0] if isinstance(starts, np.ndarray) and starts.ndim == 1 else -1
    _check(starts, np.int64, n_sub, "starts")
    _check(ends, np.int64, n_sub, "ends")
    _check(priors, np.float64, n_sub, "priors")
    if n_sub and (
        int(starts.min()) < 0 or int(ends.max()) > meters.shape[0] or bool((ends < starts).any())
    ):
        raise ValueError("each subset must be a slice of meters: 0 <= start <= end <= len")
    if bool(np.isnan(priors).any()):
        raise ValueError("a subset's prior (prior_d) is NaN")
    _check(meter_state.state, np.int8, n_m, "meter_state.state")
    _check(meter_state.source, np.int8, n_m, "meter_state.source")
    _check(meter_state.since_s, np.float64, n_m, "meter_state.since_s")
    _check(meter_state.last_s, np.float64, n_m, "meter_state.last_s")
    _check(meter_state.prev_s, np.float64, n_m, "meter_state.prev_s")
    _check(llr_off, np.float64, N_METER_KINDS, "llr_off")
    _check(llr_on, np.float64, N_METER_KINDS, "llr_on")
    if meters.size:
        src = meter_state.source[meters]
        if int(src.min()) < 0 or int(src.max()) >= N_METER_KINDS:
            raise ValueError("meter_state.source has a code outside the evidence kinds")
    unknown = float(llr_unknown)
    if not math.isfinite(unknown):
        raise ValueError("llr_unknown must be finite")
    out = np.empty(n_sub, dtype=np.float64)
    _subset_weights_kernel(
        meters,
        starts,
        ends,
        meter_state.state,
        meter_state.source,
        meter_state.since_s,
        meter_state.last_s,
        meter_state.prev_s,
        priors,
        llr_off,
        llr_on,
        unknown,
        out,
    )
    return out


def _check(arr: npt.NDArray[np.generic], dtype: type, n: int, name: str) -> None:
    if arr.dtype != dtype or arr.shape != (n,) or not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be a contiguous {np.dtype(dtype)}[{n}] array")
