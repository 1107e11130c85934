"""The outage engine: evidence in, outage lifecycle changes out. No I/O, no clock.

It keeps the per-meter detector state, SCADA state, planned outages and open outages,
runs the detector kernels (``detectors``) after every batch, and turns each inference
into lifecycle changes: predicted -> confirmed -> partially_restored -> restored, plus
cancelled, merges, moves, splits and nested outages. Time only moves by ``tick``
(event time); the caller runs ``apply``/``tick`` off the event loop (kernels release the GIL).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.outages._network import Network
from gridwatch.outages._types import (
    METER_OUT,
    METER_RESTORED,
    METER_TRANSFERRED,
    METER_UNVERIFIED,
    EngineConfig,
    EvidenceReject,
    Momentary,
    Outage,
    OutageChange,
    OutageState,
    PingRequest,
    PlannedOutage,
    TimelineEntry,
)

I32 = npt.NDArray[np.int32]
# Confirmed at once, no declaration delay. An "open" waits the delay like any other
# evidence: crews open devices for seconds while switching (isolate, back-feed, close).
_SUSTAINED_SCADA = (det.SCADA_LOCKOUT,)
# Dark evidence that a single premise's outage may rest on (a customer report alone, or a
# ping timeout, is not enough: a report is weaker, a timeout is silence).
_PREMISE_SOURCES = (det.READING, det.LAST_GASP, det.PING_OFF)


class OutageEngine:
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

    # ------------------------------------------------------------------ inputs

    def apply(
        self,
        meter_evidence: npt.NDArray[np.void] | None = None,
        scada_evidence: npt.NDArray[np.void] | None = None,
        *,
        now_s: float | None = None,
    ) -> list[OutageChange]:
        """Fold a batch of evidence in, re-run inference, return what changed.

        Rows that break the rules (unknown index, bad kind, time outside
        [now - horizon, now + skew], NaN time, corrupt voltage) are rejected one by one
        (``last_rejects``, counted in ``rejected``); the rows around them still apply.
        ``now_s`` first moves event time forward to it (never back) without expiring
        pings: the batch is judged at the time it was committed, not at the last tick."""
        if now_s is not None:
            if not math.isfinite(now_s):
                raise ValueError("now_s must be finite")
            self.now_s = max(self.now_s, float(now_s))
        self.last_rejects = []
        changes: list[OutageChange] = []
        if scada_evidence is not None and scada_evidence.size:
            changes += self._apply_scada(scada_evidence)
        if meter_evidence is not None and meter_evidence.size:
            self._apply_meters(meter_evidence)
        changes += self._reconcile()
        return changes

    def tick(self, now_event_s: float) -> list[OutageChange]:
        """Advance event time: unanswered pings time out, delays elapse, windows open."""
        if not math.isfinite(now_event_s):
            raise ValueError("now_event_s must be finite")
        if now_event_s > self.now_s:  # time never runs backwards
            self.now_s = float(now_event_s)
        self._expire_pings()
        return self._reconcile()

    def pings_wanted(self, sent_s: float | None = None) -> list[PingRequest]:
        """Pings to send now (the caller publishes them on the contract's ping topic).

        ``sent_s``: the event (service clock) time they actually leave, when that is later
        than the engine's now (a runner that publishes after its step): each then times
        out ``ping_timeout_s`` after ``sent_s`` and is stamped with it. None: now. A time
        before now is taken as now (a ping cannot leave before the evidence it follows)."""
        if sent_s is not None and not math.isfinite(sent_s):
            raise ValueError("sent_s must be finite")
        at = self.now_s if sent_s is None else max(self.now_s, float(sent_s))
        out: list[PingRequest] = []
        keep: list[tuple[int, str]] = []
        for meter, reason in self._ping_queue:
            if meter in self._outstanding:
                continue
            if len(out) >= self.config.max_pings_per_call:
                keep.append((meter, reason))
                continue
            self._ping_counter += 1
            request_id = f"{uuid.uuid4().hex[:12]}-{self._ping_counter}"
            self._outstanding[meter] = (request_id, at, reason)
            out.append(PingRequest(meter, request_id, reason, at))
        self._ping_queue = keep
        return out

    def add_planned(self, planned: PlannedOutage) -> None:
        if not 0 <= planned.device < self.network.n_devices:
            raise ValueError(f"planned outage {planned.planned_id}: unknown device index")
        self._planned[planned.planned_id] = planned

    def remove_planned(self, planned_id: str) -> None:
        self._planned.pop(planned_id, None)

    def set_topology(self, network: Network, *, at_s: float | None = None) -> list[OutageChange]:
        """Swap in a new network (a switch operated) while outages may be open.

        Deliberate rules: device and meter indices must stay stable (the tables may only
        grow); open outages keep their device and their affected meters, so a customer
        moved to a live feeder is restored one by one when their meter shows "on", never
        by a guess; undeclared candidates are dropped and re-inferred on the new tree."""
        if network.n_devices < self.network.n_devices or network.n_meters < self.network.n_meters:
            raise ValueError("a topology swap may add devices or meters, never remove them")
        if at_s is not None and math.isfinite(at_s) and at_s > self.now_s:
            self.now_s = float(at_s)
        at = self.now_s
        self._set_network(network)
        if network.n_meters > len(self.meter_state):
            self.meter_state = self.meter_state.grown(network.n_meters)
        grow = network.n_devices - self._scada_kind.shape[0]
        if grow:
            self._scada_kind = np.concatenate([self._scada_kind, np.full(grow, -1, np.int8)])
            self._scada_ts = np.concatenate([self._scada_ts, np.full(grow, -np.inf)])
            self._trip_s = np.concatenate([self._trip_s, np.full(grow, np.nan)])
        self._pending.clear()
        changes = [
            self._log(o, at, "topology_changed", {"devices": network.n_devices})
            for o in self._open()
        ]
        self._recheck_moved_meters()
        return changes + self._reconcile()

    def _recheck_moved_meters(self) -> None:
        """Meters an open outage holds as out that the switching moved out from under its
        device (fed through a tie now): their "off" says how things were before the switch,
        not now. Left as is, the stale gasps would point at the live feeder's devices
        (a false outage upstream of any new fault there). They become unknown and are
        pinged: an answer restores them one by one, silence makes them "off" afresh."""
        ms = self.meter_state
        for o in self._open():
            out = o.meters[o.meter_status == METER_OUT]
            if not out.size:
                continue
            moved = out[~np.isin(out, self.network.meters_under(o.device))]
            moved = moved[ms.state[moved] == det.OFF]
            if not moved.size:
                continue
            ms.state[moved] = det.UNKNOWN
            for m in moved.tolist():
                self._ping_queue.append((int(m), "restore"))

    def adopt(self, outages: Iterable[Outage]) -> None:
        """Take back open outages persisted before a restart (same keys, same devices).

        The caller re-seeds the meter evidence they rest on; an outage whose device is
        out of range or already held by another open outage is refused."""
        for o in outages:
            if not 0 <= o.device < self.network.n_devices:
                raise ValueError(f"outage {o.key}: unknown device index {o.device}")
            if not o.is_open:
                raise ValueError(f"outage {o.key}: only open outages can be adopted")
            held = self._open_by_device.get(o.device)
            if held is not None and held != o.key:
                raise ValueError(f"outage {o.key}: device {o.device} already has {held}")
            self.outages[o.key] = o
            self._open_by_device[o.device] = o.key

    # ----------------------------------------------------------------- queries

    def open_outages(self) -> list[Outage]:
        return self._open()

    def take_momentaries(self) -> list[Momentary]:
        out, self._momentaries = self._momentaries, []
        return out

    @property
    def state_nbytes(self) -> int:
        """Detector memory: per-meter state plus per-device SCADA state."""
        return (
            self.meter_state.nbytes
            + self._scada_kind.nbytes
            + self._scada_ts.nbytes
            + self._trip_s.nbytes
        )

    # --------------------------------------------------------------- internals

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

    # -------------------------------------------------------- the lifecycle

    def _release_shots(self) -> None:
        """Recloser shots whose sequence ended without a lockout become momentaries."""
        window = self.config.reclose_sequence_s
        for dev, shots in list(self._shots.items()):
            if self._device_outage_on(dev):
                continue  # folded when the outage on it was declared
            if self.now_s - shots[-1].end_s >= window and np.isnan(self._trip_s[dev]):
                self._momentaries.extend(shots)
                del self._shots[dev]

    def _fold_shots(self, o: Outage) -> list[OutageChange]:
        """An outage declared on a device with held shots: they were its first
        interruptions (IEEE 1366), not momentaries; its start is the first trip."""
        shots = self._shots.pop(int(self.network.gates[o.device]), None)
        if not shots:
            return []
        o.start_s = min(o.start_s, shots[0].start_s)
        detail: dict[str, object] = {"shots": len(shots), "first_trip_s": shots[0].start_s}
        return [self._log(o, self.now_s, "reclose_shots", detail)]

    def _reconcile(self) -> list[OutageChange]:
        self._release_shots()
        net = self.network
        forced, forced_onset = self._forced()
        suppressed = self._suppressed()
        prior = self._prior
        sticky = [d for d, k in self._open_by_device.items() if self.outages[k].scope == "device"]
        if sticky:  # hysteresis: an open outage's device keeps the doubt
            prior = prior.copy()
            prior[sticky] += self.config.sticky_log_odds
        inf = det.infer_outages(
            net.tree,
            net.meter_device,
            self.meter_state,
            prior,
            self.model,
            now_s=self.now_s,
            forced=forced,
            forced_onset_s=forced_onset,
            suppressed=suppressed,
            llr_off=self._llr_off(),
        )
        self.last_inference = inf
        changes: list[OutageChange] = []
        chosen = inf.out_devices.tolist()
        chosen_set = set(chosen)
        vetoed: set[int] = set()  # chosen, but out only through outages already open
        delay = self.config.declaration_delay_s

        # 1. Chosen devices: declare, grow/merge, or wait out the declaration delay.
        self._widen_since = {d: t for d, t in self._widen_since.items() if d in chosen_set}
        work = sorted(chosen, key=lambda x: (float(inf.onset_s[x]), x))
        stand_ins: list[int] = []  # judged out in place of a vetoed device (below)
        i = 0
        while i < len(work):
            d = work[i]
            i += 1
            if d in self._open_by_device:
                o = self.outages[self._open_by_device[d]]
                o.confidence = inf.confidence(d)
                if o.scope == "premise":
                    # The device itself out: judged from its own evidence (not the premise
                    # meters'), after the same delay, as any new outage would be.
                    own = self._own_onset(d, [o], forced, forced_onset)
                    since = (
                        own if math.isfinite(own) else self._widen_since.setdefault(d, self.now_s)
                    )
                    if self.now_s - since >= delay:
                        changes += self._widen_premise(o, inf)
                continue
            if any(self._device_outage_on(a) for a in net.ancestors(d)):
                self._covered_s[d] = self.now_s
                continue  # already inside a bigger open outage
            onset = float(inf.onset_s[d])
            below = [o for o in self._open() if o.device != d and net.is_under(o.device, d)]
            own_onset = self._own_onset(d, below, forced, forced_onset)
            # Outages beneath whose device SCADA has just closed: their meters' "off"
            # predates the close (restores take seconds to arrive) and says nothing
            # about ``d``. Only their dark evidence from after the close counts here.
            closed = [o for o in below if forced[o.device] == det.FORCED_IN]
            if closed:
                below = [o for o in below if o not in closed]
                dated = [t for t in (own_onset, self._dark_after_close(closed)) if math.isfinite(t)]
                if not dated:
                    self._pending.pop(d, None)
                    continue
                own_onset = min(dated)
                onset = max(onset, own_onset)
            # Confirmed outages beneath that began well before this device went out are
            # separate, earlier faults: they stay open (nested under it). The rest merge,
            # and so does any still unconfirmed one (a hypothesis, e.g. one meter whose
            # restore after a momentary was lost makes its transformer look out earlier).
            # "Well before" is judged against the earliest this device could have gone
            # out: meters found dark by a ping went dark unseen, any time after they were
            # last seen on (an outage beneath from then is not provably a separate fault).
            window = self.config.merge_window_s
            could_s = min(own_onset, self._own_onset(d, below, forced, forced_onset, earliest=True))
            merging = [o for o in below if o.state == "predicted" or o.start_s >= could_s - window]
            # Separate earlier outages beneath explain their own meters: the device is
            # judged on the rest (explaining away), else two one-meter stations failing
            # hours apart name the switch above them. With no dark meter of its own, the
            # outages beneath are one fault only if they began together.
            earlier = [o for o in below if o not in merging]
            if not math.isfinite(own_onset) and below:
                latest_s = max(o.start_s for o in below)
                earlier = [o for o in below if o.start_s < latest_s - window]
                earlier = [o for o in earlier if o.state != "predicted"]
                merging = [o for o in merging if o not in earlier]
            # Vetoed when, on its own meters, it is no outage at all, or its children out
            # explain them better (a transformer chosen over one lit fuse-way and one
            # dark one only through older outages beneath). What made it look out is
            # still so: the earlier outages stay chosen, and the children are judged in
            # its place (never a "device back" for what is still dark).
            explaining = (
                self._children_explaining(d, earlier, inf)
                if earlier and forced[d] != det.FORCED_OUT
                else []
            )
            if explaining or (
                earlier and forced[d] != det.FORCED_OUT and self._own_weight(d, earlier, inf) <= 0.0
            ):
                vetoed.add(d)
                self._pending.pop(d, None)
                for c in [o.device for o in earlier if o.scope == "device"] + explaining:
                    if c not in chosen_set and c not in stand_ins:
                        stand_ins.append(c)
                        work.append(c)
                continue
            if below and not merging:
                onset = own_onset  # a new fault: its own delay, from its own evidence
            # Out since before its parent outage ended: judge it from that end, not from
            # its old onset (a device left open for seconds after the upstream repair).
            since = max(onset, self._covered_s.get(d, -math.inf))
            sustained_scada = (
                forced[d] == det.FORCED_OUT
                and int(self._scada_kind[net.gates[d]]) in _SUSTAINED_SCADA
            )
            if not (sustained_scada or self.now_s - since >= delay):
                self._pending.setdefault(d, onset)  # may still be a momentary
                continue
            self._pending.pop(d, None)
            if merging:
                apart = [o for o in below if o not in merging]
                changes += self._grow(d, merging, inf, apart=apart, own_onset_s=own_onset)
                continue
            # Only meters nobody else holds and nothing suppresses: after a tie re-parents
            # the network, an open device can be left with none (nobody dark, no outage).
            held = self._held_meters(d, inf)
            if held.size and not self._all_lit_since(held, onset):
                changes += self._declare(d, inf, sustained_scada, start_s=onset)

        if vetoed:
            chosen = [c for c in chosen if c not in vetoed] + stand_ins
            chosen_set = set(chosen)

        # 2. Candidates that vanished before the delay: momentary, or just re-explained.
        for d, onset in list(self._pending.items()):
            if d in chosen_set:
                continue
            del self._pending[d]
            re_explained = any(a in chosen_set for a in net.ancestors(d)) or any(
                c != d and net.is_under(c, d) for c in chosen
            )
            if not re_explained and inf.n_on[d] > 0 and not inf.suppressed[d]:
                meters = net.meters_under(d)
                self._add_momentary(
                    Momentary(
                        d, onset, self.now_s, int(meters.size), self._customers(meters), "evidence"
                    )
                )

        # 3. Open outages: restoration meter by meter, moves, nests, confirmation.
        beneath = self._open_beneath()
        for o in list(self._open()):
            if inf.suppressed[o.device]:
                continue  # inside a planned window or an open switch: frozen deliberately
            changes += self._restore_meters(o)
            if o.scope == "premise":
                changes += self._premise_progress(o)
                continue
            if any(a in chosen_set for a in net.ancestors(o.device)):
                continue  # an upstream candidate explains it now: grows or vanishes later
            if o.device in chosen_set and forced[o.device] != det.FORCED_OUT:
                # Chosen only through separate earlier outages' old darkness beneath it:
                # the outage belongs to the children its own meters name.
                earlier = self._earlier(o, beneath.get(o.device, []))
                out_below = (
                    self._children_explaining(
                        o.device, earlier, inf, bonus=self.config.sticky_log_odds
                    )
                    if earlier
                    else []
                )
                if out_below and not any(c in self._open_by_device for c in out_below):
                    settling, waiting = self._leave_behind(o, out_below)
                    changes += settling
                    if not waiting:
                        changes += self._move_down(o, out_below, inf)
                    continue
            if o.device in chosen_set:
                # Judged out again after looking restored: a later restoration must ping
                # (and verify) afresh, never close the leftovers as "unverified" at once.
                o.device_restored_s = None
                o.restore_pings.clear()
                o.restore_asked.clear()
                changes += self._maybe_confirm(o, inf)
                if o.meters_out == 0 and o.state != "predicted":
                    changes.append(
                        self._set_state(o, "restored", "restored", {"why": "all meters on"})
                    )
                continue
            inside = [
                c
                for c in chosen
                if c != o.device and net.is_under(c, o.device) and c not in self._open_by_device
            ]
            if inside and o.state == "predicted":
                changes += self._move_down(o, inside, inf)
            elif inside:
                # Meters still "off" right after the device came back may only be slow to
                # say so (their "off" predates the restore): ask them first (restore
                # pings), nest only what evidence from after the restore says is dark.
                changes += self._start_restore_pings(o)
                if not self._restore_waiting(o):
                    # A device with a meter seen on since the restore is lit: its dark
                    # meters are nested alone (a station whose gasp was lost answers its
                    # ping "off" a moment after its lit neighbours answer "on").
                    dark_s = max(o.start_s, o.dark_s)
                    dark = [c for c in inside if not self._seen_on_since(c, dark_s)]
                    changes += self._nest(o, dark, inf)
            else:
                changes += self._device_back(o)

        # 4. Dark meters nobody explains: single-premise outages.
        changes += self._premise_outages(chosen, inf)
        self._queue_suspect_pings(chosen)
        self._queue_overdue_pings(inf)
        return changes

    def _queue_overdue_pings(self, inf: det.Inference) -> None:
        """Meters "on" that went quiet (``read_overdue_s`` since their newest evidence) are
        asked once per silence whether they have supply. The silence itself stays no
        evidence: only the answer ("off", a read, a restore) is; no answer is a timeout."""
        cfg = self.config
        if cfg.read_overdue_s <= 0 or cfg.overdue_pings_max == 0:
            return
        if self.now_s - self._overdue_checked_s < cfg.overdue_check_s:
            return
        self._overdue_checked_s = self.now_s
        ms, net = self.meter_state, self.network
        recent = self.now_s - self.model.onset_lookback_s
        quiet = ms.state == det.ON
        quiet &= (ms.last_s <= self.now_s - cfg.read_overdue_s) & (ms.last_s >= recent)
        if not quiet.any():
            return
        meters = np.flatnonzero(quiet).astype(np.int32)
        meters = meters[~inf.suppressed[net.meter_device[meters]] & ~self._already_out(meters)]
        queued = 0
        for m in meters.tolist():
            last = float(ms.last_s[m])
            if self._overdue_pinged.get(m) == last or self._ping_pending(m):
                continue
            self._overdue_pinged[m] = last
            self._ping_queue.append((m, "overdue"))
            queued += 1
            if queued >= cfg.overdue_pings_max:
                break  # the rest at the next check
        # Forget meters that have spoken since (their newest evidence moved on).
        if len(self._overdue_pinged) > 4 * cfg.overdue_pings_max:
            self._overdue_pinged = {
                m: t for m, t in self._overdue_pinged.items() if float(ms.last_s[m]) == t
            }

    def _llr_off(self) -> npt.NDArray[np.float64]:
        """The model's "off" table with a ping timeout weighed by the answer rate seen."""
        rate = self.model.observed_ping_answer_rate(self._pings_answered, self._pings_timed_out)
        return self.model.llr_off_by_source(ping_answer_rate=rate)

    @property
    def ping_answer_rate(self) -> float:
        """How often this engine's pings were answered (with the model's prior)."""
        return self.model.observed_ping_answer_rate(self._pings_answered, self._pings_timed_out)

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

    def _queue_suspect_pings(self, chosen: list[int]) -> None:
        """Dark meters no outage explains (too few gasps to be sure): ping a sample of
        their neighbours, so a transformer with one gasp in four is not missed. Each
        device is suspected at most once per ``suspect_window_s``. A ping timeout is no
        reason to suspect anything (else unanswered pings would spread more pings)."""
        ms, net = self.meter_state, self.network
        window = self.config.suspect_window_s
        recent_off = self._dated_off() & (ms.since_s >= self.now_s - window)
        if not recent_off.any():
            return
        devs = np.unique(net.meter_device[recent_off]).astype(np.int32)
        cover = chosen + [d for d in self._open_by_device if self._device_outage_on(d)]
        devs = devs[~self._covered(devs, cover)]
        for dv in devs.tolist():
            if self._suspected.get(dv, -np.inf) >= self.now_s - window:
                continue
            self._suspected[dv] = self.now_s
            meters = net.meters_under(dv)
            cand = meters[ms.state[meters] != det.OFF]
            n = min(self.config.ping_sample, int(cand.shape[0]))
            if n:
                for m in self._rng.choice(cand, size=n, replace=False).tolist():
                    self._ping_queue.append((int(m), "suspect"))

    def _own_onset(
        self,
        d: int,
        below: list[Outage],
        forced: npt.NDArray[np.int8],
        forced_onset: npt.NDArray[np.float64],
        *,
        earliest: bool = False,
    ) -> float:
        """When ``d`` itself went out, leaving aside the dark meters that the open
        outages ``below`` already explain: the SCADA time (first trip) if SCADA says so,
        else the earliest recent "off" among the other meters beneath it; -inf when
        nothing but the open outages' meters is dark (their merge is all there is).
        ``earliest``: the earliest it could have gone out instead: a run a ping "off"
        began counts from when its meter was last seen on (the answer only found it)."""
        if forced[d] == det.FORCED_OUT and math.isfinite(float(forced_onset[d])):
            return float(forced_onset[d])
        if not below:
            return -math.inf
        meters = self.network.meters_under(d)
        held = np.zeros(meters.shape[0], dtype=np.bool_)
        for o in below:
            held |= np.isin(meters, o.meters[o.meter_status == METER_OUT])
        rest = meters[~held]
        ms = self.meter_state
        recent = self.now_s - self.model.onset_lookback_s
        dated = (ms.state[rest] == det.OFF) & (ms.source[rest] != det.PING_TIMEOUT)
        off = rest[dated & (ms.since_s[rest] >= recent)]
        if not off.size:
            return -math.inf
        begun = ms.since_s[off]
        if earliest:
            found = (ms.source[off] == det.PING_OFF) & np.isfinite(ms.prev_s[off])
            begun = np.where(found, np.minimum(ms.prev_s[off], begun), begun)
        return float(begun.min())

    def _own_weight(self, d: int, below: list[Outage], inf: det.Inference) -> float:
        """The inference's weight of ``d`` out, from its meters that the open outages
        ``below`` do not hold (their darkness is explained already)."""
        return float(self._subtree_weights(d, below, inf, [])[0])

    def _subtree_weights(
        self, d: int, below: list[Outage], inf: det.Inference, beneath: list[int]
    ) -> npt.NDArray[np.float64]:
        """``_own_weight`` of ``d`` and of each device of ``beneath`` (devices under it):
        the meters are gathered once, in pre-order, so each device's are a slice, and all
        are weighed in one kernel call (explaining away runs on every pass)."""
        net = self.network
        meters, tin = net.subtree_meters(d)
        keep = ~inf.suppressed[net.meter_device[meters]]
        held = [o.meters[o.meter_status == METER_OUT] for o in below]
        if held:
            keep &= ~np.isin(meters, np.concatenate(held))
        meters, tin = meters[keep], tin[keep]
        devices = np.array([d, *beneath], dtype=np.int32)
        return det.subset_weights(
            meters,
            np.searchsorted(tin, net.tree.tin[devices], side="left").astype(np.int64),
            np.searchsorted(tin, net.tree.tout[devices], side="left").astype(np.int64),
            self._prior[devices],
            self.meter_state,
            llr_off=self._llr_off(),
            llr_on=self.model.llr_on_by_source(),
            llr_unknown=self.model.llr_unknown(),
        )

    def _dark_after_close(self, closed: list[Outage]) -> float:
        """The earliest dated "off" among the ``closed`` outages' meters still out that
        began after their device's SCADA close; -inf when there is none."""
        ms = self.meter_state
        first = math.inf
        for o in closed:
            close_s = float(self._scada_ts[self.network.gates[o.device]])
            out = o.meters[o.meter_status == METER_OUT]
            dated = (ms.state[out] == det.OFF) & (ms.source[out] != det.PING_TIMEOUT)
            fresh = out[dated & (ms.since_s[out] > close_s)]  # not a scan of every meter
            if fresh.size:
                first = min(first, float(ms.since_s[fresh].min()))
        return first if math.isfinite(first) else -math.inf

    def _seen_on_since(self, d: int, at_s: float) -> bool:
        """Whether a meter beneath ``d`` is "on" by evidence newer than ``at_s``."""
        ms = self.meter_state
        meters = self.network.meters_under(d)
        return bool(((ms.state[meters] == det.ON) & (ms.last_s[meters] > at_s)).any())

    def _all_lit_since(self, meters: I32, onset_s: float) -> bool:
        """Every meter seen on after ``onset_s``: e.g. a device opened by SCADA whose
        section is fed through a tie. Nobody is dark, so there is no outage to declare."""
        ms = self.meter_state
        lit = (ms.state[meters] == det.ON) & (ms.last_s[meters] > onset_s)
        return bool(meters.size) and bool(lit.all())

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

    def _new_outage(self, d: int, inf: det.Inference, cause: str, start_s: float) -> Outage:
        meters = self._held_meters(d, inf)
        o = Outage(
            key=uuid.uuid4().hex,
            device=d,
            state="predicted",
            start_s=start_s,
            confidence=inf.confidence(d),
            meters=meters,
            meter_status=np.zeros(meters.shape[0], dtype=np.int8),
            meter_restored_s=np.full(meters.shape[0], np.nan),
            customers_affected=self._customers(meters),
            cause=cause,
            dark_s=self._newest_off_s(meters),
        )
        self.outages[o.key] = o
        self._open_by_device[d] = o.key
        return o

    def _declare(
        self, d: int, inf: det.Inference, sustained_scada: bool, *, start_s: float | None = None
    ) -> list[OutageChange]:
        kind = int(self._scada_kind[self.network.gates[d]])
        cause = f"scada_{det.SCADA_KIND_NAMES[kind]}" if inf.margin[d] > 1e11 else "inferred"
        start = float(inf.onset_s[d]) if start_s is None else start_s
        o = self._new_outage(d, inf, cause, start)
        detail: dict[str, object] = {
            "why": cause,
            "meters_off": int(inf.n_off[d]),
            "meters_on": int(inf.n_on[d]),
            "meters": o.meters_affected,
            "confidence": round(o.confidence, 6),
        }
        changes = [self._log(o, self.now_s, "predicted", detail)]
        changes += self._fold_shots(o)
        if sustained_scada or cause.startswith("scada"):
            changes.append(self._set_state(o, "confirmed", "confirmed", {"why": cause}))
        else:
            self._request_confirm_pings(o)
            if not o.confirm_pings:
                changes.append(
                    self._set_state(o, "confirmed", "confirmed", {"why": "every meter off"})
                )
        return changes

    def _request_confirm_pings(self, o: Outage) -> None:
        out = o.meters[o.meter_status == METER_OUT]
        candidates = out[self.meter_state.state[out] != det.OFF]
        n = min(self.config.ping_sample, int(candidates.shape[0]))
        if n == 0:
            return
        sample = self._rng.choice(candidates, size=n, replace=False)
        for m in sample.tolist():
            o.confirm_pings.add(int(m))
            self._ping_queue.append((int(m), "confirm"))

    def _maybe_confirm(self, o: Outage, inf: det.Inference) -> list[OutageChange]:
        if o.state != "predicted":
            return []
        o.confirm_pings = {m for m in o.confirm_pings if self._ping_pending(m)}
        if o.confirm_pings:
            return []
        return [
            self._set_state(
                o,
                "confirmed",
                "confirmed",
                {
                    "why": "ping sample answered dark",
                    "confidence": round(inf.confidence(o.device), 6),
                },
            )
        ]

    def _ping_pending(self, m: int) -> bool:
        return m in self._outstanding or any(q == m for q, _ in self._ping_queue)

    def _grow(
        self,
        d: int,
        below: list[Outage],
        inf: det.Inference,
        *,
        apart: list[Outage] | None = None,
        own_onset_s: float = -math.inf,
    ) -> list[OutageChange]:
        """Evidence points upstream of open outages: the oldest grows, the others merge.
        Outages ``apart`` (earlier, separate faults) keep their meters and stay open."""
        below.sort(key=lambda o: (o.start_s, o.key))
        keep, others = below[0], below[1:]
        changes: list[OutageChange] = []
        meters = self.network.meters_under(d)
        meters = meters[~inf.suppressed[self.network.meter_device[meters]]]
        for o in apart or []:
            meters = meters[~np.isin(meters, o.meters[o.meter_status == METER_OUT])]
        if not meters.size:
            # Nothing to take over (a device a tie left with no meters of its own, all
            # suppressed): the outages beneath stay as they are.
            return []
        old_device, old_scope = keep.device, keep.scope
        del self._open_by_device[old_device]
        status = np.zeros(meters.shape[0], dtype=np.int8)
        restored_s = np.full(meters.shape[0], np.nan)
        for o in below:  # carry over what each merged outage already knew per meter
            pos = np.searchsorted(meters, o.meters)
            ok = (pos < meters.shape[0]) & (
                meters[np.minimum(pos, meters.shape[0] - 1)] == o.meters
            )
            status[pos[ok]] = o.meter_status[ok]
            restored_s[pos[ok]] = o.meter_restored_s[ok]
        keep.device, keep.meters, keep.meter_status, keep.meter_restored_s = (
            d,
            meters,
            status,
            restored_s,
        )
        keep.customers_affected = self._customers(meters)
        keep.scope = "device"
        keep.dark_s = max(keep.dark_s, self._newest_off_s(meters))
        onset = own_onset_s if apart else float(inf.onset_s[d])
        keep.start_s = min([o.start_s for o in below] + [onset])
        keep.confidence = inf.confidence(d)
        self._open_by_device[d] = keep.key
        for o in others:
            changes.append(self._set_state(o, "cancelled", "merged_into", {"into": keep.key}))
        changes += self._fold_shots(keep)
        changes.append(
            self._log(
                keep,
                self.now_s,
                "grew",
                {
                    "from_device": old_device,
                    "from_scope": old_scope,
                    "merged": [o.key for o in others],
                    "meters": keep.meters_affected,
                },
            )
        )
        return changes

    def _leave_behind(self, o: Outage, below: list[int]) -> tuple[list[OutageChange], bool]:
        """Before a confirmed outage moves down to ``below``: its meters that stay behind
        and are still out were told "out", so they are settled first, as when a device
        comes back (restore pings, then restored, nested or "unverified"). Returns the
        changes and whether their pings are still being waited for. A predicted outage
        told nobody: it moves at once."""
        if o.state == "predicted":
            return [], False
        under = np.zeros(o.meters.shape[0], dtype=np.bool_)
        for c in below:
            under |= np.isin(o.meters, self.network.meters_under(c))
        left = o.meters[(o.meter_status == METER_OUT) & ~under]
        if not left.size:
            return [], False
        changes = self._start_restore_pings(o, only=left)
        if self._restore_waiting(o, only=left):
            return changes, True
        changes += self._close_silent(o, (o.meter_status == METER_OUT) & np.isin(o.meters, left))
        return changes, False

    def _move_down(self, o: Outage, below: list[int], inf: det.Inference) -> list[OutageChange]:
        """An open outage whose device turned out lit moves to the devices still out beneath
        it: the first keeps the outage, the rest split off as new ones. What it knew of each
        meter there stays (a meter seen back is not out again). A confirmed outage keeps
        its settled meters left behind (``_leave_behind``) on record, and what it holds
        under the split-off devices is transferred to them as nested outages: their
        customers were told "out" already, so they hear "still out", not a second "out"."""
        below = self._topmost(below)
        below.sort(key=lambda c: (float(inf.onset_s[c]), c))
        first, rest = below[0], below[1:]
        told = o.state != "predicted"
        changes: list[OutageChange] = []
        old = o.device
        del self._open_by_device[old]
        if told:
            for c in rest:
                moved = np.isin(o.meters, self.network.meters_under(c))
                o.meter_status[moved & (o.meter_status == METER_OUT)] = METER_TRANSFERRED
        meters = self._held_meters(first, inf, but=o)
        if not told:
            keep = np.isin(o.meters, meters)
            o.meters, o.meter_status = o.meters[keep], o.meter_status[keep]
            o.meter_restored_s = o.meter_restored_s[keep]
        self._take_meters(o, meters)
        o.device = first
        o.dark_s = self._newest_off_s(meters)
        o.confidence = inf.confidence(first)
        # The outage on ``first`` is not back: a later restoration asks afresh.
        o.device_restored_s = None
        o.restore_pings.clear()
        o.restore_asked.clear()
        self._open_by_device[first] = o.key
        o.confirm_pings.clear()
        if not told:
            self._request_confirm_pings(o)
        changes.append(
            self._log(
                o, self.now_s, "moved", {"from_device": old, "why": "meters seen on upstream"}
            )
        )
        for c in rest:
            n = self._new_outage(c, inf, "nested" if told else "inferred", float(inf.onset_s[c]))
            n.timeline.append(TimelineEntry(self.now_s, "split", {"from": o.key}))
            if told:
                n.parent_key, n.state, n.confirmed_s = o.key, "confirmed", self.now_s
            changes.append(OutageChange(n.key, "split", self.now_s, n.state, c, {"from": o.key}))
            if not told:
                self._request_confirm_pings(n)
        return changes

    def _open_beneath(self) -> dict[int, list[Outage]]:
        """Per device with an open outage, the open outages beneath it: one walk up from
        each open outage (O(open x depth), not open x open)."""
        out: dict[int, list[Outage]] = {}
        for x in self._open():
            for a in self.network.ancestors(x.device):
                if a in self._open_by_device:
                    out.setdefault(a, []).append(x)
        return out

    def _earlier(self, o: Outage, beneath: list[Outage]) -> list[Outage]:
        """Of the open outages ``beneath`` ``o``'s device, those that began well before
        it: separate faults (predicted ones are hypotheses still, never held apart)."""
        window = self.config.merge_window_s
        return [
            x
            for x in beneath
            if x is not o
            and x.is_open
            and x.state != "predicted"
            and x.start_s < o.start_s - window
        ]

    def _children_explaining(
        self, d: int, earlier: list[Outage], inf: det.Inference, *, bonus: float = 0.0
    ) -> list[int]:
        """Explaining away: judged on the meters the separate ``earlier`` outages beneath
        do not hold, the children of ``d`` that are out, when together they explain those
        meters better than ``d`` itself (plus ``bonus``: an open outage's stickiness).
        Empty when ``d`` explains them as well or better."""
        kids = [c for c in self.network.children(d) if not inf.suppressed[c]]
        w = self._subtree_weights(d, earlier, inf, kids)
        own = float(w[0]) + bonus
        weights = dict(zip(kids, w[1:].tolist(), strict=True))
        out = [c for c, w in weights.items() if w > 0.0]
        if not out or own >= sum(weights[c] for c in out):
            return []
        return out

    def _topmost(self, devices: list[int]) -> list[int]:
        s = set(devices)
        return [c for c in devices if not any(a in s for a in self.network.ancestors(c))]

    def _nest(self, o: Outage, below: list[int], inf: det.Inference) -> list[OutageChange]:
        """Upstream device back, part of it still dark: nested outage(s) for that part;
        their meters are transferred, never marked restored."""
        changes: list[OutageChange] = []
        for c in self._topmost(below):
            moved = np.isin(o.meters, self.network.meters_under(c)) & (o.meter_status == METER_OUT)
            if not moved.any():
                continue  # its meters are all back already: nothing is still dark there
            o.meter_status[moved] = METER_TRANSFERRED
            n = self._new_outage(c, inf, "nested", o.start_s)
            n.parent_key = o.key
            n.confirmed_s = self.now_s
            n.state = "confirmed"
            changes.append(
                self._log(
                    n,
                    self.now_s,
                    "nested",
                    {"parent": o.key, "why": "still dark after upstream restored"},
                )
            )
        changes += self._device_back(o)
        return changes

    def _restore_meters(self, o: Outage) -> list[OutageChange]:
        """Meters of an outage seen "on" after its start are restored one by one."""
        out = o.meter_status == METER_OUT
        if not out.any():
            return []
        idx = np.flatnonzero(out)
        m = o.meters[idx]
        ms = self.meter_state
        # An "on" from before the dark evidence the outage rests on is not a restoration:
        # a meter back after a momentary, then silent when the fault came (its start can
        # be that momentary's, from one meter whose restore was lost).
        lit = (ms.state[m] == det.ON) & (ms.last_s[m] > max(o.start_s, o.dark_s))
        if not lit.any():
            return []
        hit = idx[lit]
        o.meter_status[hit] = METER_RESTORED
        o.meter_restored_s[hit] = np.maximum(ms.since_s[m[lit]], o.start_s)
        self._drop_restore_pings(m[lit])
        changes = [self._log(o, self.now_s, "meters_restored", {"meters": o.meters[hit].tolist()})]
        if o.state == "confirmed" and o.meters_out > 0:
            changes.append(self._set_state(o, "partially_restored", "partially_restored", {}))
        return changes

    def _drop_restore_pings(self, meters: I32) -> None:
        """Meters seen on need no restore ping: left to time out, the ping's "no reply"
        would be newer than their own restore and read as "off" again. A late answer
        still applies as evidence."""
        seen = set(meters.tolist())
        for m in seen:
            if m in self._outstanding and self._outstanding[m][2] == "restore":
                del self._outstanding[m]
        self._ping_queue = [
            (m, why) for m, why in self._ping_queue if not (why == "restore" and m in seen)
        ]

    def _device_back(self, o: Outage) -> list[OutageChange]:
        """The outage's device is no longer judged out. Restored only as far as evidence
        goes: meters not seen on are pinged, and those that never answer are closed as
        "unverified" (not restored) so no customer is told "restored" while dark."""
        if o.state == "predicted":
            # Never confirmed: the ping sample (or later evidence) withdrew it. Meters that
            # answered "on" are not a restoration of an outage nobody was told about.
            return [self._set_state(o, "cancelled", "cancelled", {"why": "evidence withdrawn"})]
        changes = self._start_restore_pings(o)
        if self._restore_waiting(o):
            if o.state in ("predicted", "confirmed") and o.meters_restored:
                changes.append(self._set_state(o, "partially_restored", "partially_restored", {}))
            return changes
        changes += self._close_silent(o, o.meter_status == METER_OUT)
        changes.append(self._set_state(o, "restored", "restored", {"why": "device back"}))
        return changes

    def _close_silent(self, o: Outage, still: npt.NDArray[np.bool_]) -> list[OutageChange]:
        """Meters of ``o`` (``still`` out) once their device is back and the wait for their
        pings is over: those that answered dark are nested, the silent ones "unverified"."""
        changes: list[OutageChange] = []
        if still.any():
            changes += self._nest_premises(o, still)
            still &= o.meter_status == METER_OUT
        if still.any():
            o.meter_status[still] = METER_UNVERIFIED
            changes.append(
                self._log(o, self.now_s, "unverified", {"meters": o.meters[still].tolist()})
            )
            # Silence after the restore is no evidence of darkness: the dark evidence from
            # before it is refuted (their device is back), so that only evidence newer than
            # the restore (a gasp, a zero read, a ping "off", a report) makes them dark
            # again. Left "off", it re-declared the device (or a premise outage) at once.
            back = o.device_restored_s if o.device_restored_s is not None else self.now_s
            self._refute_dark_evidence(o, back, meters=o.meters[still])
        return changes

    def _nest_premises(self, o: Outage, still: npt.NDArray[np.bool_]) -> list[OutageChange]:
        """Meters of ``o`` (``still`` out) that evidence dated after its device came back
        says are dark (a ping answered "off", a zero read, a new gasp): verified dark, not
        silent, so they are transferred to a nested single-premise outage per device (a
        one-meter transformer that failed while its breaker was out), never "unverified"."""
        ms = self.meter_state
        back = o.device_restored_s if o.device_restored_s is not None else self.now_s
        m = o.meters
        fresh = (
            still
            & (ms.state[m] == det.OFF)
            & (ms.last_s[m] > back)
            & np.isin(ms.source[m], _PREMISE_SOURCES)
        )
        if not fresh.any():
            return []
        changes: list[OutageChange] = []
        dark = m[fresh]
        devs = self.network.meter_device[dark]
        for dv in np.unique(devs).tolist():
            meters = dark[devs == dv]
            key = self._open_by_device.get(dv)
            if key is not None and self.outages[key].scope != "premise":
                continue  # its device's own outage judges them; left as they are
            o.meter_status[np.isin(m, meters)] = METER_TRANSFERRED
            if key is not None:
                changes += self._add_premise_meters(self.outages[key], meters)
                continue
            n = self._open_premise(dv, meters, "nested", o.start_s, o.confidence)
            n.state, n.parent_key, n.confirmed_s = "confirmed", o.key, self.now_s
            detail: dict[str, object] = {
                "parent": o.key,
                "scope": "premise",
                "meters": n.meters_affected,
                "why": "answered dark after upstream restored",
            }
            changes.append(self._log(n, self.now_s, "nested", detail))
        return changes

    def _back_s(self, o: Outage) -> float:
        """The event time ``o``'s device is back from: its SCADA close (which may be
        stamped a little ahead of ``now``: a batch is judged at its commit time), else now."""
        gate = int(self.network.gates[o.device])
        kind, ts = int(self._scada_kind[gate]), float(self._scada_ts[gate])
        if kind in (det.SCADA_CLOSE, det.SCADA_RECLOSE) and ts >= o.start_s:
            return max(self.now_s, ts)
        return self.now_s

    def _start_restore_pings(self, o: Outage, *, only: I32 | None = None) -> list[OutageChange]:
        """Once per restoration of ``o``'s device: note when it is back, then ping the
        meters not yet seen on (``_ask_restore``), or only those of ``only``."""
        if o.device_restored_s is None:
            o.device_restored_s = self._back_s(o)
            o.restore_asked.clear()
        return self._ask_restore(o, only=only)

    def _stale_out(self, o: Outage, *, only: I32 | None = None) -> I32:
        """Meters of ``o`` (or of ``only``) still out with no evidence since its device came
        back: their "off" says how things were before the restore, not after."""
        back = o.device_restored_s
        out: I32 = o.meters[o.meter_status == METER_OUT]
        if only is not None:
            out = out[np.isin(out, only)]
        if back is None:
            return out
        stale: I32 = out[self.meter_state.last_s[out] <= back]
        return stale

    def _ask_restore(self, o: Outage, *, only: I32 | None = None) -> list[OutageChange]:
        """Ping, once each, the meters of ``o`` still out with no evidence since its device
        came back; never before that instant: a ping answered before the SCADA close says
        "off" truthfully, and that answer would nest the whole feeder (an MQTT replay
        ticking every event second pinged 0.1 s before the close's own time stamp)."""
        back = o.device_restored_s
        if back is None or self.now_s < back:
            return []
        new = [m for m in self._stale_out(o, only=only).tolist() if m not in o.restore_asked]
        if not new:
            return []
        for m in new:
            o.restore_asked.add(m)
            o.restore_pings.add(m)
            self._ping_queue.append((m, "restore"))
        return [self._log(o, self.now_s, "restore_pings", {"meters": len(new)})]

    def _restore_pings_pending(self, o: Outage) -> bool:
        waiting = set(o.meters[o.meter_status == METER_OUT].tolist())
        o.restore_pings = {m for m in o.restore_pings if m in waiting and self._ping_pending(m)}
        return bool(o.restore_pings)

    def _restore_waiting(self, o: Outage, *, only: I32 | None = None) -> bool:
        """Whether the restoration of ``o``'s device is still being judged: restore pings
        are out, or meters still out have said nothing since it came back (their restore,
        a read or a ping answer may be on its way). Bounded: after ``ping_timeout_s`` +
        ``restore_allowance_s`` of event time, what is still "off" is judged dark."""
        if self._restore_pings_pending(o):
            return True
        back = o.device_restored_s
        if back is None:
            return False
        if self.now_s >= back + self.config.ping_timeout_s + self.config.restore_allowance_s:
            return False
        return bool(self._stale_out(o, only=only).size)

    def _expire_pings(self) -> None:
        """Pings unanswered ``ping_timeout_s`` after they left become PING_TIMEOUT
        evidence, stamped when the ping left: it says the meter did not answer then (any
        evidence the meter gave after that is newer and wins)."""
        limit = self.now_s - self.config.ping_timeout_s
        expired = [(m, at, why) for m, (_, at, why) in self._outstanding.items() if at <= limit]
        if not expired:
            return
        for m, _, _ in expired:
            del self._outstanding[m]
        # An overdue meter was asked because it had gone quiet: its silence goes on and
        # says nothing more (nor about how often this head-end answers).
        late = [(m, at) for m, at, why in expired if why != "overdue"]
        if not late:
            return
        ev = det.meter_evidence(len(late))
        ev["meter"] = [m for m, _ in late]
        ev["ts_s"] = [at for _, at in late]
        ev["kind"] = det.PING_TIMEOUT
        self._pings_timed_out += len(late)
        self._apply_meters(ev)

    # ------------------------------------------------------ single premises

    def _premise_outages(self, chosen: list[int], inf: det.Inference) -> list[OutageChange]:
        """A meter dark by evidence that dates it (gasp, zero read, ping "off"), with no
        later "on", that no chosen device or open outage explains: once the declaration
        delay has passed since it went dark, the outage of that service point, on the
        meter's device, holding only such meters (``scope="premise"``). Each is pinged
        once first: a lost restore after a momentary answers "on" and never declares."""
        dark = self._unexplained_dark(chosen, inf)
        self._ping_premises(dark)
        if not dark.size:
            return []
        ms, net = self.meter_state, self.network
        due = dark[self.now_s - ms.since_s[dark] >= self.config.declaration_delay_s]
        due = due[~self._after_momentary(due)]
        changes: list[OutageChange] = []
        devs = net.meter_device[due]
        for dv in np.unique(devs).tolist():
            meters = due[devs == dv]
            key = self._open_by_device.get(dv)
            if key is None:
                changes += self._declare_premise(dv, meters)
            elif self.outages[key].scope == "premise":
                changes += self._add_premise_meters(self.outages[key], meters)
        return changes

    def _unexplained_dark(self, chosen: list[int], inf: det.Inference) -> I32:
        ms, net = self.meter_state, self.network
        recent = self.now_s - self.model.onset_lookback_s
        # Few meters are dark: select them first, then look at their sources (a scan of
        # every meter's source with np.isin cost ~4 ms a pass on a million meters).
        off = np.flatnonzero(ms.state == det.OFF).astype(np.int32)
        m = off[np.isin(ms.source[off], _PREMISE_SOURCES) & (ms.since_s[off] >= recent)]
        if not m.size:
            return np.zeros(0, dtype=np.int32)
        dev = net.meter_device[m]
        keep = ~inf.suppressed[dev] & ~self._covered(dev, chosen)
        m = m[keep]
        out: I32 = m[~self._already_out(m)]
        return out

    def _after_momentary(self, meters: I32) -> npt.NDArray[np.bool_]:
        """Meters dark since a momentary of their device or one above it (from a little
        before it began to its end) and with no evidence after its end: their restore was
        lost, they are not a premise outage until newer evidence says dark."""
        ms, net = self.meter_state, self.network
        horizon = self.now_s - self.model.onset_lookback_s
        self._recent_momentaries = [m for m in self._recent_momentaries if m.end_s >= horizon]
        hit = np.zeros(meters.shape[0], dtype=np.bool_)
        if not meters.size:
            return hit
        dev = net.meter_device[meters]
        since, last = ms.since_s[meters], ms.last_s[meters]
        for mo in self._recent_momentaries:
            if mo.device >= net.n_devices:
                continue
            inside = (since >= mo.start_s - self.config.merge_window_s) & (since <= mo.end_s)
            hit |= inside & (last <= mo.end_s) & self._covered(dev, [mo.device])
        return hit

    def _ping_premises(self, dark: I32) -> None:
        """Ping each dark meter once per dark run (its verification), unless a ping's
        own answer made it dark: that was the verification."""
        since, source = self.meter_state.since_s, self.meter_state.source
        pinged: dict[int, float] = {}
        for m in dark.tolist():
            t = float(since[m])
            pinged[m] = t
            if source[m] == det.PING_OFF:
                continue
            if self._premise_pinged.get(m) != t and not self._ping_pending(m):
                self._ping_queue.append((m, "premise"))
        self._premise_pinged = pinged

    def _declare_premise(self, device: int, meters: I32) -> list[OutageChange]:
        ms = self.meter_state
        llr = float(self._llr_off()[ms.source[meters]].sum())
        confidence = 1.0 / (1.0 + math.exp(-min(llr, 700.0)))
        start_s = float(ms.since_s[meters].min())
        o = self._open_premise(device, meters, "inferred", start_s, confidence)
        detail: dict[str, object] = {
            "why": "premise",
            "scope": "premise",
            "meters_off": o.meters_affected,
            "meters": o.meters_affected,
            "confidence": round(o.confidence, 6),
        }
        return [self._log(o, self.now_s, "predicted", detail), *self._premise_confirm(o)]

    def _open_premise(
        self, device: int, meters: I32, cause: str, start_s: float, confidence: float
    ) -> Outage:
        """A new open (predicted) single-premise outage on ``device`` holding ``meters``."""
        meters = np.sort(meters).astype(np.int32)
        o = Outage(
            key=uuid.uuid4().hex,
            device=device,
            state="predicted",
            start_s=start_s,
            confidence=confidence,
            meters=meters,
            meter_status=np.zeros(meters.shape[0], dtype=np.int8),
            meter_restored_s=np.full(meters.shape[0], np.nan),
            customers_affected=self._customers(meters),
            cause=cause,
            dark_s=float(self.meter_state.since_s[meters].max()),
            scope="premise",
        )
        self.outages[o.key] = o
        self._open_by_device[device] = o.key
        return o

    def _add_premise_meters(self, o: Outage, meters: I32) -> list[OutageChange]:
        new = meters[~np.isin(meters, o.meters)]
        if not new.size:
            return []
        ms = self.meter_state
        self._take_meters(o, new)
        o.dark_s = max(o.dark_s, float(ms.since_s[new].max()))
        o.start_s = min(o.start_s, float(ms.since_s[new].min()))
        detail: dict[str, object] = {"meters": new.tolist(), "scope": "premise"}
        return [self._log(o, self.now_s, "premise_meters", detail), *self._premise_confirm(o)]

    def _take_meters(self, o: Outage, meters: I32) -> None:
        """``o`` also holds ``meters`` (as out); what it knew of its own meters stays."""
        all_m = np.union1d(o.meters, meters).astype(np.int32)
        status = np.zeros(all_m.shape[0], dtype=np.int8)
        restored_s = np.full(all_m.shape[0], np.nan)
        pos = np.searchsorted(all_m, o.meters)
        status[pos], restored_s[pos] = o.meter_status, o.meter_restored_s
        o.meters, o.meter_status, o.meter_restored_s = all_m, status, restored_s
        o.customers_affected = self._customers(all_m)

    def _premise_confirm(self, o: Outage) -> list[OutageChange]:
        """Confirmed once no verification ping of its dark meters is pending (answered
        "off" or never answered: a dark meter cannot answer)."""
        if o.state != "predicted":
            return []
        out = o.meters[o.meter_status == METER_OUT].tolist()
        o.confirm_pings = {m for m in out if self._ping_pending(m)}
        if o.confirm_pings:
            return []
        detail: dict[str, object] = {"why": "premise dark", "scope": "premise"}
        return [self._set_state(o, "confirmed", "confirmed", detail)]

    def _premise_progress(self, o: Outage) -> list[OutageChange]:
        """A premise outage ends when its meters are seen on (restored one by one);
        one withdrawn before it was confirmed (its ping answered "on") is cancelled."""
        if o.meters_out:
            return self._premise_confirm(o)
        if o.state == "predicted":
            return [self._set_state(o, "cancelled", "cancelled", {"why": "evidence withdrawn"})]
        return [self._set_state(o, "restored", "restored", {"why": "all meters on"})]

    def _widen_premise(self, o: Outage, inf: det.Inference) -> list[OutageChange]:
        """The premise outage's device is now judged out itself: the outage (same key)
        takes every meter of the device nobody else holds."""
        d = o.device
        self._take_meters(o, self._held_meters(d, inf))
        o.dark_s = max(o.dark_s, self._newest_off_s(o.meters))
        o.start_s = min(o.start_s, float(inf.onset_s[d]))
        o.scope = "device"
        detail: dict[str, object] = {
            "from_device": d,
            "from_scope": "premise",
            "merged": [],
            "meters": o.meters_affected,
        }
        changes = [self._log(o, self.now_s, "grew", detail)]
        if o.state == "predicted":
            o.confirm_pings.clear()
            self._request_confirm_pings(o)
            changes += self._maybe_confirm(o, inf)
        return changes

    # ------------------------------------------------------ operator actions
    # The control API writes an operator's action straight to the store; the runner hands
    # it here so that the engine's next upsert agrees with the operator instead of quietly
    # reversing it. Each returns the changes to persist ("operator_applied" entries).

    def operator_confirm(
        self, key: str, *, at_s: float | None = None, detail: dict[str, object] | None = None
    ) -> list[OutageChange]:
        """A predicted outage is confirmed by hand: its ping sample no longer decides it.
        Once confirmed, evidence can only end it through restoration (verified by pings),
        never withdraw it silently. Anything but a predicted outage: no-op."""
        o = self.outages.get(key)
        if o is None or o.state != "predicted":
            return []
        self._operator_time(at_s)
        o.confirm_pings.clear()
        if at_s is not None and math.isfinite(at_s):
            o.confirmed_s = max(float(at_s), o.start_s)
        info: dict[str, object] = {"action": "confirm", **(detail or {})}
        return [self._set_state(o, "confirmed", "operator_applied", info)]

    def operator_cancel(
        self, key: str, *, at_s: float | None = None, detail: dict[str, object] | None = None
    ) -> list[OutageChange]:
        """A false positive. The outage is cancelled, and the evidence it rested on is
        refuted so that it is not declared again from the same evidence: its meters'
        "off" runs no newer than the cancel become *unknown* (their newest evidence time is
        kept, so only evidence newer than it makes them "off" again), its pings are
        dropped (no synthetic timeouts), and a SCADA "out" on its device is cleared (only
        a newer operation applies again). Whatever the engine decided meanwhile, the
        operator's word is final: an outage the engine closed is re-marked cancelled."""
        o = self.outages.get(key)
        if o is None or o.state == "cancelled":
            return []
        at = self._operator_time(at_s)
        refuted = self._refute_dark_evidence(o, at)
        self._pending.pop(o.device, None)
        self._clear_forced_out(o.device)
        info: dict[str, object] = {"action": "cancel", "meters_refuted": refuted, **(detail or {})}
        return [self._close_by_operator(o, "cancelled", info)]

    def operator_restore(
        self, key: str, *, at_s: float | None = None, detail: dict[str, object] | None = None
    ) -> list[OutageChange]:
        """Marked restored by hand: the outage is restored and every meter not yet seen
        back is restored at ``at_s`` (as the API records it). The operator's word is
        checked, not trusted blindly: those meters' stale "off" becomes *unknown* and each
        is pinged. Meters still dark (ping off or no answer, or new gasps) form a new
        outage by the usual rules, which is then linked as *nested* under this one and
        confirmed (see ``operator_followups``)."""
        o = self.outages.get(key)
        if o is None or o.state == "restored":
            return []
        at = max(self._operator_time(at_s), o.start_s)
        back = (o.meter_status == METER_OUT) | (o.meter_status == METER_UNVERIFIED)
        verify = o.meters[back]
        o.meter_status[back] = METER_RESTORED
        o.meter_restored_s[back] = at
        refuted = self._refute_dark_evidence(o, at, meters=verify)
        self._pending.pop(o.device, None)
        self._clear_forced_out(o.device)
        queued = {m for m, _ in self._ping_queue}
        for m in verify.tolist():
            if m not in queued:
                self._ping_queue.append((int(m), "restore"))
        existing = frozenset(self._open_by_device.values())
        window = 2.0 * (self.config.ping_timeout_s + self.config.declaration_delay_s)
        self._operator_restores()[o.key] = (at, self.now_s + window, verify.copy(), existing)
        info: dict[str, object] = {
            "action": "restore",
            "meters_restored": int(verify.shape[0]),
            "meters_verifying": int(verify.shape[0]),
            "meters_refuted": refuted,
            **(detail or {}),
        }
        change = self._close_by_operator(o, "restored", info)
        o.restored_s = at
        o.device_restored_s = at
        return [change]

    def operator_merge(
        self,
        key: str,
        into_key: str,
        *,
        at_s: float | None = None,
        detail: dict[str, object] | None = None,
    ) -> list[OutageChange]:
        """Outage ``key`` is folded into ``into_key`` by hand: its meters (with what each
        already knew) join the other outage, which keeps its device (the operator knows
        they are one event, the tree may not), and it is cancelled with ``merged_into``.
        Its device is then not declared again for those meters: they are held by the open
        outage. If the engine already closed the target, the source is cancelled only."""
        a, b = self.outages.get(key), self.outages.get(into_key)
        if a is None or b is None or a is b or a.state == "cancelled":
            return []
        self._operator_time(at_s)
        changes: list[OutageChange] = []
        if b.is_open and a.is_open:
            meters = np.union1d(b.meters, a.meters).astype(np.int32)
            status = np.zeros(meters.shape[0], dtype=np.int8)
            restored_s = np.full(meters.shape[0], np.nan)
            for src in (a, b):  # the target's own knowledge wins where both hold a meter
                pos = np.searchsorted(meters, src.meters)
                status[pos] = src.meter_status
                restored_s[pos] = src.meter_restored_s
            b.meters, b.meter_status, b.meter_restored_s = meters, status, restored_s
            b.customers_affected = self._customers(meters)
            b.start_s = min(a.start_s, b.start_s)
            b.confirm_pings |= a.confirm_pings
            b.restore_pings |= a.restore_pings
            changes.append(
                self._log(
                    b,
                    self.now_s,
                    "operator_applied",
                    {"action": "merge", "merged": [a.key], "meters": b.meters_affected},
                )
            )
        a.confirm_pings.clear()
        a.restore_pings.clear()
        a.parent_key = b.key
        self._pending.pop(a.device, None)
        info: dict[str, object] = {"action": "merge", "into": b.key, **(detail or {})}
        changes.insert(0, self._close_by_operator(a, "cancelled", info))
        return changes

    def operator_followups(self) -> list[OutageChange]:
        """Run once per step: a new outage formed from meters whose restore was marked by
        an operator and that stayed dark under the verification pings is linked *nested*
        under the restored outage (``parent_key``, cause "nested") and confirmed (those
        pings were its verification). Records expire after 2 x (ping timeout +
        declaration delay) of event time."""
        records = self._operator_restores()
        if not records:
            return []
        changes: list[OutageChange] = []
        for key, (at, until, verify, existing) in list(records.items()):
            for n in self._open():
                if n.key in existing or n.key == key or n.parent_key is not None:
                    continue
                dark = n.meters[n.meter_status == METER_OUT]
                if not np.isin(dark, verify).any():
                    continue
                n.parent_key = key
                n.cause = "nested"
                info: dict[str, object] = {
                    "parent": key,
                    "why": "still dark after an operator marked the upstream restored",
                    "operator_restored_s": at,
                }
                if n.state == "predicted":
                    n.confirm_pings.clear()
                    changes.append(self._set_state(n, "confirmed", "nested_linked", info))
                else:
                    changes.append(self._log(n, self.now_s, "nested_linked", info))
            if self.now_s >= until:
                del records[key]
        return changes

    def _operator_time(self, at_s: float | None) -> float:
        """The action's event time (from the same clock as the evidence): event time moves
        up to it, never back, so the engine's entries follow the operator's."""
        if at_s is None or not math.isfinite(at_s):
            return self.now_s
        self.now_s = max(self.now_s, float(at_s))
        return float(at_s)

    def _operator_restores(self) -> dict[str, tuple[float, float, I32, frozenset[str]]]:
        """outage key -> (restored at, link until, meters being verified, outages open
        then): restores marked by an operator, awaiting their verification."""
        got: dict[str, tuple[float, float, I32, frozenset[str]]] | None = getattr(
            self, "_op_restores", None
        )
        if got is None:
            got = {}
            self._op_restores = got
        return got

    def _close_by_operator(
        self, o: Outage, state: OutageState, detail: dict[str, object]
    ) -> OutageChange:
        if o.is_open:
            return self._set_state(o, state, "operator_applied", detail)
        # The engine closed it meanwhile (e.g. restored by evidence): the operator decides.
        o.state = state
        o.restored_s = self.now_s if state == "restored" else None
        return self._log(o, self.now_s, "operator_applied", detail)

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

    def _clear_forced_out(self, device: int) -> None:
        """Forget a SCADA "out" on ``device``'s gate (its time stays: only a newer
        operation applies again), and any recloser shots held there."""
        gate = int(self.network.gates[device])
        if int(self._scada_kind[gate]) in (det.SCADA_OPEN, det.SCADA_LOCKOUT, det.SCADA_TRIP):
            self._scada_kind[gate] = -1
            self._trip_s[gate] = np.nan
        self._shots.pop(gate, None)
