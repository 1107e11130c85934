"""Which meters the outage engine pings, and what their answers (or silence) mean.

Pings are queued by reason ("confirm", "suspect", "overdue", "premise", "restore"),
handed out by ``pings_wanted`` and time out into PING_TIMEOUT evidence; a predicted
outage is confirmed once no ping of its sample is pending. This part also settles a
restoration: the restore pings sent once a device is back, and whether the
engine is still waiting for meters to speak before it judges what stays dark.
"""

from __future__ import annotations

import math
import uuid

import numpy as np

import detectors as det
from gridwatch.outages._state import I32, EngineState
from gridwatch.outages._types import METER_OUT, Outage, OutageChange, PingRequest


class Pings(EngineState):
    """The ping queue: what to ask, when an answer is overdue, when a restoration is judged."""

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

    @property
    def ping_answer_rate(self) -> float:
        """How often this engine's pings were answered (with the model's prior)."""
        return self.model.observed_ping_answer_rate(self._pings_answered, self._pings_timed_out)

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
