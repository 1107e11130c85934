"""Operator actions reach the detection engine.

Operators confirm, cancel, restore and merge outages through the operator desk
(``gridwatch.outages.commands``), which writes the ``outages`` row and its audit row in one
transaction. The engine keeps its own lifecycle in memory and upserts it, so without the
action it would reverse it at its next step. The desk hands each committed action to the
runner (its ``EngineInbox``) under the runner's step lock; ``OperatorActionQueue`` keeps
them until the start of the next step, which applies each through the engine's
``operator_*`` methods and persists the changes they return with that step.

After a restart nothing is replayed: the open outages the runner takes back from the store
already reflect every earlier action. An action handed over while the runner starts is
applied after the reload, where it is a no-op if the reload saw it (the engine methods are
idempotent).
"""

from __future__ import annotations

from collections import Counter

from gridwatch.outages import OperatorAction, OutageChange, OutageEngine


def apply_operator_action(engine: OutageEngine, action: OperatorAction) -> list[OutageChange]:
    """One action through the engine. Unknown outages (never made by this engine, e.g.
    planned work or rows of an engine key the engine has not taken back) are ignored."""
    key = action.engine_key
    if key is None or key not in engine.outages:
        return []
    detail: dict[str, object] = {"audit_id": action.audit_id, "by": action.actor}
    at = action.acted_s
    if action.action == "confirm":
        confirmed_s = action.confirmed_s
        return engine.operator_confirm(
            key, at_s=confirmed_s if confirmed_s is not None else at, detail=detail
        )
    if action.action == "cancel":
        return engine.operator_cancel(key, at_s=at, detail=detail)
    if action.action == "restore":
        restored_s = action.restored_s
        return engine.operator_restore(
            key, at_s=restored_s if restored_s is not None else at, detail=detail
        )
    if action.action == "merge" and action.into_engine_key is not None:
        return engine.operator_merge(key, action.into_engine_key, at_s=at, detail=detail)
    return []


class OperatorActionQueue:
    """Actions the operator desk handed over, waiting for the runner's next step."""

    def __init__(self) -> None:
        self._pending: list[OperatorAction] = []
        self.counts: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def put(self, action: OperatorAction) -> None:
        self._pending.append(action)

    def apply_pending(self, engine: OutageEngine) -> list[OutageChange]:
        """Apply every action handed over since the last step, in commit order (plus the
        engine's follow-ups of earlier restores)."""
        changes = engine.operator_followups()
        actions, self._pending = self._pending, []
        for action in actions:
            got = apply_operator_action(engine, action)
            self.counts[f"{action.action}:{'applied' if got else 'ignored'}"] += 1
            changes += got
        return changes
