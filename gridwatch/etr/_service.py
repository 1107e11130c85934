"""The ETR model in the running service: refit, persist, load, refresh open outages, overrides.

Kernels run off the event loop (``asyncio.to_thread``); every ETR stored records the model
version and the inputs that produced it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import orjson

from detectors.etr import (
    FitConfig,
    HistoryError,
    KindRoot,
    SurvivalModel,
    calibrate_storm_thresholds,
    concurrent_open_counts,
    fit_survival_model,
)
from detectors.etr import warm_up as _warm_kernels
from gridwatch.core.clock import Clock
from gridwatch.core.pacing import EventPacer
from gridwatch.etr._calibration import calibrate_intervals, set_interval_scales
from gridwatch.etr._errors import (
    CrewStatusRefused,
    HistoryRejected,
    ModelUnavailable,
)
from gridwatch.etr._estimate import (
    EtrBatch,
    EtrConfig,
    OpenOutage,
    Override,
    estimate_etrs,
    set_model_thresholds,
    set_provenance,
)
from gridwatch.etr._history_import import (
    HistoryColumns,
    HistoryRecord,
    history_from_records,
    history_open_counts,
    read_history_records,
)
from gridwatch.etr._prior import kind_root_for
from gridwatch.store import etr as store
from gridwatch.store.database import Database

log = logging.getLogger(__name__)


# Detection records how an outage was found ("inferred" from meters, "scada_lockout",
# "nested" under a restored one), not why it happened. As a repair cause that is unknown
# (the model's ``unknown`` class, what the history's notices looked like) until a crew
# reports one; read as free text it would land in ``other``, a class of real causes.
_DETECTION_CAUSES = frozenset({"inferred", "nested", "nested_linked", "confirmed", "unknown"})


def repair_cause(cause: str | None) -> str | None:
    """The outage's physical cause, or None while only detection's provenance is known."""
    if cause is None:
        return None
    key = cause.strip().lower()
    if key in _DETECTION_CAUSES or key.startswith("scada_"):
        return None
    return cause


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: SurvivalModel


def warm_up() -> None:
    """Compile the ETR kernels at start-up (never on a request's path)."""
    _warm_kernels()


def fit_model(
    columns: HistoryColumns, config: FitConfig | None = None, *, root: KindRoot | None = None
) -> SurvivalModel:
    """Fit from model columns, translating the detectors' HistoryError."""
    try:
        return fit_survival_model(
            columns.duration_s, columns.censored, columns.class_code, config, root=root
        )
    except HistoryError as exc:
        raise HistoryRejected(str(exc)) from None


def model_version(model: SurvivalModel, fitted_at_s: float, prefix: str = "etr") -> str:
    """``etr-YYYYmmddTHHMMSSZ-<8 hex of the parameters>``: sortable and content-addressed
    (``etr-prior-...`` for the bundled prior)."""
    digest = hashlib.sha256(
        orjson.dumps(model.to_json_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
    ).hexdigest()[:8]
    stamp = datetime.fromtimestamp(fitted_at_s, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{digest}"


async def save_fitted_model(
    db: Database,
    model: SurvivalModel,
    fitted_at_s: float,
    columns: HistoryColumns,
    *,
    activate: bool = True,
    version_prefix: str = "etr",
) -> LoadedModel:
    version = model_version(model, fitted_at_s, version_prefix)
    params = orjson.loads(orjson.dumps(model.to_json_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
    params["info"]["rejected_rows"] = len(columns.rejects)
    starts = columns.started_at_s
    await store.save_model(
        db,
        version,
        fitted_at_s,
        float(starts.min()) if starts.size else None,
        float(starts.max()) if starts.size else None,
        len(columns),
        params,
        activate=activate,
    )
    log.info("etr model %s saved (%d outages)", version, len(columns))
    return LoadedModel(version, model)


def fit_records(
    records: Sequence[HistoryRecord],
    *,
    as_of_s: float,
    config: EtrConfig,
    fit_config: FitConfig | None = None,
) -> tuple[SurvivalModel, HistoryColumns]:
    """The one fitting pipeline (CPU-bound; call it in a thread): storm levels from the
    history's own concurrency with thresholds calibrated on it (``estimate_etrs`` derives
    them the same way for open outages, with the thresholds stored in the model), then the
    survival fit and the held-out interval calibration."""
    thresholds = config.thresholds
    if config.calibrate_thresholds and records:
        thresholds = calibrate_storm_thresholds(history_open_counts(records, as_of_s=as_of_s))
    columns = history_from_records(
        records, as_of_s=as_of_s, thresholds=thresholds, utc_offset_s=config.utc_offset_s
    )
    model = fit_model(columns, fit_config, root=kind_root_for(config))
    set_model_thresholds(model, thresholds)
    if config.calibrate_intervals:
        scales = calibrate_intervals(
            records,
            as_of_s=as_of_s,
            thresholds=thresholds,
            config=config,
            fit_config=fit_config,
        )
        set_interval_scales(model, scales)
    return model, columns


@dataclass(frozen=True)
class FileFit:
    loaded: LoadedModel
    columns: HistoryColumns
    planned_skipped: int  # planned work is not a repair: left out, as a refit does
    storm_levels_ignored: int  # rows whose own storm level was replaced by concurrency's


async def fit_history_file(
    db: Database,
    path: str | Path,
    *,
    as_of_s: float,
    activate: bool = True,
    config: EtrConfig | None = None,
    fit_config: FitConfig | None = None,
    from_grid: str | None = None,
) -> FileFit:
    """``gridwatch etr fit``: fit on a history CSV exactly as a refit fits the database's
    outages, store the model (active by default). ``from_grid`` names the grid a history
    from elsewhere was recorded on: the model is ``foreign`` and its intervals widen
    (docs/etr-model.md, "Provenance and unfamiliar grids"); otherwise it is ``local``.

    A file's own ``storm_level`` (say, a weather rating) is not what the service can know
    about an open outage: it counts the outages open when it started. The model's storm
    classes must mean that count, so the file's levels are replaced by it."""
    cfg = config or EtrConfig()
    records, rejects = read_history_records(path, as_of_s=as_of_s)
    usable = [dataclasses.replace(r, storm_level=None) for r in records if not r.planned]
    if len(usable) < len(records) or not usable:
        log.info("etr fit: %d planned rows left out", len(records) - len(usable))
    model, cols = await asyncio.to_thread(
        partial(fit_records, usable, as_of_s=as_of_s, config=cfg, fit_config=fit_config)
    )
    if from_grid is None:
        set_provenance(model, "local", fitted_on=f"history file {Path(path).name}")
    else:
        set_provenance(model, "foreign", fitted_on=from_grid)
    columns = HistoryColumns(
        cols.duration_s, cols.censored, cols.class_code, cols.started_at_s, rejects + cols.rejects
    )
    loaded = await save_fitted_model(db, model, as_of_s, columns, activate=activate)
    return FileFit(
        loaded,
        columns,
        planned_skipped=len(records) - len(usable),
        storm_levels_ignored=sum(r.storm_level is not None for r in records if not r.planned),
    )


async def refit_model(
    db: Database,
    clock: Clock,
    *,
    lookback_days: float = 730.0,
    config: EtrConfig | None = None,
    fit_config: FitConfig | None = None,
) -> LoadedModel:
    """Fit on the database's outages of the last ``lookback_days`` (those still open are
    censored now), store the model as the active version and return it."""
    cfg = config or EtrConfig()
    now_s = clock.now_s()
    rows = await store.fetch_history(db, now_s - lookback_days * 86400.0, now_s)
    records = [
        HistoryRecord(
            r.started_at_s,
            r.restored_at_s,
            None,
            False,
            r.device_kind,
            repair_cause(r.cause),
            zone=r.zone,
            customers=r.customers_affected,
        )
        for r in rows
    ]
    model, columns = await asyncio.to_thread(
        partial(fit_records, records, as_of_s=now_s, config=cfg, fit_config=fit_config)
    )
    for reject in columns.rejects[:20]:
        log.warning("etr history row skipped: %s", reject.reason)
    return await save_fitted_model(db, model, now_s, columns)


async def load_active_model(db: Database, version: str | None = None) -> LoadedModel:
    row = await store.load_model(db, version)
    if row is None:
        raise ModelUnavailable(
            "no ETR model stored"
            + (f" with version {version}" if version else "")
            + "; refit first"
        )
    try:
        return LoadedModel(row[0], SurvivalModel.from_json_dict(row[1]))
    except ValueError as exc:
        raise ModelUnavailable(f"stored ETR model {row[0]} is unusable: {exc}") from None


async def open_outages(
    db: Database, critical_customers: dict[int, int] | None = None
) -> list[OpenOutage]:
    """Open outages with the number of outages open when each started (its storm level)."""
    rows = await store.fetch_open_outages(db)
    if not rows:
        return []
    if critical_customers is None:
        critical_customers = await store.critical_customers(db, [r.outage_id for r in rows])
    since = min(r.started_at_s for r in rows)
    intervals = await store.fetch_outage_intervals(db, since)
    starts = np.array([s for s, _ in intervals], dtype=np.float64)
    ends = np.array([np.nan if e is None else e for _, e in intervals], dtype=np.float64)
    counts = concurrent_open_counts(np.array([r.started_at_s for r in rows]), starts, ends)
    critical = critical_customers or {}
    return [
        OpenOutage(
            outage_id=r.outage_id,
            zone=r.zone,
            device_kind=r.device_kind,
            # What the crew found beats what detection saw.
            cause=r.crew_cause or repair_cause(r.cause),
            started_at_s=r.started_at_s,
            customers_affected=r.customers_affected,
            critical_customers=critical.get(r.outage_id, 0),
            open_at_start=int(c),
            crew_assigned=r.crew_status in CREW_IN_WORK,
            seen_at_s=r.nested_at_s,
        )
        for r, c in zip(rows, counts, strict=True)
    ]


async def refresh_open_etrs(
    db: Database,
    clock: Clock,
    model: LoadedModel,
    *,
    config: EtrConfig | None = None,
    critical_customers: dict[int, int] | None = None,
    only: Collection[int] | None = None,
) -> EtrBatch:
    """Re-estimate every open outage now, expire passed overrides, store the ETRs.
    ``only``: store (and return) just these outages' ETRs, estimated with every open outage
    in the queue, and leave overrides to the next full round (a new outage's first ETR)."""
    now_s = clock.now_s()
    outages = await open_outages(db, critical_customers)
    if not outages:
        return EtrBatch([], [], [])
    found = await store.active_overrides(db, [o.outage_id for o in outages])
    overrides = {
        k: Override(v.override_id, v.etr_at_s, v.reason, v.set_by) for k, v in found.items()
    }
    batch = await asyncio.to_thread(
        estimate_etrs,
        model.model,
        model.version,
        outages,
        now_s,
        config=config,
        overrides=overrides,
    )
    if only is not None:
        wanted = set(only)
        batch = EtrBatch([e for e in batch.estimates if e.outage_id in wanted], batch.zones, [])
    for outage_id in batch.expired_overrides:
        await store.clear_override(db, outage_id, now_s, "passed")
        log.info("etr override of outage %d passed unrestored; model ETR takes over", outage_id)
    await store.record_etrs(
        db,
        [
            store.EtrRow(
                e.outage_id, now_s, e.p10_s, e.p50_s, e.p90_s, e.source, e.model_version, e.inputs
            )
            for e in batch.estimates
        ],
    )
    return batch


CREW_STATUSES = ("dispatched", "on_site", "released")
# A crew on its way or at work: the outage is in work, not waiting in the crew queue.
# ``released``: the crew left it (called to a bigger job) and it waits again.
CREW_IN_WORK = frozenset({"dispatched", "on_site"})
MAX_CAUSE_CHARS = 100


def check_crew_report(status: str, cause: str | None, set_by: str) -> str | None:
    """A crew report's status, cause and reporter checked (raises CrewStatusRefused);
    returns the cause as stored (stripped). The operator desk
    (``gridwatch.outages.commands``) then checks the outage is open and records it."""
    if status not in CREW_STATUSES:
        raise CrewStatusRefused(f"status must be one of {', '.join(CREW_STATUSES)}")
    if cause is not None:
        cause = cause.strip()
        if not cause or len(cause) > MAX_CAUSE_CHARS or not cause.isprintable():
            raise CrewStatusRefused(
                f"cause must be printable text of 1 to {MAX_CAUSE_CHARS} characters"
            )
    if not set_by.strip() or len(set_by) > 200 or not set_by.isprintable():
        raise CrewStatusRefused("set_by must name who reported it (printable, at most 200)")
    return cause


def next_refresh_delay_s(batch: EtrBatch, now_s: float, interval_s: float) -> float:
    """Service-clock seconds until the next regular refresh, or until the earliest ETR
    would pass (at least 1 s). Event time: a caller waits it with ``wall_wait_s``."""
    soonest = min((e.p50_s for e in batch.estimates), default=now_s + interval_s)
    return float(min(max(soonest - now_s, 1.0), interval_s))


async def run_etr_loop(
    db: Database,
    clock: Clock,
    stop: asyncio.Event,
    *,
    config: EtrConfig | None = None,
    refresh_every_s: float = 300.0,
    refit_every_s: float = 86400.0,
    lag_budget_event_s: float = 30.0,
) -> None:
    """Refit daily, refresh ETRs every few minutes and at once when an ETR passes. Every
    interval is service-clock (event) time: a replay at 600x refreshes 600 times as often
    in wall time, and says so (``LagWatch("etr-loop")``) where it cannot keep up."""
    model: LoadedModel | None = None
    last_fit_s = -float("inf")
    pacer = EventPacer(
        clock, "etr-loop", interval_event_s=refresh_every_s, budget_event_s=lag_budget_event_s
    )
    while not stop.is_set():
        now_s = pacer.begin()
        delay_s = refresh_every_s
        try:
            if model is None or now_s - last_fit_s >= refit_every_s:
                try:
                    model = await refit_model(db, clock, config=config)
                except HistoryRejected as exc:
                    log.warning("etr refit skipped: %s", exc)
                    if model is None:
                        model = await load_active_model(db)
                last_fit_s = now_s
            batch = await refresh_open_etrs(db, clock, model, config=config)
            delay_s = next_refresh_delay_s(batch, clock.now_s(), refresh_every_s)
        except ModelUnavailable as exc:
            log.warning("etr refresh waiting for a model: %s", exc)
        except Exception:  # the loop must outlive one bad round
            log.exception("etr round failed")
        # ``delay_s`` is event time from now (an ETR about to pass), never wall seconds.
        pacer.end(next_due_s=clock.now_s() + delay_s)
        await pacer.wait(stop)
