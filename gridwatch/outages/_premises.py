"""Single-premise outages: dark meters that no device outage explains.

A meter dark by evidence that dates it, with no later "on" and no chosen device or open
outage above it, becomes (after the declaration delay and one verification ping) an
outage of that service point on the meter's device (``scope="premise"``).
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.outages._pings import Pings
from gridwatch.outages._state import I32
from gridwatch.outages._types import METER_OUT, Outage, OutageChange

# Dark evidence that a single premise's outage may rest on (a customer report alone, or a
# ping timeout, is not enough: a report is weaker, a timeout is silence).
PREMISE_SOURCES = (det.READING, det.LAST_GASP, det.PING_OFF)


class PremiseOutages(Pings):
    """Declaring, growing, confirming and ending outages of single service points."""

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
        m = off[np.isin(ms.source[off], PREMISE_SOURCES) & (ms.since_s[off] >= recent)]
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
