"""The operator desk: the one owner of what operators do to an outage.

Operators confirm, cancel, restore and merge outages, set and clear ETR overrides and
report crews. Each is a command, applied here in one transaction: the outage row is locked
(``SELECT ... FOR UPDATE``), its state checked, and the change written with its timeline
entry and its audit row (an override with its ETR row too). A check cannot go stale before
its write, and nothing is stored half or unaudited.

Detection keeps the lifecycle of its outages in memory and upserts it every step, so a
confirm, cancel, restore or merge is handed to the running engine (an ``EngineInbox``: the
detection runner) right after its commit. Commit and hand-over happen under the inbox's
hold (the runner's step lock): no step can upsert the engine's older view in between, and
the next step applies the action. Without a runner (the API on its own) the desk commits
only; a runner started later takes the outages back from their rows, which hold every
action already.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal, Protocol

from gridwatch.core.clock import Clock, utc_datetime
from gridwatch.core.errors import StoreUnavailable
from gridwatch.etr import (
    CrewStatusRefused,
    EtrConfig,
    OverrideRefused,
    check_crew_report,
    check_override,
)
from gridwatch.store import Database
from gridwatch.store.audit import Actor, AuditNote, record_audit_in, record_note_in
from gridwatch.store.etr import (
    CrewStatusRow,
    EtrRow,
    clear_override_in,
    insert_override_in,
    record_etrs_in,
    set_crew_status_in,
)
from gridwatch.store.outages import (
    OPEN_STATES,
    ActionRefused,
    add_timeline_in,
    cancel_outage_in,
    confirm_outage_in,
    lock_outage_in,
    merge_outage_in,
    restore_outage_in,
)

# --- commands -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmOutage:
    """A predicted outage is real."""

    action: ClassVar[Literal["confirm"]] = "confirm"
    outage_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class CancelOutage:
    """A false positive."""

    action: ClassVar[Literal["cancel"]] = "cancel"
    outage_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class RestoreOutage:
    """Every affected meter is back."""

    action: ClassVar[Literal["restore"]] = "restore"
    outage_id: int
    reason: str


LifecycleCommand = ConfirmOutage | CancelOutage | RestoreOutage


@dataclass(frozen=True, slots=True)
class MergeOutage:
    """``outage_id`` is part of ``into_outage_id``: its meters move, it is cancelled."""

    outage_id: int
    into_outage_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class SetEtrOverride:
    """An ETR set by hand; it wins over the model until cleared or passed."""

    outage_id: int
    etr_at: datetime  # aware; the audit row keeps it as given
    reason: str
    set_by: str


@dataclass(frozen=True, slots=True)
class ClearEtrOverride:
    outage_id: int
    reason: str = "cleared"


@dataclass(frozen=True, slots=True)
class SetCrewStatus:
    """A crew dispatched to / on site at an open outage (or released), with the cause it
    found; ``reason`` is the audit row's."""

    outage_id: int
    status: str  # gridwatch.etr CREW_STATUSES
    set_by: str
    cause: str | None = None
    reason: str = ""


# --- refusals -----------------------------------------------------------------------------


class OutageMissing:
    """Mixed into a refusal when the outage the command names does not exist (the API
    answers 404, not 409)."""


class OverrideOnMissingOutage(OverrideRefused, OutageMissing):
    pass


class CrewStatusOnMissingOutage(CrewStatusRefused, OutageMissing):
    pass


# --- the hand-over to detection -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """A committed confirm, cancel, restore or merge, as the engine applies it."""

    action: Literal["confirm", "cancel", "restore", "merge"]
    outage_id: int
    engine_key: str | None  # None: an outage detection never made (planned work)
    actor: str
    audit_id: int
    acted_s: float  # the action's event time (its timeline entry's)
    confirmed_s: float | None = None  # confirm: the row's confirmed_at
    restored_s: float | None = None  # restore: the row's restored_at
    into_engine_key: str | None = None  # merge only


class EngineInbox(Protocol):
    """Where committed operator actions go: the running detection engine's next step."""

    def held(self) -> AbstractAsyncContextManager[None]:
        """Held around commit and hand-over: no step runs meanwhile."""
        ...

    def put(self, action: OperatorAction) -> None:
        """Queue ``action`` for the next step (also before the engine is ready)."""
        ...


# --- the desk -------------------------------------------------------------------------------

_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "confirm": ("predicted",),
    "cancel": ("predicted", "confirmed"),
    "restore": OPEN_STATES,
}
_NEW_STATE = {"confirm": "confirmed", "cancel": "cancelled", "restore": "restored"}


