"""ETRs through the service path, in-process: ``python -m simulators.etr_replay --scenario storm``.

The README's MQTT flow without the broker, so a 12-hour storm scores in seconds: the
scenario's topology in a throw-away schema, the model fitted from a simulated history CSV
exactly as ``gridwatch etr fit`` fits it (``fit_history_file``), the telemetry replayed
through the contract decoder and the detection runner (``replay_through_runner``), and after
every commit the service's own ETR rounds (``EtrRounds``, the schedule of ``etr_task``) and
the notifier bridge's ETR notices. Scored as ``gridwatch score`` scores (the database's
``etr_history``, first notice and +30 min, ``simulators._scoring.etr_scored``), with the
global-median baseline on the same outages. Uses ``GRIDWATCH_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import io
import math
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gridwatch.core.clock import ManualClock
from gridwatch.core.settings import load_settings
from gridwatch.detection import DetectionRunner
from gridwatch.etr import EtrRounds, EtrTaskOptions, fit_history_file, warm_up
from gridwatch.notices.outage_notices import NotifyBridge
from gridwatch.outages import OperatorDesk, SetCrewStatus
from gridwatch.store import Database, drop_schema, migrate
from gridwatch.store import etr as store
from gridwatch.topology import load_topology, save_topology
from ingest import KnownIds
from notifier import NotifyPolicy, load_templates
from simulators import Simulation, load_scenario, simulation_on_network
from simulators._history import generate_history, median_duration_s
from simulators._scoring import _match, etr_scored, load_recorded_db
from simulators._world import TrueOutage
from simulators.cli_commands import cmd_history
from simulators.detection_replay import LoopbackPings, replay_through_runner

LATER_S = 1800.0
# The service's ETR task and notice loop look at the clock every poll_event_s (1 s) of
# service-clock time, at any replay speed (issue 12; before, every wall second: a minute
# of event time at 60x).
POLL_S = EtrTaskOptions().poll_event_s
# Event seconds per detection commit. Ingest flushes every 0.2 wall s, 12 event s at 60x;
# 5 s keeps detection's timing within seconds and the replay five times faster than 1 s.
COMMIT_S = 5.0


@dataclass(frozen=True)
class OutageEtr:
    """One scored outage: truth, the first ETR the service published and what produced it."""

    seed: int
    truth_id: str
    device_kind: str
    true_start_s: float
    true_end_s: float
    recorded_start_s: float
    first_at_s: float
    p10_s: float
    p50_s: float
    p90_s: float
    later_p50_s: float
    baseline_err_s: float
    customers: int
    messages: int  # ETR messages its customers got (first notice + updates)
    source: str
    inputs: dict[str, Any]
    # When the fault could first be seen (a hidden fault: when the line above came back);
    # NaN where the truth does not say.
    true_found_s: float = math.nan


@dataclass
class ServiceEtrReport:
    scenario: str
    seeds: list[int]
    outages: list[OutageEtr] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        o = self.outages
        if not o:
            return {"scenario": self.scenario, "seeds": len(self.seeds), "outages": 0}
        first = np.array([abs(x.p50_s - x.true_end_s) for x in o]) / 60.0
        later = np.array([abs(x.later_p50_s - x.true_end_s) for x in o]) / 60.0
        base = np.array([x.baseline_err_s for x in o]) / 60.0
        cov = np.mean([x.p10_s <= x.true_end_s <= x.p90_s for x in o])
        msgs = np.repeat([x.messages for x in o], [max(x.customers, 1) for x in o])
        return {
            "scenario": self.scenario,
            "seeds": len(self.seeds),
            "outages": len(o),
            "mae_first_min": round(float(first.mean()), 1),
            "mae_30min_min": round(float(later.mean()), 1),
            "baseline_mae_min": round(float(base.mean()), 1),
            "reduction_first_pct": round(100.0 * (1 - first.mean() / base.mean()), 1),
            "reduction_30min_pct": round(100.0 * (1 - later.mean() / base.mean()), 1),
            "coverage_first": round(float(cov), 3),
            "median_messages_per_customer": float(np.median(msgs)),
            "first_etr_delay_s_median": round(
                float(np.median([x.first_at_s - x.recorded_start_s for x in o])), 1
            ),
            "sources_first": {
                s: sum(x.source == s for x in o) for s in sorted({x.source for x in o})
            },
        }


def crew_dispatch_s(grid: Any, outages: Sequence[TrueOutage], crews: int) -> np.ndarray:
    """When a crew was assigned to each outage: the simulator's dispatch rule replayed (a
    free crew at the request, else the next crew to finish takes the waiting outage with
    the most meters below it); the offline harness (benchmarks/etr_accuracy) uses it too.
    A utility's outage management system knows this: it dispatches the crews."""
    topo = grid.topology
    subtree = np.bincount(topo.meters.device, minlength=len(topo.devices)).astype(np.int64)
    for lv in reversed(grid.levels):
        par = topo.devices.parent[lv]
        has = par >= 0
        np.add.at(subtree, par[has], subtree[lv[has]])
    events = sorted(
        [(o.requested_s, 0, i) for i, o in enumerate(outages)]
        + [(o.end_s, 1, i) for i, o in enumerate(outages)]
    )
    out = np.full(len(outages), np.inf)
    free = crews
    queue: list[tuple[int, float, int]] = []
    for t, kind, i in events:
        if kind == 0:
            if free > 0:
                free -= 1
                out[i] = t
            else:
                heapq.heappush(queue, (-int(subtree[outages[i].device]), t, i))
        elif queue:
            _, _, j = heapq.heappop(queue)
            out[j] = t
        else:
            free += 1
    return out


