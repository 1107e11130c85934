"""The outage lifecycle: the state machine over open outages, run after every batch.

``_reconcile`` re-runs inference and turns it into lifecycle changes: predicted ->
confirmed -> partially_restored -> restored, plus cancelled, merges (``_grow``), moves
and splits (``_move_down``), nested outages (``_nest``) and restorations meter by meter.
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.outages._explaining import ExplainingAway
from gridwatch.outages._premises import PREMISE_SOURCES, PremiseOutages
from gridwatch.outages._types import (
    METER_OUT,
    METER_RESTORED,
    METER_TRANSFERRED,
    METER_UNVERIFIED,
    Momentary,
    Outage,
    OutageChange,
    TimelineEntry,
)

# Confirmed at once, no declaration delay. An "open" waits the delay like any other
# evidence: crews open devices for seconds while switching (isolate, back-feed, close).
_SUSTAINED_SCADA = (det.SCADA_LOCKOUT,)


class Lifecycle(PremiseOutages, ExplainingAway):
    """Declare, confirm, grow, move down, nest and restore the engine's open outages."""

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
            & np.isin(ms.source[m], PREMISE_SOURCES)
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
