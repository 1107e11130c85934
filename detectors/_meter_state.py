"""Per-meter supply state from evidence: on, off or unknown, and when it changed.

Rules (event time throughout; see docs/detection-model.md):
- The latest evidence by event time decides the state; arrival order does not matter
  within a batch (the wrapper sorts by time) and late evidence never overrides newer.
- At an identical timestamp "on" beats "off": a meter can only say "on" while supplied,
  so a gasp and a restore at the same instant were a sub-second blip.
- A meter that stops talking keeps its last state; silence is never evidence of "off".
  Stale "on" is judged by the inference against the onset of nearby dark evidence.
- A ping timeout (the engine's "no reply") is silence made explicit, the weakest evidence:
  it never renews, extends or restarts a dark run (a meter already "off" is untouched), and
  it turns a meter "off" only when it is newer than everything else known about it.
- Late evidence that agrees with the state may move the start of the run earlier; late
  evidence that contradicts it records when the meter was last seen in the other state,
  and if it falls inside the current run, the run's start moves conservatively to the
  newest evidence of that run (we know the state changed again after it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors import _codes as c

I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]

# Strength of each kind of evidence within a run of one state (the strongest names the
# run's source): a customer report or a ping timeout never downgrades a last gasp.
_PING_OFF = c.PING_OFF
_RANK = np.array([3, 3, 3, 3, 3, 1, 2, 2], dtype=np.int8)


@dataclass(eq=False)
class MeterState:
    """The detector's memory per meter: 1 + 1 + 3 * 8 = 26 bytes a meter."""

    state: I8  # UNKNOWN / ON / OFF
    source: I8  # the evidence kind behind the state (strongest of the current run)
    since_s: F64  # event time the current state began (earliest evidence of the run)
    last_s: F64  # event time of the newest evidence of the current state
    prev_s: F64  # newest evidence of the other state before the run (-inf if none)

    @classmethod
    def empty(cls, n_meters: int) -> MeterState:
        return cls(
            state=np.zeros(n_meters, dtype=np.int8),
            source=np.zeros(n_meters, dtype=np.int8),
            since_s=np.full(n_meters, -np.inf),
            last_s=np.full(n_meters, -np.inf),
            prev_s=np.full(n_meters, -np.inf),
        )

    def __len__(self) -> int:
        return int(self.state.shape[0])

    @property
    def nbytes(self) -> int:
        return int(
            self.state.nbytes
            + self.source.nbytes
            + self.since_s.nbytes
            + self.last_s.nbytes
            + self.prev_s.nbytes
        )

    def grown(self, n_meters: int) -> MeterState:
        """A copy extended with unknown meters (a topology that gained meters)."""
        if n_meters < len(self):
            raise ValueError("meter state can grow, not shrink")
        extra = MeterState.empty(n_meters - len(self))
        return MeterState(
            state=np.concatenate([self.state, extra.state]),
            source=np.concatenate([self.source, extra.source]),
            since_s=np.concatenate([self.since_s, extra.since_s]),
            last_s=np.concatenate([self.last_s, extra.last_s]),
            prev_s=np.concatenate([self.prev_s, extra.prev_s]),
        )


@njit(cache=True, nogil=True)
def _supply_of(kind: int, v: float, v_dead_v: float, v_max_v: float) -> int:  # pragma: no cover
    """-1..-n: a status to return instead; else the supply state the evidence says."""
    if kind == 0:  # READING
        if np.isnan(v):
            return -1  # NO_INFO
        if not np.isfinite(v) or v < 0.0 or v > v_max_v:
            return -7  # REJECT_BAD_VOLTAGE
        return 2 if v < v_dead_v else 1
    if kind == 1 or kind == 4 or kind == 5 or kind == 6:
        return 2  # OFF
    if kind == 2 or kind == 3 or kind == 7:
        return 1  # ON
    return -3  # REJECT_BAD_KIND


