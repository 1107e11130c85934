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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors._codes import N_METER_KINDS
from detectors._meter_state import MeterState
from detectors._model import DetectionModel
from detectors._tree import TreeIndex

I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

FREE = 0
FORCED_OUT = 1  # SCADA says open / tripped / locked out
FORCED_IN = 2  # SCADA says closed: this device is not the one out
_HUGE = 1e12
_TIE_S = 1e-6  # prefer the single upstream device when the two explanations tie


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
    # When the dark beneath began at the latest, for judging an "on": a run a ping "off"
    # began went dark unseen, after the meter was last seen on (``prev_s``), so an "on"
    # from between the two is no older than the fault (its answer time would hide them).
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
            c = prev_s[m] if source[m] == 4 and np.isfinite(prev_s[m]) else t
            if c > c_last[d]:
                c_last[d] = c
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


def _check(arr: npt.NDArray[np.generic], dtype: type, n: int, name: str) -> None:
    if arr.dtype != dtype or arr.shape != (n,) or not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be a contiguous {np.dtype(dtype)}[{n}] array")
