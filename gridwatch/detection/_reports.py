"""Customer outage reports become detection evidence.

The inbound-SMS webhook stores a customer's OUT text in ``customer_reports`` (reports
from unknown numbers are not stored). ``CustomerReportFeed`` reads new reports by id at
the start of every runner step, maps each to the customer's meters (``meters.customer_id``;
a report naming a meter maps to that meter only) and feeds them to the engine as
``REPORT_OUT`` (``REPORT_ON`` for "power back") at the report's time.

Restart-safe: a fresh feed starts at the first report of the last ``lookback_s`` of event
time, so recent reports are evidence again after a restart (feeding the same report twice
changes nothing). Reports made no later than an operator's cancel or restore of an
outage holding that meter are not fed again: the operator judged that evidence.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.core.errors import StoreError
from gridwatch.outages import OutageChange, OutageEngine
from gridwatch.store import Database
from gridwatch.store.customer_reports import (
    CustomerReportRow,
    customer_reports_after,
    report_cursor_since,
)
from gridwatch.store.outage_queries import operator_refuted_at

log = logging.getLogger(__name__)

_KINDS = {"out": det.REPORT_OUT, "on": det.REPORT_ON}


def report_evidence(
    rows: list[CustomerReportRow],
    meter_index: Mapping[str, int],
    refuted_at: Mapping[str, float] | None = None,
) -> tuple[npt.NDArray[np.void], Counter[str]]:
    """Meter evidence rows (``METER_EVIDENCE_DTYPE``) for ``rows``, and counts of what was
    left out and why (unknown meter, customer without meters, judged by an operator)."""
    skipped: Counter[str] = Counter()
    items: list[tuple[int, float, int]] = []
    for r in rows:
        kind = _KINDS.get(r.kind)
        if kind is None:
            skipped["bad_kind"] += 1
            continue
        if not r.meter_ids:
            skipped["no_meters"] += 1
            continue
        for meter_id in r.meter_ids:
            m = meter_index.get(meter_id)
            if m is None:
                skipped["unknown_meter"] += 1
            elif kind == det.REPORT_OUT and r.reported_s <= (refuted_at or {}).get(
                meter_id, -math.inf
            ):
                skipped["operator_judged"] += 1
            else:
                items.append((m, r.reported_s, kind))
    ev = det.meter_evidence(len(items))
    ev["meter"] = [m for m, _, _ in items]
    ev["ts_s"] = [t for _, t, _ in items]
    ev["kind"] = [k for _, _, k in items]
    return ev, skipped


class CustomerReportFeed:
    """Picks up new customer reports (since the last seen id) as meter evidence."""

    def __init__(
        self,
        db: Database,
        meter_index: Mapping[str, int],
        *,
        lookback_s: float = 3600.0,
        batch_max: int = 5000,
    ) -> None:
        if not (math.isfinite(lookback_s) and lookback_s >= 0) or batch_max < 1:
            raise ValueError("need a finite lookback_s >= 0 and batch_max >= 1")
        self._db = db
        self._meter_index = meter_index
        self._lookback_s = lookback_s
        self._batch_max = batch_max
        self._after: int | None = None
        self.counts: Counter[str] = Counter()

    @property
    def last_seen_id(self) -> int | None:
        return self._after

    async def start(self, now_s: float) -> None:
        self._after = await report_cursor_since(self._db, now_s - self._lookback_s)

    async def apply_new(self, engine: OutageEngine, now_s: float) -> list[OutageChange]:
        """Feed every report newer than the last seen id; runs inference off the loop. A
        database that is away only delays them: the cursor stays."""
        try:
            if self._after is None:
                await self.start(now_s)
            assert self._after is not None
            rows = await customer_reports_after(self._db, self._after, limit=self._batch_max)
            if not rows:
                return []
            meters = [m for r in rows if r.kind == "out" for m in r.meter_ids]
            refuted = await operator_refuted_at(self._db, meters)
        except StoreError as exc:
            self.counts["poll_errors"] += 1
            log.warning("customer reports not read this step: %s", exc)
            return []
        ev, skipped = report_evidence(rows, self._meter_index, refuted)
        self._after = rows[-1].report_id
        self.counts["reports"] += len(rows)
        for reason, n in skipped.items():
            self.counts[f"skipped:{reason}"] += n
        if not ev.size:
            return []
        changes = await asyncio.to_thread(engine.apply, ev, None, now_s=now_s)
        self.counts["evidence"] += int(ev.size)
        for rej in engine.last_rejects:
            self.counts[f"rejected:{rej.reason}"] += 1
        return changes