class CrewReports:
    """The crews' reports a utility's OMS would have, posted through the operator desk
    (``OperatorDesk.set_crew_status``, what ``PUT /outages/{id}/crew`` calls): dispatched
    when a crew is assigned, on site with the cause when it arrives (the world's arrival
    time)."""

    def __init__(self, sim: Simulation) -> None:
        crewed = [o for o in sim.world.outages if not o.momentary and not o.planned]
        self._outages = crewed
        self._dispatch_s = crew_dispatch_s(sim.grid, crewed, sim.scenario.world.crew.crews)
        self._told: dict[int, str] = {}
        self.posted = 0

    def _truth_of(self, device_id: str, started_s: float, now_s: float) -> int | None:
        """The true outage of this device open now (a device has one open at a time). The
        recorded start is not matched to the true one: a nested outage, seen only when the
        device above it is restored, is recorded from when its meters went dark, which may
        be hours before its own fault; its crew may be on site by then."""
        for i, o in enumerate(self._outages):
            if o.device_id == device_id and started_s < o.end_s and o.start_s <= now_s < o.end_s:
                return i
        return None

    async def post(self, db: Database, clock: ManualClock) -> None:
        now_s = clock.now_s()
        desk = OperatorDesk(db, clock)
        for r in await store.fetch_open_outages(db):
            i = self._truth_of(r.device_id, r.started_at_s, now_s)
            if i is None:
                continue
            o = self._outages[i]
            status = (
                "on_site"
                if o.arrived_s <= now_s
                else "dispatched"
                if self._dispatch_s[i] <= now_s
                else None
            )
            if status is None or self._told.get(r.outage_id) == status:
                continue
            cause = o.cause if status == "on_site" else None
            await desk.set_crew_status(SetCrewStatus(r.outage_id, status, "crew", cause))
            self._told[r.outage_id] = status
            self.posted += 1


def _class_part(inputs: dict[str, Any], key: str) -> str:
    cls = inputs.get("class")
    return str(cls.get(key, "?")) if isinstance(cls, dict) else "?"


