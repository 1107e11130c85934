"""The bridge from the outage lifecycle to the notifier's outbox.

Detection persists each step's outage changes in one transaction and calls
``NotifyBridge.on_persisted`` inside it, so the notices commit (or roll back) with the
outage rows. The bridge turns engine changes (``gridwatch.outages.OutageChange``) into the
notifier's ``notifier.OutageChange`` events, with one version per outage that grows with
every change, and decides who hears what from the outage's meters:

* an outage is announced only once it is confirmed (a predicted outage may be withdrawn,
  a momentary never becomes an outage): ``outage_detected`` to every customer with a meter
  still out who has not been told about this outage (or one merged into it);
* a nested outage's customers get ``still_out_nested`` instead: the upstream device is
  back but they are not;
* ``restored`` goes to a customer once all their meters in the outage are seen back
  (a partial restoration tells them at once), and only to customers who were told the
  outage began; meters transferred to a nested outage or never verified are not restored.

ETR updates are a separate loop (``etr_round``, every ``poll_event_s`` of service-clock
time): open, confirmed outages whose ETR the ETR task refreshed are judged by
``gridwatch.etr.decide_update``; only a "notify" decision enqueues an ``etr_updated``
notice, under a row lock on the outage so a restoration and an ETR update cannot cross.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from psycopg import AsyncConnection

from gridwatch.core.clock import Clock
from gridwatch.core.errors import StoreError
from gridwatch.core.pacing import EventPacer
from gridwatch.detection import PersistedOutages
from gridwatch.etr import (
    CustomerWindow,
    LastNotice,
    UpdateDecision,
    UpdatePolicy,
    customer_window,
    decide_update,
)
from gridwatch.store import Database
from gridwatch.store.etr import NoticeRow, get_notice_in, save_notice
from gridwatch.store.notifications import PostgresOutbox, customers_told, get_outage_notice_state
from gridwatch.store.outage_context import (
    OutageNoticeContext,
    etr_candidates,
    lock_open_outage,
    meter_customers,
    meters_out,
    notice_contexts,
)
from gridwatch.store.outages import OutageMeterRow, OutageRow
from gridwatch.topology import device_places
from notifier import (
    EnqueueResult,
    EventError,
    NoticeKind,
    NotifyPolicy,
    Templates,
    enqueue_for_outage_change,
)
from notifier import OutageChange as NoticeChange

log = logging.getLogger(__name__)

ANNOUNCED_KINDS: tuple[str, ...] = ("outage_detected", "still_out_nested")
_MAX_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def notice_text(value: str) -> str:
    """Topology text made safe for a notice: no control characters, at most 200 chars."""
    return _CONTROL.sub(" ", value).strip()[:_MAX_TEXT]


@dataclass(frozen=True, slots=True)
class CustomerStatus:
    """Per customer of one outage: still out (some meter out) or back (every meter restored)."""

    out: frozenset[str]
    restored: frozenset[str]


def customer_status(
    meters: Iterable[OutageMeterRow], owners: Mapping[str, str] | None = None
) -> CustomerStatus:
    """Customers by their meters' statuses in one outage. A customer with several meters is
    out while any is out, and restored only when all are restored ("transferred" to a
    nested outage and "unverified" are neither: those customers are not told "restored").
    ``owners`` (meter -> customer, from the store) fills rows without a customer."""
    statuses: dict[str, set[str]] = {}
    for m in meters:
        customer = m.customer_id or (owners or {}).get(m.meter_id)
        if customer is not None:
            statuses.setdefault(customer, set()).add(m.status)
    out = frozenset(c for c, s in statuses.items() if "out" in s)
    restored = frozenset(c for c, s in statuses.items() if s == {"restored"})
    return CustomerStatus(out, restored)


@dataclass(frozen=True, slots=True)
class PlannedNotice:
    """One notice the bridge will enqueue for an outage in this step (before "who was told")."""

    engine_key: str
    kind: NoticeKind
    candidates: frozenset[str]  # customers, before removing those already told


def plan_notices(
    p: PersistedOutages, owners: Mapping[str, str] | None = None
) -> list[PlannedNotice]:
    """What a persisted step may announce, outage by outage (pure; no I/O). Parents come
    before nested outages, as detection writes them. ``owners``: meter -> customer."""
    meters: dict[str, list[OutageMeterRow]] = {}
    for m in p.meters:
        meters.setdefault(m.engine_key, []).append(m)
    plans: list[PlannedNotice] = []
    for row in p.outages:
        if row.confirmed_s is None or row.state == "cancelled":
            continue  # never confirmed (or merged away): nobody was or will be told from it
        status = customer_status(meters.get(row.engine_key, ()), owners)
        first: NoticeKind = "still_out_nested" if row.parent_key is not None else "outage_detected"
        if status.out:
            plans.append(PlannedNotice(row.engine_key, first, status.out))
        if status.restored:
            plans.append(PlannedNotice(row.engine_key, "restored", status.restored))
    return plans


def etr_fields(window: CustomerWindow, p50_s: float) -> tuple[float, float, float]:
    """Quantiles for the notifier from the customer window the ETR policy chose (already
    rounded), so what customers read is the policy's window."""
    mid = min(max(p50_s, window.start_s), window.end_s)
    return window.start_s, mid, window.end_s


