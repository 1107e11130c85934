"""Ingest records -> the detector's evidence arrays (ids become topology indices).

A record the engine cannot use (an id the topology does not know, a ping reply without
``on``, an unknown kind) is rejected here with a reason; the records around it go through.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

import detectors as det
from ingest import CommittedBatch

_METER_KIND: Final[dict[str, int]] = {
    "last_gasp": det.LAST_GASP,
    "power_restore": det.POWER_RESTORE,
}
_SCADA_KIND: Final[dict[str, int]] = {name: i for i, name in enumerate(det.SCADA_KIND_NAMES)}


@dataclass(frozen=True)
class EvidenceReject:
    source: str  # reading | meter_event | scada
    item_id: str
    reason: str


@dataclass
class Evidence:
    """One or more committed batches as the engine's arrays."""

    meter: npt.NDArray[np.void]
    scada: npt.NDArray[np.void]
    rejects: list[EvidenceReject] = field(default_factory=list)
    ping_replies: int = 0
    newest_s: float = -math.inf  # newest event time among the accepted items

    @property
    def empty(self) -> bool:
        return self.meter.size == 0 and self.scada.size == 0


class EvidenceAdapter:
    """Maps ``CommittedBatch`` records onto ``METER_EVIDENCE_DTYPE`` /
    ``SCADA_EVIDENCE_DTYPE`` rows with the indices of one topology."""

    def __init__(self, meter_index: Mapping[str, int], device_index: Mapping[str, int]) -> None:
        self._meter_index = meter_index
        self._device_index = device_index

    def convert(self, batches: Iterable[CommittedBatch]) -> Evidence:
        m_idx: list[int] = []
        m_ts: list[float] = []
        m_kind: list[int] = []
        m_v: list[float] = []
        s_idx: list[int] = []
        s_ts: list[float] = []
        s_kind: list[int] = []
        rejects: list[EvidenceReject] = []
        pings = 0
        meters, devices = self._meter_index, self._device_index
        for batch in batches:
            for r in batch.readings:
                i = meters.get(r.meter_id)
                if i is None:
                    rejects.append(EvidenceReject("reading", r.meter_id, "unknown meter"))
                    continue
                m_idx.append(i)
                m_ts.append(r.ts_s)
                m_kind.append(det.READING)
                # v = None: the meter reported without measuring; no on/off meaning.
                m_v.append(math.nan if r.v_rms_v is None else float(r.v_rms_v))
            for e in batch.meter_events:
                i = meters.get(e.meter_id)
                if i is None:
                    rejects.append(EvidenceReject("meter_event", e.meter_id, "unknown meter"))
                    continue
                if e.kind == "ping_reply":
                    if e.supply_on is None:
                        rejects.append(
                            EvidenceReject("meter_event", e.meter_id, "ping_reply without on")
                        )
                        continue
                    kind = det.PING_ON if e.supply_on else det.PING_OFF
                    pings += 1
                else:
                    k = _METER_KIND.get(e.kind)
                    if k is None:
                        rejects.append(
                            EvidenceReject("meter_event", e.meter_id, f"unknown kind {e.kind!r}")
                        )
                        continue
                    kind = k
                m_idx.append(i)
                m_ts.append(e.ts_s)
                m_kind.append(kind)
                m_v.append(math.nan)
            for s in batch.scada_events:
                d = devices.get(s.device_id)
                k = _SCADA_KIND.get(s.kind)
                if d is None or k is None:
                    why = "unknown device" if d is None else f"unknown kind {s.kind!r}"
                    rejects.append(EvidenceReject("scada", s.device_id, why))
                    continue
                s_idx.append(d)
                s_ts.append(s.ts_s)
                s_kind.append(k)
        meter = det.meter_evidence(len(m_idx))
        if m_idx:
            meter["meter"] = m_idx
            meter["ts_s"] = m_ts
            meter["kind"] = m_kind
            meter["v_rms_v"] = m_v
        scada = det.scada_evidence(len(s_idx))
        if s_idx:
            scada["device"] = s_idx
            scada["ts_s"] = s_ts
            scada["kind"] = s_kind
        newest = max(
            float(meter["ts_s"].max()) if meter.size else -math.inf,
            float(scada["ts_s"].max()) if scada.size else -math.inf,
        )
        return Evidence(meter, scada, rejects, pings, newest)