def _fit_history_path(scenario: str, years: float, directory: Path) -> Path:
    path = directory / f"{scenario}-history.csv"
    if not path.exists():  # the CLI's ``gridwatch history`` (its default seed), once per run
        cmd_history(path, scenario=scenario, years=years, out=io.StringIO())
    return path


def _simulation(scenario: str, seed: int, network: str | None) -> Simulation:
    """The scenario on its own grid, or on a published ``network`` (as ``gridwatch
    simulate --network`` runs it)."""
    if network is None:
        return Simulation(load_scenario(scenario), seed=seed)
    return simulation_on_network(load_scenario(scenario), network, seed=seed)


async def replay_seed(
    scenario: str,
    seed: int,
    *,
    database_url: str,
    history_csv: Path | None,
    options: EtrTaskOptions,
    commit_s: float = COMMIT_S,
    poll_s: float = POLL_S,
    crew_reports: bool = True,
    network: str | None = None,
) -> list[OutageEtr]:
    """One seed through the service path. ``history_csv`` None: no history is fitted, so
    the ETR task starts on the bundled prior, as ``gridwatch serve`` does on a new
    database (the grid sweep's service runs)."""
    sim = _simulation(scenario, seed, network)
    topo = sim.grid.topology
    db = await Database.open(
        database_url, f"etrsvc_{uuid.uuid4().hex[:10]}", create_schema=True, max_size=4
    )
    try:
        await migrate(db)
        await save_topology(db, topo)
        # The service's runner works on the topology as stored (``gridwatch serve`` loads it),
        # which differs from the simulator's in-memory one (owners without names, for one).
        topo = await load_topology(db, owners=True)
        if history_csv is not None:
            # ``gridwatch etr fit``: the model is fitted before the service starts.
            await fit_history_file(db, history_csv, as_of_s=sim.start_s, config=options.etr)
        clock = ManualClock(sim.start_s)
        pings = LoopbackPings(sim.telemetry)
        bridge = NotifyBridge(load_templates(None), NotifyPolicy(etr_min_change_s=0.0))
        runner = DetectionRunner(
            db, topo, clock=clock, ping_sender=pings, on_persisted=bridge.on_persisted
        )
        await runner.start()
        rounds = EtrRounds(db, clock, options)
        crews = CrewReports(sim) if crew_reports else None
        next_poll_s = -math.inf

        async def after_commit(now_s: float) -> None:
            nonlocal next_poll_s
            if now_s < next_poll_s:
                return
            next_poll_s = now_s + poll_s
            if crews is not None:
                await crews.post(db, clock)
            await rounds.tick()
            await bridge.etr_round(db, now_s)

        await replay_through_runner(
            sim.messages(),
            runner,
            clock,
            known=KnownIds.from_topology(topo),
            commit_s=commit_s,
            pings=pings,
            until_s=sim.end_s + 3600.0,
            after_commit=after_commit,
        )
        gt = sim.truth()
        recorded = await load_recorded_db(db, gt.start_s, gt.end_s)
        # ``gridwatch score``'s baseline: the median of a 3-year history (seed + 1).
        median_s = median_duration_s(generate_history(sim.grid, seed=gt.seed + 1, end_s=gt.start_s))
        rec = [r for r in recorded.outages if r.state != "cancelled"]
        found_s = {o.outage_id: o.found_s for o in sim.world.outages}
        out: list[OutageEtr] = []
        for e in etr_scored(_match(gt.sustained, rec, 900.0)):
            oid = int(e.recorded.outage_id)
            hist = await store.etr_history(db, oid, limit=100_000)
            first_row = min(hist, key=lambda h: h.computed_at_s)
            notice = await store.get_notice(db, oid)
            out.append(
                OutageEtr(
                    seed=seed,
                    truth_id=str(e.truth.outage_id),
                    device_kind=_class_part(first_row.inputs, "device_kind"),
                    true_start_s=e.truth.start_s,
                    true_end_s=e.truth.end_s,
                    recorded_start_s=e.recorded.started_at_s,
                    first_at_s=e.first.at_s,
                    p10_s=float(e.first.p10_s or math.nan),
                    p50_s=e.first.p50_s,
                    p90_s=float(e.first.p90_s or math.nan),
                    later_p50_s=e.later.p50_s,
                    baseline_err_s=abs(e.truth.start_s + median_s - e.truth.end_s),
                    customers=len(e.truth.customer_ids),
                    messages=0 if notice is None else notice.updates_sent + 1,
                    source=first_row.source,
                    inputs=first_row.inputs,
                    true_found_s=float(found_s.get(e.truth.outage_id, math.nan)),
                )
            )
        return out
    finally:
        await drop_schema(db)
        await db.close()


