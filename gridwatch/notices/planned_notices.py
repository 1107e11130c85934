"""Planned work -> customer notices: the consumer of ``planned_outage_events``.

The control API writes one event per create / change / cancel of a planned job. For each
(oldest first, a job's events in order), in ONE transaction:

1. the job's ``outages`` row (planned = true) is created or updated, keyed by planned_id
   (``notifications.outage_id`` references ``outages``);
2. its notices go into the notifier's outbox: ``planned_notice`` (version = the job's
   version, with the day-before ``planned_reminder`` scheduled by the notifier), or
   ``planned_cancelled`` to the customers already told (unsent notices and reminders are
   superseded);
3. the event is marked handled.

A crash anywhere before the commit leaves nothing behind, and the event is consumed again
by the next consumer: no customer is told twice (the outbox keys are idempotent anyway).

Short notice (decided here, on purpose): the API enforces Circular 22/2020/TT-BCT's 5-day
notice, refusing a shorter one unless the operator overrides. By the time an event is
consumed the decision is made, so a notice whose start is less than the legal period away
(the operator's override, or this consumer running late) takes the notifier's emergency
path: sent at once (no quiet-hours hold), never refused, as the Circular requires of
emergency work. A job moved onto a no-planned-work day but still >= 5 days ahead is an
ordinary notice. A job whose window is over before its event is consumed is not announced.

The job's ``outages`` row follows the window on event time (``advance_windows``):
'scheduled' (nobody out yet) -> 'confirmed' at the start -> 'restored' at the announced end;
'cancelled' if called off before it starts.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from psycopg import AsyncConnection

from gridwatch.core.clock import Clock
from gridwatch.core.errors import StoreError, StoreUnavailable
from gridwatch.core.pacing import EventPacer
from gridwatch.outages.planned_work import (
    advance_planned_windows,
    call_off_planned_outage,
    move_planned_outage,
    open_planned_outage,
)
from gridwatch.store import Database
from gridwatch.store.database import translated_errors
from gridwatch.store.notifications import PostgresOutbox
from gridwatch.store.planned import (
    PlannedEvent,
    claim_next_event,
    customers_told,
    lock_mapping,
    mark_event_handled,
)
from gridwatch.topology import device_scope
from notifier import (
    EnqueueResult,
    EventError,
    NotifyPolicy,
    OutageChange,
    Templates,
    enqueue_for_outage_change,
)

log = logging.getLogger(__name__)

_TEXT_MAX = 200  # the notifier's limit for {where} / {why}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def notice_text(value: str) -> str:
    """Operator text made fit for a notice: control characters (newlines in a reason) become
    spaces, and it is cut to the notifier's 200 characters."""
    flat = " ".join(_CONTROL.sub(" ", value).split())
    return flat if len(flat) <= _TEXT_MAX else flat[: _TEXT_MAX - 1].rstrip() + "…"


@dataclass(slots=True)
class PlannedNoticeStats:
    notified: int = 0
    rejected: int = 0
    stale: int = 0
    notices: int = 0  # outbox rows inserted


class _Rejected(Exception):
    """An event that cannot be told (the reason is stored on the event)."""