@njit(cache=True, nogil=True)
def _apply_meter_evidence_kernel(  # pragma: no cover - compiled
    meter: I32,
    ts_s: F64,
    kind: I8,
    v_rms_v: F64,
    order: npt.NDArray[np.int64],
    state: I8,
    source: I8,
    since_s: F64,
    last_s: F64,
    prev_s: F64,
    oldest_s: float,
    newest_s: float,
    v_dead_v: float,
    v_max_v: float,
    rank: I8,
    status: I8,
    changed: I32,
) -> int:
    """Apply evidence rows in ``order`` (time-sorted); returns how many meters changed
    state (their indices are the first entries of ``changed``)."""
    n_meters = state.shape[0]
    n_changed = 0
    for j in range(order.shape[0]):
        i = order[j]
        m = meter[i]
        t = ts_s[i]
        k = kind[i]
        if m < 0 or m >= n_meters:
            status[i] = 2
            continue
        if k < 0 or k >= 8:
            status[i] = 3
            continue
        if not np.isfinite(t):
            status[i] = 4
            continue
        if t < oldest_s:
            status[i] = 5
            continue
        if t > newest_s:
            status[i] = 6
            continue
        s = _supply_of(k, v_rms_v[i], v_dead_v, v_max_v)
        if s < 0:
            status[i] = -s
            continue
        status[i] = 0
        cur = state[m]
        if k == 5:  # PING_TIMEOUT: silence, never dark evidence of its own (see above)
            if cur != 2 and t > last_s[m]:
                prev_s[m] = last_s[m]
                state[m] = 2
                source[m] = k
                since_s[m] = t
                last_s[m] = t
                changed[n_changed] = m
                n_changed += 1
            continue
        if s == cur:
            if t > last_s[m]:
                last_s[m] = t
            elif t < since_s[m] and t > prev_s[m]:
                since_s[m] = t
            # A ping "off" confirms a dark run; it never renames one that a gasp or a
            # zero read dated (the inference reads a PING_OFF run as begun unseen).
            if rank[k] > rank[source[m]] or (rank[k] == rank[source[m]] and k != _PING_OFF):
                source[m] = k
            continue
        newer = t > last_s[m] or (t == last_s[m] and s == 1)
        if newer:
            prev_s[m] = last_s[m]
            state[m] = s
            source[m] = k
            since_s[m] = t
            last_s[m] = t
            changed[n_changed] = m
            n_changed += 1
        elif t > since_s[m]:
            # The other state was seen inside the current run: the run restarted later.
            prev_s[m] = t
            since_s[m] = last_s[m]
        elif t > prev_s[m]:
            prev_s[m] = t
    return n_changed


@dataclass(frozen=True, eq=False)
class EvidenceResult:
    status: I8  # per input row, a code from detectors._codes (APPLIED, REJECT_...)
    changed: I32  # meters whose state changed, unique, ascending


def apply_meter_evidence(
    meter_state: MeterState,
    evidence: npt.NDArray[np.void],
    *,
    now_s: float,
    horizon_s: float,
    future_skew_s: float,
    v_dead_v: float = 20.0,
    v_max_v: float = 1000.0,
) -> EvidenceResult:
    """Fold a batch of meter evidence (``METER_EVIDENCE_DTYPE``) into ``meter_state``
    in place. Bad rows are rejected with a status code; the rest are applied."""
    if evidence.dtype != c.METER_EVIDENCE_DTYPE:
        raise TypeError(f"evidence must have dtype METER_EVIDENCE_DTYPE, got {evidence.dtype}")
    if evidence.ndim != 1:
        raise ValueError("evidence must be one-dimensional")
    _check_state(meter_state)
    if not (np.isfinite(now_s) and horizon_s > 0 and future_skew_s >= 0):
        raise ValueError("need a finite now_s, horizon_s > 0 and future_skew_s >= 0")
    meter = np.ascontiguousarray(evidence["meter"])
    ts = np.ascontiguousarray(evidence["ts_s"])
    kind = np.ascontiguousarray(evidence["kind"])
    v = np.ascontiguousarray(evidence["v_rms_v"])
    # Time order; "off" before "on" at equal times so that "on" wins ties.
    is_on = (kind == c.POWER_RESTORE) | (kind == c.PING_ON) | (kind == c.REPORT_ON)
    is_on |= (kind == c.READING) & (v >= v_dead_v)
    ts_key = np.where(np.isfinite(ts), ts, np.inf)
    order = np.lexsort((is_on, ts_key)).astype(np.int64)
    status = np.zeros(evidence.shape[0], dtype=np.int8)
    changed = np.empty(evidence.shape[0], dtype=np.int32)
    n = _apply_meter_evidence_kernel(
        meter,
        ts,
        kind,
        v,
        order,
        meter_state.state,
        meter_state.source,
        meter_state.since_s,
        meter_state.last_s,
        meter_state.prev_s,
        float(now_s - horizon_s),
        float(now_s + future_skew_s),
        float(v_dead_v),
        float(v_max_v),
        _RANK,
        status,
        changed,
    )
    return EvidenceResult(status=status, changed=np.unique(changed[:n]))


def _check_state(ms: MeterState) -> None:
    n = ms.state.shape[0]
    for name, arr, dtype in (
        ("state", ms.state, np.int8),
        ("source", ms.source, np.int8),
        ("since_s", ms.since_s, np.float64),
        ("last_s", ms.last_s, np.float64),
        ("prev_s", ms.prev_s, np.float64),
    ):
        if arr.dtype != dtype or arr.shape != (n,) or not arr.flags.c_contiguous:
            raise ValueError(f"MeterState.{name} must be contiguous {np.dtype(dtype)}[{n}]")
