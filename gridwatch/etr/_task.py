"""The ETR task the running service starts: model at start-up, periodic refit, refreshes.

    await etr_task(db, clock, stop, settings)

* At start: the active stored model; if none, a fit on the database's outages; if they are
  too few (``HistoryRejected``), the bundled default prior (``default_prior_model``), stored
  as the active model so the API can show which model produced every ETR.
* Every ``refresh_s`` of event time (the service clock, so a replay at 600x refreshes 600
  times faster): every open outage gets a new ETR (``etr_history`` + ``outages.etr_*``),
  passed overrides are cleared and re-estimated; and sooner, at once, when an ETR is about
  to pass unrestored.
* Every ``refit_s`` of event time: a refit on the database's outages (kept when the history
  is still too short). A prior is replaced as soon as the database can do better.
The task looks at the clock every ``poll_event_s`` of service-clock time too (a replay at
600x waits ``poll_event_s / 600`` wall seconds, with a floor): a wall-second poll was 10
minutes of grid time at 600x, and a new outage waited that long for its first ETR. Where
a look comes later than asked (the floor, a slow round), ``LagWatch("etr")`` says so.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from detectors.etr import FitConfig
from gridwatch.core.clock import Clock
from gridwatch.core.errors import GridwatchError
from gridwatch.core.pacing import EventPacer
from gridwatch.etr._errors import HistoryRejected, ModelUnavailable
from gridwatch.etr._estimate import EtrBatch, EtrConfig, set_provenance
from gridwatch.etr._history_import import HistoryColumns
from gridwatch.etr._prior import PRIOR_NAME, PRIOR_SEED, prior_columns
from gridwatch.etr._service import (
    LoadedModel,
    fit_model,
    load_active_model,
    next_refresh_delay_s,
    refit_model,
    refresh_open_etrs,
    save_fitted_model,
    warm_up,
)
from gridwatch.store import etr as store
from gridwatch.store.database import Database

log = logging.getLogger(__name__)

PRIOR_PREFIX = "etr-prior"


@dataclass(frozen=True)
class EtrTaskOptions:
    """What the task reads from ``Settings`` (``etr_*`` fields, when present) or is given."""

    refresh_s: float = 300.0  # event time between refreshes
    refit_s: float = 86400.0  # event time between refits
    poll_event_s: float = 1.0  # event time between looks at the clock
    lag_budget_event_s: float = 30.0  # later than this, the task says it is falling behind
    lookback_days: float = 730.0
    etr: EtrConfig = field(default_factory=EtrConfig)

    def __post_init__(self) -> None:
        if not (10.0 <= self.refresh_s <= 86400.0):
            raise ValueError("etr refresh_s must be in [10 s, 1 day]")
        if not (self.refresh_s <= self.refit_s <= 365 * 86400.0):
            raise ValueError("etr refit_s must be in [refresh_s, 1 year]")
        if not (0.001 <= self.poll_event_s <= 60.0):
            raise ValueError("etr poll_event_s must be in [0.001, 60] s")
        if not (0.0 < self.lag_budget_event_s <= 3600.0):
            raise ValueError("etr lag_budget_event_s must be in (0, 3600] s")
        if not (1.0 <= self.lookback_days <= 3650.0):
            raise ValueError("etr lookback_days must be in [1, 3650]")

    @classmethod
    def from_settings(cls, settings: Any) -> EtrTaskOptions:
        """``etr_refresh_s``, ``etr_refit_s``, ``etr_poll_event_s``, ``loop_lag_budget_event_s``,
        ``etr_lookback_days``,
        ``etr_default_crews``, ``etr_crews_per_zone`` (dict zone -> crews), ``etr_shared_crews``
        (one pool for every zone) from the settings
        object when it has them; defaults otherwise."""
        base = cls()

        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        crews = get("etr_crews_per_zone", {})
        shared = get("etr_shared_crews", None)
        etr = EtrConfig(
            crews_per_zone={str(k): int(v) for k, v in dict(crews).items()},
            default_crews=int(get("etr_default_crews", base.etr.default_crews)),
            shared_crews=None if shared is None else int(shared),
        )
        if (
            etr.default_crews < 1
            or any(v < 1 for v in etr.crews_per_zone.values())
            or (etr.shared_crews is not None and etr.shared_crews < 1)
        ):
            raise ValueError("etr crews must be >= 1")
        return cls(
            refresh_s=float(get("etr_refresh_s", base.refresh_s)),
            refit_s=float(get("etr_refit_s", base.refit_s)),
            poll_event_s=float(get("etr_poll_event_s", base.poll_event_s)),
            lag_budget_event_s=float(get("loop_lag_budget_event_s", base.lag_budget_event_s)),
            lookback_days=float(get("etr_lookback_days", base.lookback_days)),
            etr=etr,
        )


def default_prior_model() -> tuple[HistoryColumns, Any]:
    """The bundled prior's columns and fitted model (no I/O; about 50 ms)."""
    cols = prior_columns()
    model = fit_model(cols, FitConfig(seed=PRIOR_SEED))  # the root itself: no kind root
    set_provenance(model, "prior", fitted_on=PRIOR_NAME)
    return cols, model


