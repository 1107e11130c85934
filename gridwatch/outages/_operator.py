"""Operator actions (confirm, cancel, restore, merge) as applied to the engine's state.

The control API writes an operator's action straight to the store; the runner hands
it here so that the engine's next upsert agrees with the operator instead of quietly
reversing it. Each returns the changes to persist ("operator_applied" entries).
"""

from __future__ import annotations

import math

import numpy as np

import detectors as det
from gridwatch.outages._state import I32, EngineState
from gridwatch.outages._types import (
    METER_OUT,
    METER_RESTORED,
    METER_UNVERIFIED,
    Outage,
    OutageChange,
    OutageState,
)


class OperatorActions(EngineState):
    """An operator's word on an outage, applied so that the engine does not reverse it."""

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

    def _clear_forced_out(self, device: int) -> None:
        """Forget a SCADA "out" on ``device``'s gate (its time stays: only a newer
        operation applies again), and any recloser shots held there."""
        gate = int(self.network.gates[device])
        if int(self._scada_kind[gate]) in (det.SCADA_OPEN, det.SCADA_LOCKOUT, det.SCADA_TRIP):
            self._scada_kind[gate] = -1
            self._trip_s[gate] = np.nan
        self._shots.pop(gate, None)
