"""The outage engine's state, and the small steps every part of it shares.

``EngineState`` declares, in one place, everything the engine knows: per-meter detector
state, SCADA state, planned windows, open outages, the ping queue and the answers seen.
The parts of ``OutageEngine`` (``_pings``, ``_explaining``, ``_premises``, ``_lifecycle``,
``_operator``) are mixins over it and add no state of their own (but for the
operator part's restore records, made on first use). It folds evidence in
(meter rows, SCADA operations) and offers the shared steps: log an entry, change an
outage's state, which meters are held out, whose evidence is refuted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.outages._network import Network
from gridwatch.outages._types import (
    METER_OUT,
    EngineConfig,
    EvidenceReject,
    Momentary,
    Outage,
    OutageChange,
    OutageState,
    PlannedOutage,
    TimelineEntry,
)

I32 = npt.NDArray[np.int32]


class EngineState:
    """The engine's state (declared here only) and the steps all its parts use."""

    def __init__(
        self,
        network: Network,
        *,
        now_s: float,
        model: det.DetectionModel | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        if not math.isfinite(now_s):
            raise ValueError("now_s must be finite")
        self.model = model or det.DetectionModel()
        self.config = config or EngineConfig()
        self.now_s = float(now_s)
        self._rng = np.random.default_rng(self.config.seed)
        self._set_network(network)
        self.meter_state = det.MeterState.empty(network.n_meters)
        n_dev = network.n_devices
        self._scada_kind = np.full(n_dev, -1, dtype=np.int8)  # last SCADA op, -1 none
        self._scada_ts = np.full(n_dev, -np.inf)
        self._trip_s = np.full(n_dev, np.nan)  # a trip awaiting reclose / lockout
        self._planned: dict[str, PlannedOutage] = {}
        self.outages: dict[str, Outage] = {}  # every outage this engine made, by key
        self._open_by_device: dict[int, str] = {}
        self._pending: dict[int, float] = {}  # device -> onset, not yet declared
        # device -> last time it was inside an open outage: the delay restarts from there.
        self._covered_s: dict[int, float] = {}
        self._ping_queue: list[tuple[int, str]] = []  # (meter, reason)
        self._outstanding: dict[int, tuple[str, float, str]] = {}  # meter -> (id, at, reason)
        self._momentaries: list[Momentary] = []
        # device -> recloser shots (trip + reclose) of a sequence that may still lock out
        self._shots: dict[int, list[Momentary]] = {}
        self._suspected: dict[int, float] = {}  # device -> when its neighbours were pinged
        # meter -> the newest evidence time it was pinged for as overdue (once per silence)
        self._overdue_pinged: dict[int, float] = {}
        self._overdue_checked_s = -math.inf
        # Pings answered / never answered: a head-end that does not answer makes a ping
        # timeout weigh nothing (``DetectionModel.observed_ping_answer_rate``).
        self._pings_answered = 0
        self._pings_timed_out = 0
        # meter -> start of the dark run its own verification ping was sent for
        self._premise_pinged: dict[int, float] = {}
        # device -> since when it is chosen with only its premise outage's meters dated dark
        self._widen_since: dict[int, float] = {}
        # Recent momentaries (evidence and recloser shots), kept after take_momentaries():
        # a meter dark since one of them, with nothing newer, lost its restore.
        self._recent_momentaries: list[Momentary] = []
        self.rejected: Counter[str] = Counter()
        self.last_rejects: list[EvidenceReject] = []
        self.last_inference: det.Inference | None = None
        self._ping_counter = 0

    def _set_network(self, network: Network) -> None:
        self.network = network
        self._prior = self.model.prior_log_odds(network.kind)

    def _open(self) -> list[Outage]:
        return [self.outages[k] for k in self._open_by_device.values()]

    def _reject(self, source: str, rows: Iterable[int], reasons: Iterable[str]) -> None:
        for i, reason in zip(rows, reasons, strict=True):
            self.rejected[f"{source}:{reason}"] += 1
            self.last_rejects.append(EvidenceReject(source, int(i), reason))  # type: ignore[arg-type]

    def _apply_meters(self, evidence: npt.NDArray[np.void]) -> None:
        result = det.apply_meter_evidence(
            self.meter_state,
            evidence,
            now_s=self.now_s,
            horizon_s=self.config.horizon_s,
            future_skew_s=self.config.future_skew_s,
            v_dead_v=self.model.v_dead_v,
            v_max_v=self.model.v_max_v,
        )
        bad = np.flatnonzero(result.status >= det.REJECT_BAD_INDEX)
        self._reject("meter", bad, (det.STATUS_NAMES[s] for s in result.status[bad]))
        # A ping reply settles that meter's outstanding ping.
        ok = result.status == det.APPLIED
        kinds = evidence["kind"]
        replied = evidence["meter"][ok & ((kinds == det.PING_ON) | (kinds == det.PING_OFF))]
        for m in replied.tolist():
            if self._outstanding.pop(int(m), None) is not None:
                self._pings_answered += 1

    def _apply_scada(self, evidence: npt.NDArray[np.void]) -> list[OutageChange]:
        if evidence.dtype != det.SCADA_EVIDENCE_DTYPE or evidence.ndim != 1:
            raise TypeError("scada evidence must be a 1-d SCADA_EVIDENCE_DTYPE array")
        changes: list[OutageChange] = []
        n_dev = self.network.n_devices
        oldest = self.now_s - self.config.horizon_s
        newest = self.now_s + self.config.future_skew_s
        ts_key = np.where(np.isfinite(evidence["ts_s"]), evidence["ts_s"], np.inf)
        for i in np.argsort(ts_key, kind="stable").tolist():
            dev, ts, kind = (
                int(evidence["device"][i]),
                float(evidence["ts_s"][i]),
                int(evidence["kind"][i]),
            )
            reason = None
            if not 0 <= dev < n_dev:
                reason = "bad_index"
            elif not 0 <= kind < det._codes.N_SCADA_KINDS:
                reason = "bad_kind"
            elif not math.isfinite(ts):
                reason = "bad_time"
            elif ts < oldest:
                reason = "too_old"
            elif ts > newest:
                reason = "future"
            elif ts < self._scada_ts[dev]:
                reason = "superseded"  # an older operation than one already applied
            if reason is not None:
                self._reject("scada", [i], [reason])
                continue
            self._scada_ts[dev] = ts
            self._scada_kind[dev] = kind
            if kind == det.SCADA_TRIP:
                if np.isnan(self._trip_s[dev]):
                    self._trip_s[dev] = ts
            elif kind == det.SCADA_RECLOSE:
                if not np.isnan(self._trip_s[dev]) and not self._device_outage_on(dev):
                    # trip + reclose is a momentary by definition, however long it took;
                    # held until the sequence ends (a lockout folds it into the outage)
                    meters = self.network.meters_under(dev)
                    shot = Momentary(
                        dev,
                        float(self._trip_s[dev]),
                        ts,
                        int(meters.size),
                        self._customers(meters),
                        "scada_reclose",
                    )
                    self._shots.setdefault(dev, []).append(shot)
                    self._recent_momentaries.append(shot)
                    self._pending.pop(dev, None)
                self._trip_s[dev] = np.nan
            elif kind == det.SCADA_LOCKOUT and dev in self._shots:
                # IEEE 1366: the shots before a lockout are part of the sustained outage,
                # which began at the first trip of the sequence.
                first = self._shots[dev][0].start_s
                t = self._trip_s[dev]
                self._trip_s[dev] = first if np.isnan(t) else min(float(t), first)
            else:
                self._trip_s[dev] = np.nan if kind == det.SCADA_CLOSE else self._trip_s[dev]
            if dev in self._open_by_device:
                o = self.outages[self._open_by_device[dev]]
                changes.append(self._log(o, ts, "scada", {"operation": det.SCADA_KIND_NAMES[kind]}))
        return changes

    def _forced(self) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
        # SCADA acts on the link a device's switch cuts: on a re-parented path that is the
        # link above another node (``gate``); a device that gates no node forces nothing
        # (e.g. a recloser opened to isolate a section now fed through a tie).
        gate = self.network.gates
        kind = self._scada_kind[gate]
        scada_ts = self._scada_ts[gate]
        trip_s = self._trip_s[gate]
        forced = np.zeros(kind.shape[0], dtype=np.int8)
        out = (kind == det.SCADA_OPEN) | (kind == det.SCADA_LOCKOUT) | (kind == det.SCADA_TRIP)
        forced[out] = det.FORCED_OUT
        closed = ((kind == det.SCADA_CLOSE) | (kind == det.SCADA_RECLOSE)) & (
            scada_ts >= self.now_s - self.config.scada_close_trust_s
        )
        forced[closed] = det.FORCED_IN
        onset = np.where(np.isnan(trip_s), scada_ts, trip_s)
        return forced, np.ascontiguousarray(onset, dtype=np.float64)

    def _suppressed(self) -> npt.NDArray[np.bool_]:
        sup = self.network.cut.copy()
        for p in self._planned.values():
            if p.start_s <= self.now_s < p.end_s and p.device < sup.shape[0]:
                sup[p.device] = True
        return sup

    def _customers(self, meters: I32) -> int:
        cust = self.network.meter_customer[meters]
        return int(np.unique(cust[cust >= 0]).shape[0])

    def _log(self, o: Outage, at_s: float, kind: str, detail: dict[str, object]) -> OutageChange:
        o.timeline.append(TimelineEntry(at_s, kind, detail))
        return OutageChange(o.key, kind, at_s, o.state, o.device, detail)

    def _set_state(
        self, o: Outage, state: OutageState, kind: str, detail: dict[str, object]
    ) -> OutageChange:
        o.state = state
        if state == "confirmed" and o.confirmed_s is None:
            o.confirmed_s = self.now_s
        if state in ("restored", "cancelled"):
            o.restored_s = self.now_s if state == "restored" else None
            self._open_by_device.pop(o.device, None)
        return self._log(o, self.now_s, kind, detail)

    def _llr_off(self) -> npt.NDArray[np.float64]:
        """The model's "off" table with a ping timeout weighed by the answer rate seen."""
        rate = self.model.observed_ping_answer_rate(self._pings_answered, self._pings_timed_out)
        return self.model.llr_off_by_source(ping_answer_rate=rate)

    def _device_outage_on(self, d: int) -> bool:
        """Whether ``d`` has an open outage of the device itself (not a premise one)."""
        key = self._open_by_device.get(d)
        return key is not None and self.outages[key].scope == "device"

    def _add_momentary(self, m: Momentary) -> None:
        self._momentaries.append(m)
        self._recent_momentaries.append(m)

    def _covered(self, devs: I32, cover: list[int]) -> npt.NDArray[np.bool_]:
        """Which of ``devs`` are at or beneath a device of ``cover`` (Euler intervals)."""
        net = self.network
        if not cover or not devs.size:
            return np.zeros(devs.shape[0], dtype=np.bool_)
        c = np.array(cover, dtype=np.int64)
        starts = net.tree.tin[c]
        order = np.argsort(starts)
        starts = starts[order]
        reach = np.maximum.accumulate(net.tree.tout[c][order])
        t = net.tree.tin[devs]
        k = np.searchsorted(starts, t, side="right") - 1
        covered: npt.NDArray[np.bool_] = (k >= 0) & (t < reach[np.maximum(k, 0)])
        return covered

    def _dated_off(self) -> npt.NDArray[np.bool_]:
        """Meters "off" by evidence that dates it (not a ping timeout: silence)."""
        ms = self.meter_state
        mask: npt.NDArray[np.bool_] = (ms.state == det.OFF) & (ms.source != det.PING_TIMEOUT)
        return mask

    def _already_out(self, meters: I32, *, but: Outage | None = None) -> npt.NDArray[np.bool_]:
        """Which of ``meters`` are still out in some open outage other than ``but`` (after
        a topology swap a device can newly cover customers an older outage holds)."""
        out = [o.meters[o.meter_status == METER_OUT] for o in self._open() if o is not but]
        if not out:
            return np.zeros(meters.shape[0], dtype=np.bool_)
        return np.isin(meters, np.concatenate(out))  # one pass, not one per open outage

    def _held_meters(self, d: int, inf: det.Inference, *, but: Outage | None = None) -> I32:
        """The meters an outage on ``d`` would hold: beneath it, not suppressed, not out in
        another open outage (than ``but``, the one moving there)."""
        meters = self.network.meters_under(d)
        meters = meters[~inf.suppressed[self.network.meter_device[meters]]]
        return meters[~self._already_out(meters, but=but)]

    def _newest_off_s(self, meters: I32) -> float:
        """Newest start of dated "off" among ``meters`` (a ping timeout dates nothing)."""
        ms = self.meter_state
        off = meters[(ms.state[meters] == det.OFF) & (ms.source[meters] != det.PING_TIMEOUT)]
        return float(ms.since_s[off].max()) if off.size else -math.inf

    def _take_meters(self, o: Outage, meters: I32) -> None:
        """``o`` also holds ``meters`` (as out); what it knew of its own meters stays."""
        all_m = np.union1d(o.meters, meters).astype(np.int32)
        status = np.zeros(all_m.shape[0], dtype=np.int8)
        restored_s = np.full(all_m.shape[0], np.nan)
        pos = np.searchsorted(all_m, o.meters)
        status[pos], restored_s[pos] = o.meter_status, o.meter_restored_s
        o.meters, o.meter_status, o.meter_restored_s = all_m, status, restored_s
        o.customers_affected = self._customers(all_m)

    def _refute_dark_evidence(self, o: Outage, at_s: float, *, meters: I32 | None = None) -> int:
        """``o``'s meters (or ``meters``) whose "off" run began no later than ``at_s`` and
        that no other open outage holds out become *unknown*; their pings are dropped."""
        ms = self.meter_state
        cand = o.meters if meters is None else meters
        held = np.zeros(cand.shape[0], dtype=np.bool_)
        for other in self._open():
            if other is not o:
                held |= np.isin(cand, other.meters[other.meter_status == METER_OUT])
        cand = cand[~held]
        silence = ms.source[cand] == det.PING_TIMEOUT  # dates nothing: never kept "off"
        stale = cand[(ms.state[cand] == det.OFF) & ((ms.since_s[cand] <= at_s) | silence)]
        ms.state[stale] = det.UNKNOWN
        drop = set(cand.tolist())
        for m in drop:
            self._outstanding.pop(m, None)
        self._ping_queue = [(m, r) for m, r in self._ping_queue if m not in drop]
        o.confirm_pings.clear()
        o.restore_pings.clear()
        return int(stale.shape[0])
