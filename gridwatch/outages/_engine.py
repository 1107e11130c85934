"""The outage engine: evidence in, outage lifecycle changes out. No I/O, no clock.

It keeps the per-meter detector state, SCADA state, planned outages and open outages,
runs the detector kernels (``detectors``) after every batch, and turns each inference
into lifecycle changes: predicted -> confirmed -> partially_restored -> restored, plus
cancelled, merges, moves, splits and nested outages. Time only moves by ``tick``
(event time); the caller runs ``apply``/``tick`` off the event loop (kernels release the GIL).

``OutageEngine`` is composed of parts over one state (``_state.EngineState``): the
pings (``_pings``), explaining away (``_explaining``), single-premise outages
(``_premises``), the lifecycle (``_lifecycle``) and operator actions (``_operator``).
This module holds the entry points: evidence in, time, planned windows, topology swaps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.outages._lifecycle import Lifecycle
from gridwatch.outages._network import Network
from gridwatch.outages._operator import OperatorActions
from gridwatch.outages._types import METER_OUT, Momentary, Outage, OutageChange, PlannedOutage


class OutageEngine(Lifecycle, OperatorActions):
    """Evidence in, outage lifecycle changes out (constructor: ``EngineState``)."""

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