class OperatorDesk:
    """Applies operators' commands to outages, each in one transaction with its audit row
    (``by``; the lifecycle commands always have one, the ETR and crew commands of a
    non-operator caller such as an OMS feed may have none)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        etr_config: EtrConfig | None = None,
        inbox: EngineInbox | None = None,
        hold_wait_s: float = 10.0,
    ) -> None:
        if not hold_wait_s > 0.0:
            raise ValueError("hold_wait_s must be > 0")
        self._db = db
        self._hold_wait_s = hold_wait_s
        self._clock = clock
        self._etr_config = etr_config or EtrConfig()
        self._inbox = inbox

    def _now(self) -> datetime:
        return utc_datetime(self._clock.now_s())

    @contextlib.asynccontextmanager
    async def _handing_over(self) -> AsyncIterator[list[OperatorAction]]:
        """Yields a list for the actions the block commits; they go to the inbox after
        the block, within its hold. A block that raises hands nothing over."""
        inbox = self._inbox
        committed: list[OperatorAction] = []
        if inbox is None:
            yield committed
            return
        async with contextlib.AsyncExitStack() as stack:
            # A step that waits out a database outage holds its lock: an operator is told
            # so (503, nothing committed) rather than kept waiting for it.
            try:
                async with asyncio.timeout(self._hold_wait_s):
                    await stack.enter_async_context(inbox.held())
            except TimeoutError:
                raise StoreUnavailable(
                    f"detection did not take the action within {self._hold_wait_s:g} s"
                    " (is the database away?): nothing was changed, try again"
                ) from None
            yield committed
            for action in committed:
                inbox.put(action)

    async def change_state(self, command: LifecycleCommand, by: Actor) -> str:
        """Confirm, cancel or restore. Returns the new state; raises ActionRefused."""
        action, outage_id, reason = command.action, command.outage_id, command.reason
        at = self._now()
        acted_at = at  # the row's updated_at and the audit row: when the operator acted
        confirmed_at: datetime | None = None
        async with self._handing_over() as handed:
            async with self._db.connection() as conn:
                row = await lock_outage_in(conn, outage_id)
                if row is None:
                    raise ActionRefused(f"outage {outage_id} does not exist", 404)
                state = str(row["state"])
                allowed = _ALLOWED_FROM[action]
                if state not in allowed:
                    raise ActionRefused(
                        f"cannot {action} outage {outage_id}: it is {state}"
                        f" (allowed from {', '.join(allowed)})"
                    )
                if at < row["started_at"]:
                    at = row["started_at"]  # an action never predates the outage it acts on
                if action == "confirm":
                    confirmed_at = await confirm_outage_in(conn, outage_id, at, acted_at)
                elif action == "cancel":
                    await cancel_outage_in(conn, outage_id, acted_at)
                else:
                    await restore_outage_in(conn, outage_id, at, acted_at)
                new_state = _NEW_STATE[action]
                detail = {"by": by.name, "reason": reason, "from": state, "operator": True}
                await add_timeline_in(conn, outage_id, at, f"operator_{action}", detail)
                audit_id = await record_audit_in(
                    conn,
                    by,
                    action=f"outage.{action}",
                    target_kind="outage",
                    target_id=str(outage_id),
                    reason=reason,
                    at=acted_at,
                    detail={"from": state, "to": new_state},
                )
            handed.append(
                OperatorAction(
                    action,
                    outage_id,
                    row["engine_key"],
                    by.name,
                    audit_id,
                    acted_s=at.timestamp(),
                    confirmed_s=None if confirmed_at is None else confirmed_at.timestamp(),
                    restored_s=at.timestamp() if action == "restore" else None,
                )
            )
        return new_state

    async def merge(self, command: MergeOutage, by: Actor) -> int:
        """Fold one outage into another. Returns the surviving outage's
        customers_affected; raises ActionRefused."""
        outage_id, into_id, reason = command.outage_id, command.into_outage_id, command.reason
        if outage_id == into_id:
            raise ActionRefused("an outage cannot be merged into itself", 422)
        at = self._now()
        async with self._handing_over() as handed:
            async with self._db.connection() as conn:
                # Lock in id order so two opposite merges cannot deadlock.
                rows = {}
                for oid in sorted((outage_id, into_id)):
                    row = await lock_outage_in(conn, oid)
                    if row is None:
                        raise ActionRefused(f"outage {oid} does not exist", 404)
                    rows[oid] = row
                for oid in (outage_id, into_id):
                    if rows[oid]["state"] not in OPEN_STATES:
                        raise ActionRefused(f"cannot merge: outage {oid} is {rows[oid]['state']}")
                customers = await merge_outage_in(
                    conn, outage_id, into_id, rows[outage_id]["started_at"], at
                )
                detail = {"by": by.name, "reason": reason, "operator": True}
                await add_timeline_in(
                    conn, outage_id, at, "merged_into", {**detail, "into": into_id}
                )
                await add_timeline_in(
                    conn, into_id, at, "merged", {**detail, "merged": [outage_id]}
                )
                audit_id = await record_audit_in(
                    conn,
                    by,
                    action="outage.merge",
                    target_kind="outage",
                    target_id=str(outage_id),
                    reason=reason,
                    at=at,
                    detail={"into": into_id},
                )
            handed.append(
                OperatorAction(
                    "merge",
                    outage_id,
                    rows[outage_id]["engine_key"],
                    by.name,
                    audit_id,
                    acted_s=at.timestamp(),
                    into_engine_key=rows[into_id]["engine_key"],
                )
            )
        return customers

    async def set_etr_override(self, command: SetEtrOverride, by: Actor | None = None) -> int:
        """The override, its timeline entry, its ETR row and its audit row, together.
        Returns the override id; raises OverrideRefused."""
        outage_id, reason, set_by = command.outage_id, command.reason, command.set_by
        etr_at_s = command.etr_at.timestamp()
        now_s = self._clock.now_s()
        async with self._db.connection() as conn:
            row = await lock_outage_in(conn, outage_id)
            if row is None:
                raise OverrideOnMissingOutage(f"outage {outage_id} does not exist")
            if row["state"] in ("restored", "cancelled"):
                raise OverrideRefused(f"outage {outage_id} is {row['state']}")
            started_s = row["started_at"].timestamp()
            problem = check_override(etr_at_s, reason, set_by, now_s, started_s, self._etr_config)
            if problem is not None:
                raise OverrideRefused(problem)
            override_id = await insert_override_in(conn, outage_id, etr_at_s, reason, set_by, now_s)
            if by is not None:
                note = AuditNote(
                    by, "outage.etr_override.set", reason, {"etr_at": command.etr_at.isoformat()}
                )
                await record_note_in(
                    conn, note, outage_id, utc_datetime(now_s), override_id=override_id
                )
            inputs = {
                "override": {"override_id": override_id, "reason": reason, "set_by": set_by},
                "now_s": now_s,
            }
            etr = EtrRow(outage_id, now_s, etr_at_s, etr_at_s, etr_at_s, "override", None, inputs)
            await record_etrs_in(conn, [etr])
        return override_id

    async def clear_etr_override(self, command: ClearEtrOverride, by: Actor | None = None) -> bool:
        """Clear the override in force (the next refresh gives a model ETR). False if none
        was; raises OverrideRefused when the outage does not exist."""
        outage_id = command.outage_id
        now_s = self._clock.now_s()
        async with self._db.connection() as conn:
            if await lock_outage_in(conn, outage_id) is None:
                raise OverrideOnMissingOutage(f"outage {outage_id} does not exist")
            cleared = await clear_override_in(
                conn, outage_id, now_s, command.reason[:200] or "cleared"
            )
            if cleared and by is not None:
                note = AuditNote(by, "outage.etr_override.clear", command.reason)
                await record_note_in(conn, note, outage_id, utc_datetime(now_s))
        return cleared

    async def set_crew_status(
        self, command: SetCrewStatus, by: Actor | None = None
    ) -> CrewStatusRow:
        """Record a crew report on an open outage (the next ETR round uses it), with its
        timeline entry and audit row. Raises CrewStatusRefused."""
        outage_id = command.outage_id
        now_s = self._clock.now_s()
        async with self._db.connection() as conn:
            row = await lock_outage_in(conn, outage_id)
            if row is None:
                raise CrewStatusOnMissingOutage(f"outage {outage_id} does not exist")
            cause = check_crew_report(command.status, command.cause, command.set_by)
            if row["state"] in ("restored", "cancelled", "scheduled"):
                raise CrewStatusRefused(f"outage {outage_id} is {row['state']}")
            crew = await set_crew_status_in(
                conn, outage_id, command.status, cause, command.set_by, now_s
            )
            if by is not None:
                note = AuditNote(by, "outage.crew.set", command.reason)
                await record_note_in(
                    conn, note, outage_id, utc_datetime(now_s), status=crew.status, cause=crew.cause
                )
        return crew
