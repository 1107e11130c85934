"""Operator actions reach the detection engine.

The control API confirms, cancels, restores and merges outages by writing the ``outages``
table directly, with an ``audit_log`` row in the same transaction. The engine keeps its
own lifecycle in memory and upserts it, so without this feed it would reverse those
actions at its next step. ``OperatorActionFeed`` reads new audit rows by id at the start
of every runner step and applies each through the engine's ``operator_*`` methods; the
changes they return are persisted with that step.

Restart-safe without a stored cursor: ``start`` takes the newest audit id *before* the
runner takes its open outages back from the store, and those rows already reflect every
earlier action. An action committed in between is applied again, which is a no-op (the
engine methods are idempotent).
"""

from __future__ import annotations

import logging
from collections import Counter

from gridwatch._errors import StoreError
from gridwatch.outages import OutageChange, OutageEngine
from gridwatch.store import Database
from gridwatch.store._detection_inputs import (
    OperatorActionRow,
    latest_operator_action_id,
    operator_actions_after,
)

log = logging.getLogger(__name__)


def apply_operator_action(engine: OutageEngine, row: OperatorActionRow) -> list[OutageChange]:
    """One audit row through the engine. Unknown outages (never made by this engine, e.g.
    planned work or rows of an engine key the engine has not taken back) are ignored."""
    key = row.engine_key
    if key is None or key not in engine.outages:
        return []
    detail: dict[str, object] = {"audit_id": row.audit_id, "by": row.actor}
    at = row.acted_s
    if row.action == "confirm":
        return engine.operator_confirm(
            key, at_s=row.confirmed_s if row.confirmed_s is not None else at, detail=detail
        )
    if row.action == "cancel":
        return engine.operator_cancel(key, at_s=at, detail=detail)
    if row.action == "restore":
        return engine.operator_restore(
            key, at_s=row.restored_s if row.restored_s is not None else at, detail=detail
        )
    if row.action == "merge" and row.into_engine_key is not None:
        return engine.operator_merge(key, row.into_engine_key, at_s=at, detail=detail)
    return []


class OperatorActionFeed:
    """Picks up new operator actions from ``audit_log`` (since the last seen id)."""

    def __init__(self, db: Database, *, batch_max: int = 1000) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        self._db = db
        self._batch_max = batch_max
        self._after: int | None = None
        self.counts: Counter[str] = Counter()

    @property
    def last_seen_id(self) -> int | None:
        return self._after

    async def start(self) -> None:
        """Call before the runner takes its open outages back from the store."""
        self._after = await latest_operator_action_id(self._db)

    async def apply_new(self, engine: OutageEngine) -> list[OutageChange]:
        """Apply every action newer than the last seen id (plus the engine's follow-ups of
        earlier restores). A database that is away only delays them: the cursor stays."""
        changes = engine.operator_followups()
        try:
            if self._after is None:
                await self.start()
            assert self._after is not None
            rows = await operator_actions_after(self._db, self._after, limit=self._batch_max)
        except StoreError as exc:
            self.counts["poll_errors"] += 1
            log.warning("operator actions not read this step: %s", exc)
            return changes
        for row in rows:
            got = apply_operator_action(engine, row)
            self.counts[f"{row.action}:{'applied' if got else 'ignored'}"] += 1
            changes += got
            self._after = row.audit_id
        return changes
