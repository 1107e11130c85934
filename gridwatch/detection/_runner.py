"""The detection runner: committed telemetry in, persisted outage lifecycle out.

It adapts ingest records into evidence arrays, runs the ``OutageEngine`` off the event loop
(``asyncio.to_thread``; the engine is only ever touched by one step at a time), moves event
time through the clock seam, persists every change (outages, their meters, timeline,
momentaries) in one transaction per step, publishes the engine's pings, follows switching
reported by SCADA, and takes open outages back from the database after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection

import detectors as det
from gridwatch.core.clock import Clock, LagWatch
from gridwatch.core.errors import StoreError, StoreUnavailable, TopologyError
from gridwatch.detection._evidence import EvidenceAdapter
from gridwatch.detection._operator_actions import OperatorActionQueue
from gridwatch.detection._pings import OutgoingPing, PingSender, ping_payload, ping_topic
from gridwatch.detection._reports import CustomerReportFeed
from gridwatch.outages import (
    METER_OUT,
    METER_STATUS_NAMES,
    EngineConfig,
    Names,
    Network,
    OperatorAction,
    Outage,
    OutageChange,
    OutageEngine,
    momentary_rows,
    rows_for_changes,
)
from gridwatch.outages.planned_windows import PlannedWindowSync
from gridwatch.store import Database, set_devices_open
from gridwatch.store.outage_queries import load_open_outage_meters, load_open_outages
from gridwatch.store.outages import OutageMeterRow, OutageRow, TimelineRow, save_outages_in
from gridwatch.store.reliability import MomentaryRow, record_momentaries_in
from gridwatch.topology import Topology
from ingest import CommittedBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    tick_interval_s: float = 1.0  # wall seconds between ticks while no telemetry arrives
    # ... and at most this many EVENT seconds: a replay at 60x must not tick once a minute
    # of event time, or declarations wait for the next tick instead of the delay.
    tick_event_s: float = 1.0
    tick_min_wall_s: float = 0.01
    queue_max_batches: int = 1000  # committed batches waiting; a full queue holds ingest back
    max_batches_per_step: int = 500
    persist_retry_min_s: float = 0.5
    persist_retry_max_s: float = 30.0
    # Re-parent the engine's network when SCADA reports a tie operated, so a section fed
    # through a tie is judged on the tree that feeds it (SCADA acts through the gates).
    follow_switching: bool = True
    # With a watermark (``horizon``), detection waits for evidence still on its way, up to
    # this far behind the service clock (event seconds; evidence later than the engine's
    # future skew would be refused). Past ``lag_budget_s`` it says it is falling behind.
    max_hold_s: float = 120.0
    lag_budget_s: float = 15.0
    # A step that covers more event time than this (a machine behind, a watermark let go)
    # walks its evidence in slices of it, judging at each slice's end, so that what is
    # decided never depends on how much evidence one step happened to get. At most
    # ``max_substeps`` slices a step (wider slices beyond: LagWatch already says why).
    substep_event_s: float = 5.0
    max_substeps: int = 48
    # A ping's answer is in transit (broker, head-end, ingest) for some wall time, which a
    # replay at 600x turns into minutes of service clock: past its deadline in event time
    # it would count as silence (strong evidence of darkness) where a slower replay heard
    # it. So with a watermark, event time is held (within ``max_hold_s``) at the deadline
    # of a ping sent less than this many wall seconds ago and not answered yet. At real
    # time it never binds (30 s of event time is 30 s of wall time).
    ping_transit_wall_s: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tick_interval_s) and self.tick_interval_s > 0):
            raise ValueError("tick_interval_s must be a positive finite number")
        if self.queue_max_batches < 1 or self.max_batches_per_step < 1:
            raise ValueError("queue_max_batches and max_batches_per_step must be >= 1")
        if not (self.max_hold_s >= 0 and self.lag_budget_s > 0):
            raise ValueError("need max_hold_s >= 0 and lag_budget_s > 0")
        if not (math.isfinite(self.substep_event_s) and self.substep_event_s > 0):
            raise ValueError("substep_event_s must be a positive finite number")
        if self.max_substeps < 1:
            raise ValueError("max_substeps must be >= 1")
        if not (math.isfinite(self.ping_transit_wall_s) and self.ping_transit_wall_s >= 0):
            raise ValueError("ping_transit_wall_s must be a finite number >= 0")


@dataclass(frozen=True)
class PersistedOutages:
    """What one step wrote. ``outage_ids`` (engine key -> outages.outage_id) is filled once
    the rows are in; the ``on_persisted`` hook sees it inside the same transaction."""

    event_time_s: float
    changes: tuple[OutageChange, ...]
    outages: tuple[OutageRow, ...]
    meters: tuple[OutageMeterRow, ...]
    timeline: tuple[TimelineRow, ...]
    momentaries: tuple[MomentaryRow, ...]
    outage_ids: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.outages or self.timeline or self.momentaries)


# The notifier's transactional outbox plugs in here: called with the persisted changes and
# the open connection, before commit; if it raises, the outage rows roll back with it.
OnPersisted = Callable[[PersistedOutages, AsyncConnection], Awaitable[None]]
# Called after commit (the demo's view, benchmarks measuring time-to-row).
OnCommitted = Callable[[PersistedOutages], None]


@dataclass(frozen=True)
class OpenOutageView:
    key: str
    device_id: str
    zone: str
    state: str
    cause: str
    start_s: float
    confirmed_s: float | None
    confidence: float
    meters_affected: int
    meters_out: int
    meters_restored: int
    customers_affected: int
    parent_key: str | None


@dataclass(frozen=True)
class DetectionSnapshot:
    event_time_s: float
    open_outages: tuple[OpenOutageView, ...] = ()
    outages_declared: int = 0
    outages_restored: int = 0
    momentaries: int = 0
    pings_sent: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass
class _StepOut:
    persisted: PersistedOutages
    pings: list[OutgoingPing]
    switched: dict[str, bool]
    snapshot: DetectionSnapshot
    ping_times: list[tuple[str, float]] = field(default_factory=list)  # (request id, sent)


def _names(topology: Topology) -> Names:
    return Names(
        device_ids=topology.devices.ids,
        device_zone=topology.devices.zone,
        meter_ids=topology.meters.ids,
        customer_ids=topology.customers.ids,
        meter_customer=topology.meters.customer,
    )


class DetectionRunner:
    """Runs outage detection inside the service. ``on_records`` is ingest's hook."""

    def __init__(
        self,
        db: Database,
        topology: Topology,
        *,
        clock: Clock,
        prefix: str = "gridwatch/v1",
        ping_sender: PingSender | None = None,
        engine_config: EngineConfig | None = None,
        model: det.DetectionModel | None = None,
        config: RunnerConfig | None = None,
        on_persisted: OnPersisted | None = None,
        on_committed: OnCommitted | None = None,
    ) -> None:
        self.config = config or RunnerConfig()
        self._db = db
        self._topology = topology
        self._clock = clock
        self._prefix = prefix
        self._pings = ping_sender
        self._on_persisted = on_persisted
        self.on_committed = on_committed
        self._names = _names(topology)
        self._adapter = EvidenceAdapter(topology.meter_index, topology.device_index)
        self.engine = OutageEngine(
            Network.from_topology(topology), now_s=clock.now_s(), model=model, config=engine_config
        )
        self._queue: asyncio.Queue[CommittedBatch] = asyncio.Queue(
            maxsize=self.config.queue_max_batches
        )
        self._scada_opened: set[int] = set()  # opened by SCADA, not (yet) in the topology
        self._retry: list[PersistedOutages] = []
        self._step_lock = asyncio.Lock()
        self._planned_windows = PlannedWindowSync(db)  # planned work suppresses detection
        # Operator actions (handed over by the operator desk) and customer reports
        # (customer_reports, read by id cursor) reach the engine at the start of each step.
        self.operator_actions = OperatorActionQueue()
        self.customer_reports = CustomerReportFeed(db, topology.meter_index)
        self._ready = asyncio.Event()
        self._snapshot = DetectionSnapshot(event_time_s=self.engine.now_s)
        self._rejects_logged: set[str] = set()
        self.counts: Counter[str] = Counter()
        # Ingest's watermark (``IngestService.received_through_s``): set by the wiring.
        self.horizon: Callable[[], float] | None = None
        self.lag = LagWatch("detection", self.config.lag_budget_s)
        # A ping's round trip in service-clock seconds: at 600x, 50 ms of wall time is a
        # whole ping_timeout_s, and an answer that comes later than that is judged a
        # timeout (silence) where a slower replay heard it. Said, never silent.
        timeout_s = self.engine.config.ping_timeout_s
        self.ping_lag = LagWatch("pings", timeout_s / 2)
        # request id -> (service-clock time sent, monotonic wall time sent), oldest first
        self._ping_sent: dict[str, tuple[float, float]] = {}
        # Evidence stamped after the step's event time (a ping answered as of the clock,
        # ahead of a held engine): applied once event time reaches it, never judged early.
        self._ahead_meter = det.meter_evidence(0)
        self._ahead_scada = det.scada_evidence(0)

    # ----------------------------------------------------------------- public

    @property
    def topology(self) -> Topology:
        """The network as currently switched (SCADA-reported switching applied)."""
        return self._topology

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def snapshot(self) -> DetectionSnapshot:
        return self._snapshot

    def held(self) -> asyncio.Lock:
        """The operator desk's hold (``EngineInbox``): the step lock, taken around an
        action's commit and hand-over, so no step upserts the engine's view in between."""
        return self._step_lock

    def put(self, action: OperatorAction) -> None:
        """A committed operator action, applied at the start of the next step (after the
        reload of open outages, if the runner is still starting)."""
        self.operator_actions.put(action)

    async def on_records(self, batch: CommittedBatch) -> None:
        """Ingest's ``on_records`` hook: queue the committed records. A full queue makes
        ingest wait (backpressure) rather than losing evidence."""
        await self._queue.put(batch)

    async def start(self) -> None:
        """Compile the kernels (off the loop) and take open outages back from the store."""
        if self._ready.is_set():
            return
        t0 = time.perf_counter()
        await asyncio.to_thread(det.warm_up)
        log.info("detection kernels ready in %.2f s", time.perf_counter() - t0)
        # Reports by cursor (from a lookback); operator actions handed over meanwhile wait
        # in ``operator_actions`` and are applied after the reload, at the first step.
        await self.customer_reports.start(self._clock.now_s())
        await self._reload_open_outages()
        self._ready.set()

    @property
    def _tick_wall_s(self) -> float:
        speed = float(getattr(self._clock, "speed", 1.0))
        cfg = self.config
        return max(cfg.tick_min_wall_s, min(cfg.tick_interval_s, cfg.tick_event_s / speed))

    async def run(self) -> None:
        """Start, then step on each committed batch and at least every tick interval."""
        await self.start()
        sender = asyncio.create_task(self._pings.run(), name="pings") if self._pings else None
        try:
            while True:
                batches: list[CommittedBatch] = []
                with contextlib.suppress(TimeoutError):
                    first = await asyncio.wait_for(self._queue.get(), timeout=self._tick_wall_s)
                    batches.append(first)
                # Read before draining: what was handed over before it is all queued here.
                horizon_s = self.horizon() if self.horizon is not None else None
                while len(batches) < self.config.max_batches_per_step:
                    try:
                        batches.append(self._queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                if horizon_s is not None and not self._queue.empty():
                    horizon_s = -math.inf  # more than one step's worth: time waits for it
                try:
                    await self.step(batches, horizon_s=horizon_s)
                except (StoreError, TopologyError, ValueError) as exc:
                    # A bad step must not stop detection; the evidence is already folded in.
                    self.counts["step_errors"] += 1
                    log.exception("detection step failed: %s", exc)
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def step(
        self, batches: list[CommittedBatch], *, horizon_s: float | None = None
    ) -> PersistedOutages:
        """One pass: fold ``batches`` in, advance to the clock's event time (to at most
        ``horizon_s``, the time through which every evidence has been handed over, held at
        most ``max_hold_s`` behind the clock), persist the changes, send the pings.
        Returns what was persisted (or queued for a retry)."""
        async with self._step_lock:
            # Before reading the clock: a slow read must not age this step's event time.
            await self._planned_windows.refresh(
                self.engine, self._topology.device_index, self._clock.now_s()
            )
            self._time_ping_answers(batches)
            now_s = self._event_time_s(self._hold_for_pings(horizon_s))
            pre = self.operator_actions.apply_pending(self.engine)
            pre += await self.customer_reports.apply_new(self.engine, now_s)
            out = await asyncio.to_thread(self._step_sync, batches, now_s, pre)
            self._snapshot = out.snapshot
            if self._pings is not None and out.pings:
                wall_s = time.monotonic()
                self._ping_sent.update((rid, (sent_s, wall_s)) for rid, sent_s in out.ping_times)
                dropped = self._pings.send(out.pings)
                self.counts["pings_sent"] += len(out.pings) - dropped
                self.counts["pings_dropped"] += dropped
            persisted = await self._persist(out.persisted)
            if out.switched:
                await self._store_switching(out.switched)
            return persisted

    def _time_ping_answers(self, batches: list[CommittedBatch]) -> None:
        """Observe each answer's round trip (sent -> handed to this step, service clock)."""
        if not self._ping_sent:
            return
        clock_s = self._clock.now_s()
        timeout_s = self.engine.config.ping_timeout_s
        for b in batches:
            for e in b.meter_events:
                if e.kind != "ping_reply":
                    continue
                sent = self._ping_sent.pop(e.request_id or "", None)
                if sent is None:
                    continue
                self.ping_lag.observe(clock_s - sent[0])
                if clock_s - sent[0] > timeout_s:
                    self.counts["ping_answers_late"] += 1
        # Never answered (lost, or a head-end that cannot answer): forget them in time.
        stale = [rid for rid, t in self._ping_sent.items() if clock_s - t[0] > 10 * timeout_s]
        for rid in stale:
            del self._ping_sent[rid]

    def _hold_for_pings(self, horizon_s: float | None) -> float | None:
        """``horizon_s``, held just short of the deadline of the oldest ping whose answer may
        still be in transit (sent under ``ping_transit_wall_s`` ago, not answered): its
        answer is judged as a real-time service would, not taken for silence."""
        if horizon_s is None or not self._ping_sent:
            return horizon_s
        wall_s = time.monotonic()
        transit_s = self.config.ping_transit_wall_s
        for sent_s, sent_wall_s in self._ping_sent.values():  # oldest first
            if wall_s - sent_wall_s < transit_s:
                deadline_s = sent_s + self.engine.config.ping_timeout_s
                if deadline_s <= horizon_s:
                    self.counts["ping_holds"] += 1
                    return deadline_s - 1e-3  # a millisecond short: not yet expired
                return horizon_s  # later pings were sent later: their deadlines are later
        return horizon_s

    def _event_time_s(self, horizon_s: float | None) -> float:
        """The time this step judges at: the service clock, held back to the watermark so
        that evidence still on its way (in ingest, at any replay speed) is waited for."""
        clock_s = self._clock.now_s()
        if horizon_s is None:
            return clock_s
        held_s = max(clock_s - self.config.max_hold_s, min(clock_s, horizon_s))
        now_s = max(self.engine.now_s, held_s)
        self.lag.observe(clock_s - now_s)
        return now_s

    # --------------------------------------------------------------- the step

    def _step_sync(
        self, batches: list[CommittedBatch], now_s: float, pre: list[OutageChange] | None = None
    ) -> _StepOut:
        eng = self.engine
        changes: list[OutageChange] = list(pre or ())  # operator actions, customer reports
        switched: dict[str, bool] = {}
        meter, scada = self._ahead_meter[:0], self._ahead_scada[:0]
        if batches:
            ev = self._adapter.convert(batches)
            self.counts["batches"] += len(batches)
            self.counts["meter_evidence"] += int(ev.meter.size)
            self.counts["scada_evidence"] += int(ev.scada.size)
            self.counts["ping_replies"] += ev.ping_replies
            for r in ev.rejects:
                self._count_reject(f"{r.source}:{r.reason}", r.item_id)
            meter, scada = ev.meter, ev.scada
        meter, scada = self._with_ahead(meter, scada, now_s)
        if meter.size or scada.size:
            changes += self._apply_in_slices(meter, scada, now_s)
        if scada.size and self.config.follow_switching:
            changes += self._follow_switching(scada, switched)
        changes += eng.tick(now_s)
        # Stamped when they leave (the clock, ahead of a held engine): each is answered as
        # of then, and times out only once the watermark has passed its deadline.
        requests = eng.pings_wanted(sent_s=self._clock.now_s())
        moments = eng.take_momentaries()
        out_rows, meter_rows, timeline = rows_for_changes(eng.outages, changes, self._names)
        persisted = PersistedOutages(
            event_time_s=eng.now_s,
            changes=tuple(changes),
            outages=tuple(out_rows),
            meters=tuple(meter_rows),
            timeline=tuple(timeline),
            momentaries=tuple(momentary_rows(moments, self._names)),
        )
        pings = [self._outgoing(p.meter, p.request_id, p.requested_s) for p in requests]
        ping_times = [(p.request_id, p.requested_s) for p in requests]
        self.counts["momentaries"] += len(moments)
        for c in changes:
            if c.kind in ("predicted", "nested", "split"):
                self.counts["outages_declared"] += 1
            elif c.kind == "restored":
                self.counts["outages_restored"] += 1
        snapshot = (
            self._build_snapshot()
            if changes or moments or requests
            else replace(self._snapshot, event_time_s=eng.now_s)
        )
        return _StepOut(persisted, pings, switched, snapshot, ping_times)

    def _with_ahead(
        self, meter: npt.NDArray[np.void], scada: npt.NDArray[np.void], now_s: float
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]:
        """This step's evidence plus what earlier steps held back, less what is stamped
        after ``now_s`` (within the engine's future skew): that waits for its time. A
        restore answered as of the clock, 40 s ahead of a held engine, was judged at the
        engine's time: customers "restored" 40 s before their supply came back (600x)."""
        meter = np.concatenate([self._ahead_meter, meter])
        scada = np.concatenate([self._ahead_scada, scada])
        skew_s = self.engine.config.future_skew_s
        wait_m = (meter["ts_s"] > now_s) & (meter["ts_s"] <= now_s + skew_s)
        wait_s = (scada["ts_s"] > now_s) & (scada["ts_s"] <= now_s + skew_s)
        self._ahead_meter, self._ahead_scada = meter[wait_m], scada[wait_s]
        self.counts["evidence_held_ahead"] += int(wait_m.sum() + wait_s.sum())
        return meter[~wait_m], scada[~wait_s]

    def _apply_in_slices(
        self, meter: npt.NDArray[np.void], scada: npt.NDArray[np.void], now_s: float
    ) -> list[OutageChange]:
        """Fold the evidence in as a runner stepping every ``substep_event_s`` would have:
        each slice of it (by its time) applied and judged at the slice's end, the last
        slice (and evidence up to the allowed skew ahead) at ``now_s``."""
        eng, cfg = self.engine, self.config
        changes: list[OutageChange] = []
        span_s = now_s - eng.now_s
        n = min(cfg.max_substeps, math.ceil(span_s / cfg.substep_event_s)) if span_s > 0 else 1
        start_s, width_s = eng.now_s, span_s / max(n, 1)
        m_ts, s_ts = meter["ts_s"], scada["ts_s"]
        done_m = np.zeros(m_ts.shape[0], dtype=np.bool_)
        done_s = np.zeros(s_ts.shape[0], dtype=np.bool_)
        for i in range(1, n + 1):
            last = i == n
            at_s = now_s if last else start_s + i * width_s
            # NaN and far-future times go with the last slice, where the engine rejects them.
            take_m = ~done_m if last else ~done_m & (m_ts <= at_s)
            take_s = ~done_s if last else ~done_s & (s_ts <= at_s)
            done_m |= take_m
            done_s |= take_s
            if take_m.any() or take_s.any():
                changes += eng.apply(meter[take_m], scada[take_s], now_s=at_s)
                for rej in eng.last_rejects:
                    self._count_reject(f"engine:{rej.source}:{rej.reason}", str(rej.index))
            if not last:
                changes += eng.tick(at_s)
        return changes

    def _outgoing(self, meter: int, request_id: str, at_s: float) -> OutgoingPing:
        topo = self._topology
        zone = str(topo.devices.zone[topo.meters.device[meter]])
        return OutgoingPing(
            ping_topic(self._prefix, zone, str(topo.meters.ids[meter])),
            ping_payload(request_id, at_s),
        )

    def _count_reject(self, key: str, item: str) -> None:
        self.counts[f"rejected:{key}"] += 1
        if key not in self._rejects_logged:  # once per reason: a flood must not flood the log
            self._rejects_logged.add(key)
            log.warning("detection rejected evidence (%s), e.g. %s", key, item[:64])

    def _follow_switching(
        self, scada: npt.NDArray[np.void], switched: dict[str, bool]
    ) -> list[OutageChange]:
        """Keep the engine's network as operated. Closing a device the topology holds open
        (a tie) or opening a normally-open tie re-parents the network; an ``open`` of any
        other device is remembered, since the tie closing next needs it open to stay radial.
        Other operations are evidence only (the engine already has them)."""
        changes: list[OutageChange] = []
        for i in np.argsort(scada["ts_s"], kind="stable").tolist():
            dev, ts, kind = int(scada["device"][i]), float(scada["ts_s"][i]), int(scada["kind"][i])
            topo = self._topology
            ids = topo.devices.ids
            is_open = bool(topo.devices.is_open[dev])
            close: list[str] = []
            open_: list[str] = []
            if kind == det.SCADA_CLOSE and is_open:
                close = [str(ids[dev])]
            elif kind == det.SCADA_OPEN and bool(topo.devices.normally_open[dev]) and not is_open:
                open_ = [str(ids[dev])]
            else:
                if kind == det.SCADA_OPEN:
                    self._scada_opened.add(dev)
                elif kind in (det.SCADA_CLOSE, det.SCADA_RECLOSE):
                    self._scada_opened.discard(dev)
                continue
            self._scada_opened.discard(dev)
            try:
                new = topo.with_switching(close=close, open=open_)
            except TopologyError:
                opened = sorted(self._scada_opened)
                extra = [str(ids[d]) for d in opened if not topo.devices.is_open[d]]
                try:
                    new = topo.with_switching(close=close, open=open_ + extra)
                except TopologyError as exc:
                    self.counts["switching_refused"] += 1
                    log.warning("switching reported by SCADA not followed: %s", exc)
                    continue
            moved = np.flatnonzero(new.devices.is_open != topo.devices.is_open)
            for d in moved.tolist():
                switched[str(ids[d])] = bool(new.devices.is_open[d])
                self._scada_opened.discard(d)
            self._topology = new
            self.counts["switching_followed"] += 1
            changes += self.engine.set_topology(Network.from_topology(new), at_s=ts)
        return changes

    def _build_snapshot(self) -> DetectionSnapshot:
        names = self._names
        views = []
        for o in sorted(self.engine.open_outages(), key=lambda o: (o.start_s, o.key)):
            views.append(
                OpenOutageView(
                    key=o.key,
                    device_id=str(names.device_ids[o.device]),
                    zone=str(names.device_zone[o.device]),
                    state=o.state,
                    cause=o.cause,
                    start_s=o.start_s,
                    confirmed_s=o.confirmed_s,
                    confidence=o.confidence,
                    meters_affected=o.meters_affected,
                    meters_out=o.meters_out,
                    meters_restored=o.meters_restored,
                    customers_affected=o.customers_affected,
                    parent_key=o.parent_key,
                )
            )
        rejected = {k[9:]: v for k, v in self.counts.items() if k.startswith("rejected:")}
        return DetectionSnapshot(
            event_time_s=self.engine.now_s,
            open_outages=tuple(views),
            outages_declared=self.counts["outages_declared"],
            outages_restored=self.counts["outages_restored"],
            momentaries=self.counts["momentaries"],
            pings_sent=self.counts["pings_sent"],
            rejected=rejected,
        )

    # ---------------------------------------------------------------- the store

    async def _persist(self, p: PersistedOutages) -> PersistedOutages:
        """Write ``p`` (after any earlier step still waiting for the database). A database
        that is away is waited out; nothing the engine decided is dropped."""
        if not p.empty:
            self._retry.append(p)
        done = p
        delay_s = self.config.persist_retry_min_s
        while self._retry:
            head = self._retry[0]
            try:
                written = await self._write(head, with_hook=True)
            except StoreUnavailable as exc:
                self.counts["persist_retries"] += 1
                log.warning("database unavailable, outage changes kept: %s", exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self.config.persist_retry_max_s)
                continue
            except Exception as exc:
                # Refused for good (bad data, or the hook failing): save the outage rows on
                # their own so the lifecycle is not lost, and say so loudly.
                self.counts["persist_failed"] += 1
                log.error("outage changes refused with the hook (%s); saving without it", exc)
                try:
                    written = await self._write(head, with_hook=False)
                except StoreError as exc2:
                    self.counts["persist_dropped"] += 1
                    log.error("outage changes dropped: %s", exc2)
                    written = head
            self._retry.pop(0)
            if head is p:
                done = written
            if self.on_committed is not None:
                self.on_committed(written)
        return done

    async def _write(self, p: PersistedOutages, *, with_hook: bool) -> PersistedOutages:
        async with self._db.connection() as conn:
            ids = await save_outages_in(conn, p.outages, p.meters, p.timeline, now_s=p.event_time_s)
            await record_momentaries_in(conn, p.momentaries)
            written = replace(p, outage_ids=ids)
            if with_hook and self._on_persisted is not None:
                await self._on_persisted(written, conn)
        self.counts["persisted_steps"] += 1
        return written

    async def _store_switching(self, switched: dict[str, bool]) -> None:
        try:
            await set_devices_open(self._db, switched)
        except StoreError as exc:  # the in-memory network already follows SCADA
            log.warning("could not record switching %s: %s", switched, exc)

    async def _reload_open_outages(self) -> None:
        """Take back the outages a previous run left open. Their meters' evidence is
        re-seeded from what the store holds (out: dark since the start; restored: on since
        restoration), so the engine neither forgets them nor re-declares them."""
        rows: list[dict[str, Any]] = list(await load_open_outages(self._db))
        if not rows:
            return
        meter_rows = await load_open_outage_meters(self._db)
        by_key: dict[str, list[tuple[str, str, Any]]] = {}
        for key, meter_id, status, restored_at in meter_rows:
            by_key.setdefault(key, []).append((meter_id, status, restored_at))
        key_of = {int(r["outage_id"]): str(r["engine_key"]) for r in rows if r["engine_key"]}
        topo = self._topology
        adopted: list[Outage] = []
        seeds: list[tuple[int, float, int]] = []
        for r in rows:
            key = r["engine_key"]
            dev = topo.device_index.get(str(r["device_id"]))
            if key is None or dev is None:
                self.counts["reload_skipped"] += 1
                log.warning("open outage %s not taken back: device unknown", r["outage_id"])
                continue
            start_s = r["started_at"].timestamp()
            confirmed = r["confirmed_at"]
            found = [
                (topo.meter_index[m], s, at)
                for m, s, at in by_key.get(str(key), [])
                if m in topo.meter_index
            ]
            found.sort()
            meters = np.array([m for m, _, _ in found], dtype=np.int32)
            codes = np.array([METER_STATUS_NAMES.index(s) for _, s, _ in found], dtype=np.int8)
            restored_s = np.array(
                [math.nan if at is None else at.timestamp() for _, _, at in found]
            )
            cust = topo.meters.customer[meters]
            parent = r["parent_outage_id"]
            o = Outage(
                key=str(key),
                device=dev,
                state=str(r["state"]),  # type: ignore[arg-type]
                start_s=start_s,
                confidence=float(r["confidence"] or 0.0),
                meters=meters,
                meter_status=codes,
                meter_restored_s=restored_s,
                customers_affected=int(np.unique(cust[cust >= 0]).shape[0]),
                cause=str(r["cause"]),
                confirmed_s=None if confirmed is None else confirmed.timestamp(),
                parent_key=None if parent is None else key_of.get(int(parent)),
                scope="premise" if r["scope"] == "premise" else "device",
            )
            adopted.append(o)
            per_meter = zip(meters.tolist(), codes.tolist(), restored_s.tolist(), strict=True)
            for m, st, at in per_meter:
                if st == METER_OUT:
                    seeds.append((m, start_s, det.LAST_GASP))
                elif not math.isnan(at):
                    seeds.append((m, at, det.POWER_RESTORE))
        self.engine.adopt(adopted)
        if seeds:
            ev = det.meter_evidence(len(seeds))
            ev["meter"] = [m for m, _, _ in seeds]
            ev["ts_s"] = [t for _, t, _ in seeds]
            ev["kind"] = [k for _, _, k in seeds]
            now_s = self._clock.now_s()
            changes = await asyncio.to_thread(self.engine.apply, ev, None, now_s=now_s)
            rows_ = rows_for_changes(self.engine.outages, changes, self._names)
            await self._persist(
                PersistedOutages(
                    now_s, tuple(changes), tuple(rows_[0]), tuple(rows_[1]), tuple(rows_[2]), ()
                )
            )
        self.counts["outages_reloaded"] = len(adopted)
        self._snapshot = self._build_snapshot()
        log.info("took back %d open outages", len(adopted))
