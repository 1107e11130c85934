"""``python -m simulators.detection_accuracy --scenario storm``: detection accuracy on a simulator
scenario, in-process (the contract decoder, the runner and the real PostgreSQL; pings
answered by the simulator; event time stepped in commits), scored by the simulator's scorer
beside its naive baselines. Uses ``GRIDWATCH_DATABASE_URL`` and a throw-away schema."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
import uuid
from pathlib import Path

from gridwatch.core.clock import ManualClock
from gridwatch.core.settings import load_settings
from gridwatch.detection import DetectionRunner
from gridwatch.store import Database, drop_schema, migrate
from gridwatch.topology import save_topology
from ingest import KnownIds
from simulators import Simulation, load_scenario, simulation_on_network
from simulators._history import generate_history, median_duration_s
from simulators._scoring import ScoreReport, load_recorded_db, score
from simulators.detection_replay import LoopbackPings, replay_through_runner


async def run_accuracy(
    scenario: str,
    *,
    seed: int | None,
    commit_s: float,
    database_url: str,
    truth: Path | None,
    network: str | None = None,
) -> ScoreReport:
    sim = (
        Simulation(load_scenario(scenario), seed=seed)
        if network is None
        else simulation_on_network(load_scenario(scenario), network, seed=seed)
    )
    topo = sim.grid.topology
    schema = f"gwacc_{uuid.uuid4().hex[:10]}"
    db = await Database.open(database_url, schema, create_schema=True, max_size=4)
    try:
        await migrate(db)
        await save_topology(db, topo)
        clock = ManualClock(sim.start_s)
        pings = LoopbackPings(sim.telemetry)
        runner = DetectionRunner(db, topo, clock=clock, ping_sender=pings)
        await runner.start()
        t0 = time.perf_counter()
        stats = await replay_through_runner(
            sim.messages(),
            runner,
            clock,
            known=KnownIds.from_topology(topo),
            commit_s=commit_s,
            pings=pings,
            until_s=sim.end_s + 3600.0,
        )
        wall_s = time.perf_counter() - t0
        gt = sim.truth()
        if truth is not None:
            gt.write(truth)
        recorded = await load_recorded_db(db, gt.start_s, gt.end_s + 3600.0)
        history = generate_history(sim.grid, seed=gt.seed + 1, end_s=gt.start_s)
        median = median_duration_s(history)
        report = score(
            gt,
            recorded,
            grid=sim.grid,
            published=sim.messages(),
            baseline_median_s=None if math.isnan(median) else median,
        )
        print(
            f"scenario {scenario} (seed {sim.seed}): {len(topo.meters)} meters,"
            f" {stats.messages} messages replayed in {wall_s:.1f} s wall"
            f" (commits of {commit_s:g} s event time); pings sent {pings.sent},"
            f" answered {pings.answered}; momentaries {runner.counts['momentaries']}"
        )
        return report
    finally:
        await drop_schema(db)
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.detection_accuracy")
    parser.add_argument("--scenario", default="storm")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--network", default=None, help="a published network (simulators: published names)"
    )
    parser.add_argument("--commit-s", type=float, default=1.0, help="event seconds per commit")
    parser.add_argument("--truth", type=Path, default=None, help="also write the ground truth")
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON")
    args = parser.parse_args(argv)
    settings = load_settings()
    report = asyncio.run(
        run_accuracy(
            args.scenario,
            seed=args.seed,
            commit_s=args.commit_s,
            database_url=settings.database_url.get_secret_value(),
            truth=args.truth,
            network=args.network,
        )
    )
    print(report.to_table())
    if args.json is not None:
        args.json.write_text(report.to_json() + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
