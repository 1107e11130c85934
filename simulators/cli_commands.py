"""Plain functions behind ``gridwatch simulate | replay | score | history`` (the CLI adds
argparse). They raise ``GridwatchError`` subclasses with one-line messages on bad input."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from simulators._errors import SimulatorError
from simulators._history import (
    HistoryParams,
    generate_history,
    median_duration_s,
    write_history_csv,
)
from simulators._messages import SimMessage, rfc3339_s
from simulators._publish import DEFAULT_PREFIX, PublishStats, publish_stream
from simulators._recording import Recording, write_recording
from simulators._scenario import Simulation, build_grid, load_scenario, simulation_on_network
from simulators._scoring import ScoreReport, load_recorded_db, load_recorded_json, score
from simulators._truth import GroundTruth


def _print_stats(stats: PublishStats, out: TextIO) -> None:
    out.write(
        f"published {stats.messages} messages ({stats.bytes / 1e6:.1f} MB) in {stats.wall_s:.1f} s"
        f" = {stats.achieved_speed:.0f}x real time, max lag {stats.max_lag_s:.2f} s,"
        f" pings answered {stats.pings_answered}\n"
    )


def cmd_simulate(
    scenario: str,
    *,
    mqtt_url: str | None,
    prefix: str = DEFAULT_PREFIX,
    speed: float = 60.0,
    seed: int | None = None,
    record: Path | None = None,
    truth: Path | None = Path("truth.json"),
    answer_pings: bool = True,
    linger_s: float = 0.0,
    network: str | None = None,
    topology_out: Path | None = None,
    out: TextIO = sys.stdout,
) -> PublishStats | None:
    """Run ``scenario``: write the ground truth to ``truth``, optionally record to ``record``
    (.jsonl.gz), and publish to ``mqtt_url`` (None: record only) at ``speed``."""
    sim = (
        Simulation(load_scenario(scenario), seed=seed)
        if network is None
        else simulation_on_network(load_scenario(scenario), network, seed=seed)
    )
    sc = sim.scenario
    out.write(
        f"scenario {sc.name} (seed {sim.seed}): {len(sim.grid.topology.meters)} meters,"
        f" {len(sim.world.outages)} true interruptions"
        f" ({sum(not o.momentary for o in sim.world.outages)} sustained);"
        f" event time starts at {rfc3339_s(sim.start_s)}"
        f" (serve it with: gridwatch serve --replay-from {rfc3339_s(sim.start_s)}"
        f" --replay-speed {speed:g})\n"
    )
    if topology_out is not None:
        from gridwatch.topology import write_topology_json

        write_topology_json(sim.grid.topology, topology_out)
        out.write(f"topology written to {topology_out} (load it: gridwatch topology import)\n")
    if record is not None:
        stats = write_recording(
            sim.messages(), record, start_s=sim.start_s, scenario=sc.name, seed=sim.seed
        )
        out.write(f"recorded {stats.messages} messages to {record}\n")
    result = None
    if mqtt_url is not None:
        result = asyncio.run(
            publish_stream(
                sim.messages(),
                mqtt_url,
                speed=speed,
                prefix=prefix,
                pings=sim.telemetry if answer_pings else None,
                window=(sim.start_s, sim.end_s),
                linger_s=linger_s,
            )
        )
        _print_stats(result, out)
    if truth is not None:
        # The telemetry generator's counts are complete once the stream has been consumed.
        if mqtt_url is None and record is None:
            for _ in sim.messages():
                pass
        sim.truth().write(truth)
        out.write(f"ground truth written to {truth}\n")
    return result


def cmd_replay(
    recording: Path,
    *,
    mqtt_url: str,
    prefix: str = DEFAULT_PREFIX,
    speed: float = 60.0,
    out: TextIO = sys.stdout,
) -> PublishStats:
    rec = Recording(recording)
    stats = asyncio.run(publish_stream(rec.messages(), mqtt_url, speed=speed, prefix=prefix))
    _print_stats(stats, out)
    return stats


def cmd_replay_db(
    database_url: str,
    schema: str,
    *,
    from_s: float,
    to_s: float,
    mqtt_url: str,
    prefix: str = DEFAULT_PREFIX,
    speed: float = 60.0,
    out: TextIO = sys.stdout,
) -> PublishStats:
    from gridwatch.store import Database
    from simulators._db_replay import messages_from_db

    async def run() -> PublishStats:
        db = await Database.open(database_url, schema, max_size=2)
        try:
            return await publish_stream(
                messages_from_db(db, from_s, to_s), mqtt_url, speed=speed, prefix=prefix
            )
        finally:
            await db.close()

    stats = asyncio.run(run())
    _print_stats(stats, out)
    return stats


def cmd_score(
    truth: Path,
    *,
    recorded_json: Path | None = None,
    database_url: str | None = None,
    schema: str = "gridwatch",
    recording: Path | None = None,
    json_out: Path | None = None,
    match_tolerance_s: float = 900.0,
    out: TextIO = sys.stdout,
) -> ScoreReport:
    """Score what gridwatch recorded (API JSON export, or the database) against ``truth``.
    ``recording`` (the published telemetry) enables the every-dark-meter baseline."""
    gt = GroundTruth.read(truth)
    if (recorded_json is None) == (database_url is None):
        raise SimulatorError("score: give exactly one of recorded_json or database_url")
    if recorded_json is not None:
        recorded = load_recorded_json(recorded_json)
    else:
        from gridwatch.store import Database

        async def fetch() -> object:
            db = await Database.open(str(database_url), schema, max_size=2)
            try:
                return await load_recorded_db(db, gt.start_s, gt.end_s)
            finally:
                await db.close()

        recorded = asyncio.run(fetch())  # type: ignore[assignment]
    grid = build_grid(gt.grid_spec, gt.seed)
    published: Iterator[SimMessage] | None = Recording(recording).messages() if recording else None
    history = generate_history(grid, seed=gt.seed + 1, end_s=gt.start_s)
    median = median_duration_s(history)
    report = score(
        gt,
        recorded,
        grid=grid,
        match_tolerance_s=match_tolerance_s,
        published=published,
        baseline_median_s=None if math.isnan(median) else median,
    )
    out.write(report.to_table() + "\n")
    if json_out is not None:
        json_out.write_text(report.to_json() + "\n", encoding="utf-8")
    return report


def cmd_history(
    output: Path,
    *,
    scenario: str = "storm",
    years: float = 3.0,
    seed: int = 1,
    out: TextIO = sys.stdout,
) -> int:
    """Write ``years`` of outage history for the scenario's grid to a CSV; returns rows."""
    sc = load_scenario(scenario)
    grid = build_grid(sc.grid, seed)
    rows = generate_history(
        grid, seed=seed, end_s=sc.start_s, params=HistoryParams(years=years), world=sc.world
    )
    n = write_history_csv(rows, output)
    out.write(f"wrote {n} outages over {years:g} years to {output}\n")
    return n
