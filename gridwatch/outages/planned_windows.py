"""Keeps the outage engine's planned windows equal to ``planned_outages``.

The control API creates, moves and cancels planned work at any time; detection must
suppress unplanned detection inside exactly the windows that exist now. The detection
runner calls ``refresh`` at the start of each step (under its step lock, so the engine is
not being stepped meanwhile); a read happens at most every ``refresh_s`` wall seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from gridwatch.core.errors import StoreError
from gridwatch.outages import OutageEngine, PlannedOutage
from gridwatch.store import Database
from gridwatch.store.planned import planned_outages_between

log = logging.getLogger(__name__)


class PlannedWindowSync:
    def __init__(
        self, db: Database, *, refresh_s: float = 5.0, horizon_s: float = 2 * 86_400.0
    ) -> None:
        self._db = db
        self._refresh_s = refresh_s
        # Windows within this much event time of now are loaded (planned work lasts <= 7 days
        # at the API; a window is only consulted while it is open).
        self._horizon_s = horizon_s
        self._last_read = -float("inf")
        self._held: set[str] = set()

    @property
    def held(self) -> frozenset[str]:
        """Planned ids currently given to the engine."""
        return frozenset(self._held)

    def invalidate(self) -> None:
        """Read the store on the next ``refresh`` (after a known change)."""
        self._last_read = -float("inf")

    async def refresh(
        self, engine: OutageEngine, device_index: Mapping[str, int], now_s: float
    ) -> None:
        if time.monotonic() - self._last_read < self._refresh_s:
            return
        try:
            rows = await planned_outages_between(
                self._db, now_s - 7 * 86_400.0, now_s + self._horizon_s
            )
        except StoreError as exc:  # keep the windows we have; detection goes on
            log.warning("planned windows not refreshed: %s", exc)
            return
        self._last_read = time.monotonic()
        wanted: dict[str, PlannedOutage] = {}
        for r in rows:
            device = device_index.get(r.device_id)
            if device is None:
                continue  # a device outside this worker's topology
            wanted[r.planned_id] = PlannedOutage(r.planned_id, device, r.starts_s, r.ends_s)
        for gone in self._held - wanted.keys():
            engine.remove_planned(gone)
        for planned in wanted.values():
            engine.add_planned(planned)  # replaces a moved window (same id)
        self._held = set(wanted)