class PlannedNoticeConsumer:
    """Consume planned-work events into outage rows and notices (see the module doc).

    Several consumers may run (SKIP LOCKED). ``clock`` is the service clock: notices are
    dated and quiet hours judged on event time.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        templates: Templates | None = None,
        policy: NotifyPolicy | None = None,
        poll_event_s: float = 1.0,
        lag_budget_event_s: float = 30.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self._templates = templates
        self._policy = policy or NotifyPolicy()
        # Service-clock time between looks: a wall-second poll was 10 grid minutes at 600x,
        # and a job's window started or ended (and a short notice went out) that late.
        self._pacer = EventPacer(
            clock,
            "planned-notices",
            interval_event_s=poll_event_s,
            budget_event_s=lag_budget_event_s,
        )
        self.started = asyncio.Event()  # set after the first round was tried

    async def process_once(self, *, max_events: int = 100) -> PlannedNoticeStats:
        """Consume up to ``max_events`` events, one transaction each."""
        stats = PlannedNoticeStats()
        for _ in range(max_events):
            if not await self._consume_one(stats):
                break
        return stats

    async def _consume_one(self, stats: PlannedNoticeStats) -> bool:
        async with self._db.connection() as conn:
            event = await claim_next_event(conn)
            if event is None:
                return False
            now_s = self._clock.now_s()
            try:
                # A savepoint: a rejected event rolls back its own writes, then is marked.
                async with conn.transaction(), translated_errors():
                    outage_id, outcome, detail, inserted = await self._handle(conn, event, now_s)
            except StoreUnavailable:
                raise  # the database is away: the event stays for the next round
            except (_Rejected, StoreError) as exc:
                # Bad data must not block the events behind it.
                outage_id, outcome, detail, inserted = None, "rejected", str(exc), 0
                log.warning(
                    "planned notice rejected",
                    extra={"planned_id": event.planned_id, "event_id": event.event_id,
                           "reason": detail},
                )  # fmt: skip
            await self._before_mark(event)
            await mark_event_handled(
                conn,
                event.event_id,
                outage_id=outage_id,
                outcome=outcome,
                detail=detail,
                now_s=now_s,
            )
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        stats.notices += inserted
        return True

    async def _before_mark(self, event: PlannedEvent) -> None:
        """Seam for the crash test: runs after the notices are enqueued, before the event is
        marked handled, in the same transaction."""

    async def _handle(
        self, conn: AsyncConnection, event: PlannedEvent, now_s: float
    ) -> tuple[int | None, str, str, int]:
        mapping = await lock_mapping(conn, event.planned_id)
        if mapping is not None and event.version < mapping.version:
            return mapping.outage_id, "stale", f"version {mapping.version} already handled", 0
        if event.kind == "cancelled":
            if mapping is None:
                return None, "stale", "cancelled before it was announced", 0
            state = await call_off_planned_outage(conn, mapping, event, now_s=now_s)
            told = await customers_told(conn, mapping.outage_id)
            result = await self._enqueue(
                conn,
                OutageChange(
                    outage_id=mapping.outage_id,
                    kind="planned_cancelled",
                    version=event.version,
                    occurred_at_s=now_s,
                    customer_ids=told,
                    where=notice_text((await device_scope(conn, event.device_id)).place),
                    why=notice_text(event.reason),
                    starts_at_s=event.starts_at_s,
                    ends_at_s=event.ends_at_s,
                ),
            )
            detail = (
                f"cancelled ({state}); {len(told)} customers told,"
                f" {result.superseded} unsent notices superseded"
            )
            return mapping.outage_id, "notified", detail, result.inserted
        if mapping is not None and mapping.cancelled:
            return mapping.outage_id, "stale", "the job was cancelled", 0
        if event.ends_at_s <= now_s:
            return (
                mapping.outage_id if mapping else None,
                "stale",
                "the window was over before the notice could be sent",
                0,
            )
        scope = await device_scope(conn, event.device_id)
        if mapping is None:
            outage_id = await open_planned_outage(conn, event, scope, now_s=now_s)
        else:
            outage_id = mapping.outage_id
            await move_planned_outage(conn, outage_id, event, scope, now_s=now_s)
        lead_s = event.starts_at_s - now_s
        emergency = lead_s < self._policy.planned_min_notice_s
        if emergency and not event.short_notice:
            # Accepted >= 5 days ahead, consumed too late: tell them now rather than never.
            log.warning(
                "planned notice consumed late; sent as short notice",
                extra={"planned_id": event.planned_id, "lead_days": round(lead_s / 86400, 2)},
            )
        result = await self._enqueue(
            conn,
            OutageChange(
                outage_id=outage_id,
                kind="planned_notice",
                version=event.version,
                occurred_at_s=now_s,
                customer_ids=scope.customer_ids,
                where=notice_text(scope.place),
                why=notice_text(event.reason),
                starts_at_s=event.starts_at_s,
                ends_at_s=event.ends_at_s,
                emergency=emergency,
            ),
        )
        detail = (
            f"{event.kind} v{event.version}: {result.customers} customers,"
            f" {result.inserted} notices{' (short notice)' if emergency else ''},"
            f" {result.superseded} superseded, {result.opted_out} opted out,"
            f" {result.rejected} unreachable"
        )
        return outage_id, "notified", detail, result.inserted

    async def _enqueue(self, conn: AsyncConnection, change: OutageChange) -> EnqueueResult:
        try:
            return await enqueue_for_outage_change(
                PostgresOutbox(conn), change, templates=self._templates, policy=self._policy
            )
        except EventError as exc:
            raise _Rejected(str(exc)) from None

    async def advance_windows(self) -> tuple[int, int]:
        """Start and end planned jobs' outage rows on event time: (started, ended)."""
        return await advance_planned_windows(self._db, self._clock.now_s())

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: consume events, move windows, wait until the next look is due
        (``poll_event_s`` of service-clock time) when idle."""
        pacer = self._pacer
        while not stop.is_set():
            pacer.begin()
            stats = PlannedNoticeStats()
            try:
                stats = await self.process_once()
                await self.advance_windows()
            except StoreError as exc:  # the database may be away; try again next round
                log.warning("planned notices round failed: %s", exc)
            pacer.end()
            self.started.set()
            if stats.notified + stats.rejected + stats.stale == 0:
                await pacer.wait(stop)
            else:
                await asyncio.sleep(0)  # more events may wait: go on, but let others run