async def _store_prior(db: Database, now_s: float) -> LoadedModel:
    cols, model = await asyncio.to_thread(default_prior_model)
    model.info["prior"] = (
        f"bundled default: {PRIOR_NAME};"
        " replaced by the first refit the database's outages can support"
    )
    loaded = await save_fitted_model(db, model, now_s, cols, version_prefix=PRIOR_PREFIX)
    log.warning("etr: too few restored outages to fit; using the bundled prior %s", loaded.version)
    return loaded


async def initial_model(db: Database, clock: Clock, options: EtrTaskOptions) -> LoadedModel:
    """The active model; else a fit on the database's outages; else the bundled prior."""
    try:
        return await load_active_model(db)
    except ModelUnavailable as exc:
        log.info("etr: %s; fitting from the database", exc)
    try:
        return await refit_model(db, clock, lookback_days=options.lookback_days, config=options.etr)
    except HistoryRejected as exc:
        log.info("etr: database history rejected (%s)", exc)
    return await _store_prior(db, clock.now_s())


async def _refit_or_keep(
    db: Database, clock: Clock, options: EtrTaskOptions, current: LoadedModel
) -> LoadedModel:
    try:
        return await refit_model(db, clock, lookback_days=options.lookback_days, config=options.etr)
    except HistoryRejected as exc:
        log.info("etr refit skipped, keeping %s: %s", current.version, exc)
        return current


class EtrRounds:
    """The task's schedule, one look at the clock per ``tick``: the model at the first tick,
    refits every ``refit_s``, refreshes every ``refresh_s`` (sooner when an ETR is about to
    pass). ``etr_task`` ticks every ``poll_event_s`` of service-clock time; an in-process
    replay ticks after every commit, so both run exactly the service's rounds."""

    def __init__(self, db: Database, clock: Clock, options: EtrTaskOptions) -> None:
        self.db = db
        self.clock = clock
        self.options = options
        self.model: LoadedModel | None = None
        self._next_refit_s = 0.0
        self._due_s = -float("inf")
        self._healthy = False  # the last round succeeded

    async def tick(self) -> EtrBatch | None:
        """Run a round if one is due; the batch it stored, else None. A failed round is
        logged and retried at the next refresh. Between refreshes, outages without an ETR
        get theirs at once (``_new_outages``) without moving the next refresh."""
        opts = self.options
        now_s = self.clock.now_s()
        if now_s < self._due_s:
            new = await self._new_outages()
            if not new:
                return None
            return await self._round(now_s, only=new)
        self._due_s = now_s + opts.refresh_s
        return await self._round(now_s, only=None)

    async def _round(self, now_s: float, *, only: list[int] | None) -> EtrBatch | None:
        opts = self.options
        self._healthy = False
        try:
            if self.model is None:
                self.model = await initial_model(self.db, self.clock, opts)
                self._schedule_refit(now_s)
            elif only is None and now_s >= self._next_refit_s:
                self.model = await _refit_or_keep(self.db, self.clock, opts, self.model)
                self._schedule_refit(now_s)
            batch = await refresh_open_etrs(
                self.db, self.clock, self.model, config=opts.etr, only=only
            )
            if only is None:
                # An ETR about to pass is recomputed then, not a whole interval later.
                later = self.clock.now_s()
                self._due_s = later + next_refresh_delay_s(batch, later, opts.refresh_s)
            self._healthy = True
            return batch
        except (GridwatchError, ValueError) as exc:
            log.warning("etr round failed, retrying next refresh: %s", exc)
        except Exception:  # the service must outlive one bad round
            log.exception("etr round failed unexpectedly")
        return None

    async def _new_outages(self) -> list[int]:
        """Open outages without an ETR: customers are told of an outage at once, so its
        first ETR must not wait up to ``refresh_s`` for the next round. Only their ETRs are
        stored then (the others' follow at the refresh), so a storm's stream of new outages
        does not re-store every open outage's ETR at each one. After a failed round, the
        next regular refresh retries instead."""
        if self.model is None or not self._healthy:
            return []
        try:
            return await store.open_outages_without_etr(self.db)
        except GridwatchError as exc:
            log.warning("etr: cannot look for new outages: %s", exc)
            return []

    def _schedule_refit(self, now_s: float) -> None:
        assert self.model is not None
        is_prior = self.model.version.startswith(PRIOR_PREFIX)
        # A prior retries at every refresh until the history can replace it.
        self._next_refit_s = now_s + (self.options.refresh_s if is_prior else self.options.refit_s)


async def etr_task(
    db: Database,
    clock: Clock,
    stop: asyncio.Event,
    settings: Any,
    *,
    options: EtrTaskOptions | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set. A failed round (database away, bad row) is logged and
    retried at the next refresh; the task never dies of one. ``ready`` is set once a model
    (stored, fitted or the prior) is loaded: before that no outage can get an ETR."""
    opts = options or EtrTaskOptions.from_settings(settings)
    await asyncio.to_thread(warm_up)  # compile before the first refresh, off the loop
    rounds = EtrRounds(db, clock, opts)
    pacer = EventPacer(
        clock, "etr", interval_event_s=opts.poll_event_s, budget_event_s=opts.lag_budget_event_s
    )
    while not stop.is_set():
        pacer.begin()
        await rounds.tick()
        pacer.end()
        if ready is not None and rounds.model is not None:
            ready.set()
        await pacer.wait(stop)
