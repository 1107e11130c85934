"""Explaining away: what the evidence says about one device once the open outages
beneath it have explained their own dark meters.

Read-only questions the lifecycle asks before it declares, merges, moves or nests an
outage: when a device itself went out, how much its own meters weigh, which children
explain them better, which outages beneath are separate, earlier faults.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.outages._state import I32, EngineState
from gridwatch.outages._types import METER_OUT, Outage


class ExplainingAway(EngineState):
    """Judgements of one device over the evidence, leaving aside what open outages explain."""

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