@dataclass
class NotifyBridge:
    templates: Templates
    policy: NotifyPolicy = field(default_factory=lambda: NotifyPolicy(etr_min_change_s=0.0))
    etr_policy: UpdatePolicy = field(default_factory=UpdatePolicy)
    counts: Counter[str] = field(default_factory=Counter)

    # ------------------------------------------------------------- detection hook

    async def on_persisted(self, p: PersistedOutages, conn: AsyncConnection) -> None:
        """``DetectionRunner``'s ``on_persisted`` hook: enqueue in the step's transaction."""
        if not any(r.confirmed_s is not None for r in p.outages):
            return  # nothing confirmed was touched: the common step, kept cheap
        # The runner's topology may not carry meter owners: the store's meters table does.
        unowned = [m.meter_id for m in p.meters if m.customer_id is None]
        owners = await meter_customers(conn, unowned)
        plans = plan_notices(p, owners)
        if not plans:
            return
        rows = {r.engine_key: r for r in p.outages}
        ids = [p.outage_ids[k] for k in {pl.engine_key for pl in plans} if k in p.outage_ids]
        contexts = await notice_contexts(conn, ids)
        # A notice names the place customers know, never the device id.
        places = await device_places(conn, [c.device_id for c in contexts.values()])
        for plan in plans:
            outage_id = p.outage_ids.get(plan.engine_key)
            ctx = contexts.get(outage_id) if outage_id is not None else None
            if outage_id is None or ctx is None:
                self.counts["missing_outage_id"] += 1
                log.error("no outage row for engine key %s; notices skipped", plan.engine_key)
                continue
            # The row is what the step committed; a row an operator closed keeps the
            # operator's state (save_outages_in), so a stale step announces no outage on it.
            if ctx.state == "cancelled" or (ctx.state == "restored" and plan.kind != "restored"):
                self.counts["closed_row_skipped"] += 1
                continue
            await self._announce(
                conn, plan, rows[plan.engine_key], ctx, places[ctx.device_id], p.event_time_s
            )

    async def _announce(
        self,
        conn: AsyncConnection,
        plan: PlannedNotice,
        row: OutageRow,
        ctx: OutageNoticeContext,
        where: str,
        now_s: float,
    ) -> None:
        told = await customers_told(conn, ctx.outage_id, ANNOUNCED_KINDS)
        if plan.kind == "restored":
            already = await customers_told(conn, ctx.outage_id, ("restored",))
            targets = (plan.candidates & told) - already
        else:
            targets = plan.candidates - told
        if not targets:
            return
        etr: tuple[float | None, float | None, float | None] = (None, None, None)
        window: CustomerWindow | None = None
        p10, p50, p90 = ctx.etr_p10_s, ctx.etr_p50_s, ctx.etr_p90_s
        if plan.kind != "restored" and p10 is not None and p50 is not None and p90 is not None:
            window = customer_window(p10, p50, p90, now_s, self.etr_policy)
            etr = etr_fields(window, p50)
        change = NoticeChange(
            outage_id=ctx.outage_id,
            kind=plan.kind,
            version=await self._next_version(conn, ctx.outage_id),
            occurred_at_s=now_s,
            customer_ids=sorted(targets),
            etr_p10_s=etr[0],
            etr_p50_s=etr[1],
            etr_p90_s=etr[2],
            where=notice_text(where),
            started_at_s=row.started_s,
        )
        result = await self._enqueue(conn, change)
        if result is not None and window is not None and p50 is not None:
            # Customers were told an ETR: the update policy judges later changes against it.
            last = await get_notice_in(conn, ctx.outage_id)
            await save_notice(
                conn,
                NoticeRow(
                    ctx.outage_id,
                    last.first_at_s if last else now_s,
                    now_s,
                    window.start_s,
                    window.end_s,
                    p50,
                    last.updates_sent if last else 0,
                ),
            )

    async def _next_version(self, conn: AsyncConnection, outage_id: int) -> int:
        state = await get_outage_notice_state(conn, outage_id)
        return (state.version if state is not None else 0) + 1

    async def _enqueue(self, conn: AsyncConnection, change: NoticeChange) -> EnqueueResult | None:
        try:
            result = await enqueue_for_outage_change(
                PostgresOutbox(conn), change, templates=self.templates, policy=self.policy
            )
        except EventError as exc:
            # One malformed change (say, a bad ETR) must not cost the step its outage rows.
            self.counts["refused"] += 1
            log.error("notices for outage %d refused: %s", change.outage_id, exc)
            return None
        self.counts[f"enqueued:{change.kind}"] += result.inserted
        return result

    # ------------------------------------------------------------- ETR updates

    async def etr_round(self, db: Database, now_s: float) -> int:
        """Judge every open, confirmed outage's current ETR against what its customers were
        last told; enqueue ``etr_updated`` where the policy says so. Returns notices enqueued."""
        async with db.connection() as conn:
            candidates = await etr_candidates(conn)
        enqueued = 0
        for cand in candidates:
            decision = self._decide(cand.context, cand.last, now_s)
            if decision is None or not decision.notify:
                continue
            async with db.connection() as conn:
                enqueued += await self._etr_update(conn, cand.context.outage_id, now_s)
        return enqueued

    def _decide(
        self, ctx: OutageNoticeContext, last: NoticeRow | None, now_s: float
    ) -> UpdateDecision | None:
        if ctx.etr_p10_s is None or ctx.etr_p50_s is None or ctx.etr_p90_s is None:
            return None
        previous = (
            None
            if last is None
            else LastNotice(last.last_at_s, last.p50_s, last.window_end_s, last.updates_sent)
        )
        return decide_update(
            previous, ctx.etr_p10_s, ctx.etr_p50_s, ctx.etr_p90_s, now_s, self.etr_policy
        )

    async def _etr_update(self, conn: AsyncConnection, outage_id: int, now_s: float) -> int:
        ctx = await lock_open_outage(conn, outage_id)
        if ctx is None:
            return 0  # restored (or gone) since the candidates were read
        where = (await device_places(conn, [ctx.device_id]))[ctx.device_id]
        last = await get_notice_in(conn, outage_id)
        decision = self._decide(ctx, last, now_s)
        if decision is None or not decision.notify or ctx.etr_p50_s is None:
            return 0
        meters = await meters_out(conn, outage_id)
        p10, p50, p90 = etr_fields(decision.window, ctx.etr_p50_s)
        change = NoticeChange(
            outage_id=outage_id,
            kind="etr_updated",
            version=await self._next_version(conn, outage_id),
            occurred_at_s=now_s,
            meter_ids=meters,
            etr_p10_s=p10,
            etr_p50_s=p50,
            etr_p90_s=p90,
            where=notice_text(where),
            started_at_s=ctx.started_at_s,
        )
        result = await self._enqueue(conn, change)
        if result is None:
            return 0
        await save_notice(
            conn,
            NoticeRow(
                outage_id,
                last.first_at_s if last else now_s,
                now_s,
                decision.window.start_s,
                decision.window.end_s,
                ctx.etr_p50_s,
                # The first ETR customers hear is not an "update" of one they never had.
                (last.updates_sent + 1) if last else 0,
            ),
        )
        self.counts[f"etr_decision:{decision.reason}"] += 1
        return result.inserted

    async def run_etr_notices(
        self,
        db: Database,
        clock: Clock,
        stop: asyncio.Event,
        *,
        poll_event_s: float = 1.0,
        lag_budget_event_s: float = 30.0,
        started: asyncio.Event | None = None,
    ) -> None:
        """Run ``etr_round`` every ``poll_event_s`` of service-clock time until ``stop``
        (a replay at 600x as often per minute of grid time as live: a wall-second poll
        told customers of a new ETR up to 10 grid minutes late); a failed round is logged
        and retried. ``started`` is set after the first round was tried."""
        pacer = EventPacer(
            clock,
            "etr-notices",
            interval_event_s=poll_event_s,
            budget_event_s=lag_budget_event_s,
        )
        while not stop.is_set():
            now_s = pacer.begin()
            try:
                await self.etr_round(db, now_s)
            except StoreError as exc:
                log.warning("ETR notice round failed; retrying: %s", exc)
            except Exception:  # the service outlives one bad round
                log.exception("ETR notice round failed unexpectedly")
            pacer.end()
            if started is not None:
                started.set()
            await pacer.wait(stop)