async def run(
    scenario: str,
    seeds: Sequence[int],
    *,
    database_url: str,
    years: float,
    options: EtrTaskOptions,
    poll_s: float = POLL_S,
    crew_reports: bool = True,
    commit_s: float = COMMIT_S,
    verbose: bool = False,
    network: str | None = None,
    prior: bool = False,
) -> ServiceEtrReport:
    await asyncio.to_thread(warm_up)
    report = ServiceEtrReport(scenario, list(seeds))
    with tempfile.TemporaryDirectory() as tmp:
        csv = None if prior else _fit_history_path(scenario, years, Path(tmp))
        for seed in seeds:
            got = await replay_seed(
                scenario,
                seed,
                database_url=database_url,
                history_csv=csv,
                options=options,
                poll_s=poll_s,
                crew_reports=crew_reports,
                commit_s=commit_s,
                network=network,
            )
            report.outages += got
            if verbose:
                print(f"seed {seed}: {len(got)} outages scored", file=sys.stderr)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.etr_replay", description=__doc__)
    ap.add_argument("--scenario", default="storm")
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: scenario's)")
    ap.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds")
    ap.add_argument("--years", type=float, default=30.0, help="history length to fit on")
    ap.add_argument(
        "--poll-s",
        type=float,
        default=POLL_S,
        help="event seconds between the tasks' looks at the clock (the service's poll_event_s)",
    )
    ap.add_argument("--commit-s", type=float, default=COMMIT_S, help="event s per commit")
    ap.add_argument(
        "--no-crew-reports",
        action="store_true",
        help="post no crew status (dispatched / on site with cause) to the service",
    )
    ap.add_argument(
        "--network",
        default=None,
        help="run the scenario on this published grid (as `gridwatch simulate --network`)",
    )
    ap.add_argument(
        "--prior",
        action="store_true",
        help="fit no history: the service starts on the bundled prior (a new utility, and"
        " the grid sweep's service runs)",
    )
    ap.add_argument("--json", type=Path, default=None, help="per-outage rows + summary")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an EtrConfig number or flag (development runs), e.g. repair_from_sighting=0",
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    settings = load_settings()
    options = EtrTaskOptions.from_settings(settings)
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key.strip() not in {f.name for f in dataclasses.fields(options.etr)}:
            ap.error(f"--set: EtrConfig has no field {key.strip()!r}")
        try:
            overrides[key.strip()] = float(value)
        except ValueError:
            ap.error(f"--set {key.strip()}: not a number: {value!r}")
    options = dataclasses.replace(options, etr=dataclasses.replace(options.etr, **overrides))
    first = load_scenario(args.scenario).seed if args.seed is None else args.seed
    report = asyncio.run(
        run(
            args.scenario,
            range(first, first + args.seeds),
            database_url=settings.database_url.get_secret_value(),
            years=args.years,
            options=options,
            poll_s=args.poll_s,
            crew_reports=not args.no_crew_reports,
            commit_s=args.commit_s,
            verbose=args.verbose,
            network=args.network,
            prior=args.prior,
        )
    )
    summary = report.summary()
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(
                {"summary": summary, "outages": [asdict(o) for o in report.outages]},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
