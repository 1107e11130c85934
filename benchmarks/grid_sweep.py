"""Detection and ETR accuracy on every published grid (issue 12): grid x scenario x mode.

    python -m benchmarks.grid_sweep [--grids a,b] [--scenarios storm,nested] [--seeds 3]
        [--seed-set eval|dev] [--modes inprocess,service] [--speeds 600,60] [--until-s N]
        [--json-out out.json]

Grids: every distinct published grid (``simulators._grid_import``: each pandapower net, and
each SimBench grid in its ``--0-sw`` variant; the load cases ``--1``/``--2`` share the tree)
plus ``synthetic``, the scenario's own generated feeder.

Scenarios on a foreign grid (``scenario_on_grid``): ``storm`` and ``quiet_day`` run through
``simulators.simulation_on_network`` (random faults, AMI behaviour, the storm over every
zone; the bundled grid's scripted faults are dropped). ``nested``, ``breaker_trip`` and
``comm_blackout`` are made of scripted faults or blackouts naming the bundled grid's devices,
so on a foreign grid they are rewritten onto its devices: the feeder breaker with the most
meters locks out (``breaker_trip``, ``nested``), a transformer (else a fuse) under it that
feeds a strict subset of its meters fails while it is out and stays out after it is back
(``nested``), and DCUs holding at most half the meters lose backhaul (``comm_blackout``).
A grid that has no such device gets no row for that scenario (listed as skipped).

Modes:

- ``inprocess``: ``simulators.detection_accuracy.run_accuracy`` (contract decoder, runner,
  real PostgreSQL, pings answered by the simulator, ``--commit-s`` event seconds a commit,
  1 s by default; a larger step is faster and can add up to one step to a latency). No ETR
  task runs there, so its ETR columns are n/a.
- ``service`` at ``--speeds``: the path a new user takes. A fresh PostgreSQL schema,
  ``gridwatch migrate``, ``gridwatch simulate --no-publish --topology-out``, ``gridwatch
  topology import``, ``gridwatch serve --replay-from START --replay-speed S`` as a
  subprocess, ``gridwatch simulate --speed S`` publishing over MQTT, ``gridwatch score
  --json-out``. Each run has its own schema, topic prefix, client id and API port
  (``GRIDWATCH_*`` environment), so runs never see each other. No ETR history is fitted:
  the service starts on the bundled prior. ``GRIDWATCH_ETR_SHARED_CREWS`` is the scenario's
  crew count (the simulated world has one crew pool serving every zone).

``--until-s N`` shortens the scenario to its first N seconds of event time (a scenario file
with ``duration_s = N``; the world, the truth and the score all end there; outages still
open at the end are scored as such by ``simulators.score``).

Seeds: evaluation seeds are ``EVAL_OFFSET + k`` (>= 100000; ``benchmarks.etr_accuracy``),
development seeds ``1 + k``; the run prints which set it used.

Targets (issue 4 / 5): precision >= 0.95, recall >= 0.95, right device >= 0.90, latency P95
<= declaration delay + 60 s, no false "restored", ETR P10-P90 coverage 0.75-0.85, ETR P50
error below the global-median baseline. Every row that misses one is listed with the seeds
and the missed / false outage ids.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from benchmarks.etr_accuracy import EVAL_OFFSET

DECLARATION_DELAY_S: Final = 45.0  # gridwatch.outages EngineConfig default
LATENCY_SLACK_S: Final = 60.0
TARGETS: Final = {
    "precision": 0.95,
    "recall": 0.95,
    "right_device": 0.90,
    "latency_p95_s": DECLARATION_DELAY_S + LATENCY_SLACK_S,
    "coverage_lo": 0.75,
    "coverage_hi": 0.85,
}
SCENARIOS: Final = ("storm", "nested", "breaker_trip", "quiet_day", "comm_blackout")
SYNTHETIC: Final = "synthetic"
# Wall seconds the service gets after the publisher's last message before it is stopped:
# at least this, and at least 2 declaration delays of event time (the last confirmations).
DRAIN_MIN_S: Final = 5.0
SERVE_READY_TIMEOUT_S: Final = 120.0


# ---------------------------------------------------------------- grids and scenarios


def default_grids() -> list[str]:
    """One name per distinct grid: every pandapower net, each SimBench grid's ``--0-sw``."""
    from simulators._grid_import import PANDAPOWER_NETWORKS, SIMBENCH_GRIDS

    return [SYNTHETIC, *sorted(PANDAPOWER_NETWORKS), *(f"{g}--0-sw" for g in SIMBENCH_GRIDS)]


@dataclass(frozen=True)
class RunSpec:
    """What ``gridwatch simulate`` / ``run_accuracy`` get: a scenario (name or file) and
    the network flag (None: the grid is in the scenario)."""

    scenario: str
    network: str | None
    crews: int
    note: str = ""


def _bundled(name: str) -> dict[str, Any]:
    from importlib import resources

    text = (resources.files("simulators") / "scenarios" / f"{name}.json").read_bytes()
    obj = orjson.loads(text)
    assert isinstance(obj, dict)
    return obj


def _crews(obj: dict[str, Any]) -> int:
    from simulators._scenario import scenario_from_dict

    return int(scenario_from_dict(obj, name="x").world.crew.crews)


def scenario_on_grid(
    scenario: str, grid: str, workdir: Path, *, until_s: float | None = None
) -> RunSpec | None:
    """How to run ``scenario`` on ``grid`` (None: the grid has no device the scenario
    needs). Writes a scenario file into ``workdir`` when the bundled one must change."""
    obj = _bundled(scenario)
    if until_s is not None:
        obj["duration_s"] = min(float(obj["duration_s"]), until_s)
    crews = _crews(obj)
    tag = f"{scenario}_{grid}".replace("-", "_") + ("" if until_s is None else f"_{until_s:.0f}s")

    def write(o: dict[str, Any]) -> str:
        path = workdir / f"{tag}.json"
        path.write_bytes(orjson.dumps(o))
        return str(path)

    if grid == SYNTHETIC:
        return RunSpec(write(obj) if until_s is not None else scenario, None, crews)
    if scenario in ("storm", "quiet_day"):
        return RunSpec(write(obj) if until_s is not None else scenario, grid, crews)
    from simulators._grid_import import load_published_network

    sim_grid = load_published_network(grid, seed=0)
    obj["grid"] = {"network": grid}
    world = dict(obj.get("world", {}))
    if scenario == "comm_blackout":
        dcus = _blackout_dcus(sim_grid)
        ami = dict(obj.get("ami", {}))
        ami["blackouts"] = [{**b, "dcus": dcus} for b in ami.get("blackouts", [])]
        obj["ami"] = ami
        return RunSpec(write(obj), None, crews, note=f"blackout of {', '.join(dcus)}")
    picked = _breaker_and_nested(sim_grid)
    if picked is None:
        return None
    breaker, inner = picked
    faults = [dict(f) for f in world.get("faults", [])]
    faults[0]["device_id"] = breaker
    if scenario == "nested":
        if inner is None:
            return None
        faults[1]["device_id"] = inner
    world["faults"] = faults
    obj["world"] = world
    note = f"breaker {breaker}" + (f", nested {inner}" if scenario == "nested" else "")
    return RunSpec(write(obj), None, crews, note=note)


def _breaker_and_nested(grid: Any) -> tuple[str, str | None] | None:
    """The breaker feeding the most meters, and a transformer (else a fuse) under it that
    feeds a strict subset of them (the largest such)."""
    from gridwatch.topology import KIND_CODE

    topo = grid.topology
    dev = topo.devices
    breakers = np.flatnonzero(dev.kind == KIND_CODE["breaker"])
    if len(breakers) == 0:
        return None
    sizes = [len(grid.subtree_meters(int(b))) for b in breakers]
    b = int(breakers[int(np.argmax(sizes))])
    total = max(sizes)
    if total == 0:
        return None
    for kind in ("transformer", "fuse"):
        best, best_n = -1, 0
        for d in np.flatnonzero(dev.kind == KIND_CODE[kind]).tolist():
            up = int(dev.parent[d])
            while up >= 0 and up != b:
                up = int(dev.parent[up])
            n = len(grid.subtree_meters(d))
            if up == b and 0 < n < total and n > best_n:
                best, best_n = d, n
        if best >= 0:
            return str(dev.ids[b]), str(dev.ids[best])
    return str(dev.ids[b]), None


def _blackout_dcus(grid: Any) -> list[str]:
    """DCUs in id order while they hold at most half the meters (at least one DCU)."""
    counts = np.bincount(grid.meter_dcu, minlength=len(grid.dcu_ids))
    half = len(grid.meter_dcu) / 2
    out: list[str] = []
    held = 0
    for i in np.argsort(grid.dcu_ids.astype(str)).tolist():
        if counts[i] == 0:
            continue
        if out and held + counts[i] > half:
            break
        out.append(str(grid.dcu_ids[i]))
        held += int(counts[i])
        if len(out) == 2:  # the bundled scenario blacks out 2 DCUs
            break
    return out


# ---------------------------------------------------------------- one run


@dataclass
class RunResult:
    grid: str
    scenario: str
    mode: str  # "inprocess" | "service 600x" ...
    seed: int
    report: dict[str, Any] | None  # ScoreReport.to_json() as a dict
    wall_s: float
    error: str = ""
    note: str = ""


async def _run_inprocess(
    spec: RunSpec, seed: int, database_url: str, commit_s: float
) -> dict[str, Any]:
    from simulators.detection_accuracy import run_accuracy

    report = await run_accuracy(
        spec.scenario,
        seed=seed,
        commit_s=commit_s,
        database_url=database_url,
        truth=None,
        network=spec.network,
    )
    out = json.loads(report.to_json())
    assert isinstance(out, dict)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gridwatch() -> list[str]:
    exe = Path(sys.executable).with_name("gridwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gridwatch"]


def _check(cmd: list[str], env: dict[str, str], log: Path) -> str:
    with log.open("ab") as fh:
        fh.write(f"$ {' '.join(cmd)}\n".encode())
        done = subprocess.run(cmd, env=env, capture_output=True, check=False)
        fh.write(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-800:]
        raise RuntimeError(f"{cmd[1]} exited {done.returncode}: {tail}")
    return done.stdout.decode(errors="replace")


def _wait_ready(port: int, serve: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise RuntimeError(f"gridwatch serve exited {serve.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"gridwatch serve not ready after {SERVE_READY_TIMEOUT_S:.0f} s")


def run_service(
    spec: RunSpec,
    seed: int,
    speed: float,
    database_url: str,
    workdir: Path,
    *,
    keep_schema: bool = False,
) -> dict[str, Any]:
    """One scenario through the real service (see the module docstring); the score.
    ``keep_schema``: leave the run's schema (named in the run's ``commands.log``) for a
    look at its outages and timeline afterwards."""
    run_id = uuid.uuid4().hex[:10]
    schema = f"gwsweep_{run_id}"
    port = _free_port()
    env = {
        **os.environ,
        "GRIDWATCH_DATABASE_URL": database_url,
        "GRIDWATCH_DATABASE_SCHEMA": schema,
        "GRIDWATCH_MQTT_PREFIX": f"gwsweep/{run_id}",
        "GRIDWATCH_MQTT_CLIENT_ID": f"gwsweep-{run_id}",
        # a unique client id would otherwise leave a week-long session on the broker
        "GRIDWATCH_MQTT_SESSION_EXPIRY_S": "300",
        "GRIDWATCH_API_PORT": str(port),
        "GRIDWATCH_ETR_SHARED_CREWS": str(spec.crews),
        "GRIDWATCH_LOG_FORMAT": "json",
        "GRIDWATCH_LOG_LEVEL": "WARNING",
    }
    run_dir = workdir / run_id
    run_dir.mkdir()
    log = run_dir / "commands.log"
    truth, topo, score_json = run_dir / "truth.json", run_dir / "grid.json", run_dir / "score.json"
    gw = _gridwatch()
    sim = [*gw, "simulate", "--scenario", spec.scenario, "--seed", str(seed), "--truth", str(truth)]
    if spec.network is not None:
        sim += ["--network", spec.network]
    try:
        _check([*gw, "migrate"], env, log)
        _check([*sim, "--no-publish", "--topology-out", str(topo)], env, log)
        _check([*gw, "topology", "import", str(topo)], env, log)
        start_s = float(json.loads(truth.read_bytes())["start_s"])
        serve_log = (run_dir / "serve.log").open("wb")
        serve = subprocess.Popen(
            [*gw, "serve", "--replay-from", f"{start_s:.0f}", "--replay-speed", f"{speed:g}"],
            env=env,
            stdout=serve_log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(port, serve)
            _check([*sim, "--speed", f"{speed:g}"], env, log)
            # the last messages' confirmations: 2 declaration delays of event time
            time.sleep(max(DRAIN_MIN_S, 2 * DECLARATION_DELAY_S / speed))
        finally:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
            serve_log.close()
        _check([*gw, "score", "--truth", str(truth), "--json-out", str(score_json)], env, log)
        out = json.loads(score_json.read_bytes())
        assert isinstance(out, dict)
        # The service warns when a loop falls behind its clock (LagWatch): at high replay
        # speeds on a loaded machine its decisions may then differ from real time.
        text = (run_dir / "serve.log").read_text(errors="replace")
        out["service_lag_warnings"] = text.count("of service-clock time behind")
        return out
    finally:
        if keep_schema:
            with log.open("a") as f:
                f.write(f"# schema kept: {schema}\n")
        else:
            _drop_schema(database_url, schema)


def _drop_schema(database_url: str, schema: str) -> None:
    from gridwatch.store import Database, drop_schema

    async def drop() -> None:
        db = await Database.open(database_url, schema, max_size=1)
        try:
            await drop_schema(db)
        finally:
            await db.close()

    asyncio.run(drop())


# ---------------------------------------------------------------- aggregation and table


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


@dataclass
class Row:
    """One grid x scenario x mode, pooled over its seeds (outages pooled, not averaged)."""

    grid: str
    scenario: str
    mode: str
    seeds: list[int] = field(default_factory=list)
    recorded: int = 0
    matched: int = 0
    observable: int = 0
    matched_observable: int = 0
    unobservable: int = 0
    right_device: int = 0
    detected_any_device: int = 0
    latencies_s: list[float] = field(default_factory=list)
    etr_outages: int = 0
    etr_err_sum_min: float = 0.0
    base_err_sum_min: float = 0.0
    base_outages: int = 0
    covered_sum: float = 0.0
    nested_customers: int = 0
    false_restored: int = 0
    momentaries_declared: int = 0
    lag_warnings: int = 0  # service mode: loops that fell behind the replay clock
    errors: list[str] = field(default_factory=list)
    missed: dict[int, list[str]] = field(default_factory=dict)
    false: dict[int, list[str]] = field(default_factory=dict)

    def add(self, seed: int, rep: dict[str, Any]) -> None:
        self.seeds.append(seed)
        self.recorded += int(rep["recorded_outages"])
        self.matched += int(rep["matched"])
        unobs = int(rep.get("unobservable_outages", 0))
        self.unobservable += unobs
        self.observable += int(rep["true_outages"]) - unobs
        self.matched_observable += int(rep["matched"]) - int(rep.get("unobservable_matched", 0))
        self.right_device += int(rep.get("right_device", 0))
        self.detected_any_device += int(rep.get("detected_any_device", 0))
        self.latencies_s += [float(x) for x in rep.get("detection_latency_s", [])]
        n = int(rep.get("etr_outages", 0))
        if n and not math.isnan(_num(rep.get("etr_mae_first_min"))):
            self.etr_outages += n
            self.etr_err_sum_min += n * _num(rep["etr_mae_first_min"])
            cov = _num(rep.get("etr_p10_p90_coverage"))
            # weighted by scored outages: the scorer covers those with a P10 and a P90
            self.covered_sum += 0.0 if math.isnan(cov) else n * cov
        base = (rep.get("baselines") or {}).get("global_median_etr") or {}
        bn = int(base.get("etr_scored_outages", 0) or 0)
        if bn and not math.isnan(_num(base.get("etr_mae_scored_min"))):
            self.base_outages += bn
            self.base_err_sum_min += bn * _num(base["etr_mae_scored_min"])
        self.nested_customers += int(rep.get("nested_customers", 0))
        self.false_restored += int(rep.get("false_restored_notices", 0))
        self.momentaries_declared += int(rep.get("momentaries_declared", 0))
        self.lag_warnings += int(rep.get("service_lag_warnings", 0))
        if rep.get("missed_ids"):
            self.missed[seed] = list(rep["missed_ids"])
        if rep.get("false_ids"):
            self.false[seed] = list(rep["false_ids"])

    @property
    def precision(self) -> float:
        return self.matched / self.recorded if self.recorded else math.nan

    @property
    def recall(self) -> float:
        return self.matched_observable / self.observable if self.observable else math.nan

    @property
    def right_device_share(self) -> float:
        return (
            self.right_device / self.detected_any_device if self.detected_any_device else math.nan
        )

    def latency_s(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else math.nan

    @property
    def etr_p50_err_min(self) -> float:
        return self.etr_err_sum_min / self.etr_outages if self.etr_outages else math.nan

    @property
    def baseline_err_min(self) -> float:
        return self.base_err_sum_min / self.base_outages if self.base_outages else math.nan

    @property
    def coverage(self) -> float:
        return self.covered_sum / self.etr_outages if self.etr_outages else math.nan

    def failures(self) -> list[str]:
        """Each target this row misses, in words (n/a figures are not failures)."""
        out = []
        if self.errors:
            out.append(f"{len(self.errors)} run(s) failed: " + "; ".join(self.errors))
        if self.precision < TARGETS["precision"]:
            out.append(f"precision {self.precision:.2f} ({self.matched} of {self.recorded})")
        if self.recall < TARGETS["recall"]:
            out.append(f"recall {self.recall:.2f} ({self.matched_observable} of {self.observable})")
        if self.right_device_share < TARGETS["right_device"]:
            out.append(
                f"right device {self.right_device_share:.2f}"
                f" ({self.right_device} of {self.detected_any_device})"
            )
        if self.latency_s(95) > TARGETS["latency_p95_s"]:
            out.append(f"latency P95 {self.latency_s(95):.0f} s > {TARGETS['latency_p95_s']:.0f} s")
        if self.false_restored:
            out.append(f"false restored {self.false_restored} of {self.nested_customers}")
        cov = self.coverage
        if not math.isnan(cov) and not TARGETS["coverage_lo"] <= cov <= TARGETS["coverage_hi"]:
            out.append(f"ETR coverage {cov:.2f} outside 0.75-0.85")
        if self.etr_p50_err_min >= self.baseline_err_min:
            out.append(
                f"ETR P50 error {self.etr_p50_err_min:.0f} min not below the baseline's"
                f" {self.baseline_err_min:.0f} min"
            )
        return out


def aggregate(results: Iterable[RunResult]) -> list[Row]:
    """Pool runs by (grid, scenario, mode), in first-seen order."""
    rows: dict[tuple[str, str, str], Row] = {}
    for r in results:
        row = rows.setdefault((r.grid, r.scenario, r.mode), Row(r.grid, r.scenario, r.mode))
        if r.report is None:
            row.errors.append(f"seed {r.seed}: {r.error}")
        else:
            row.add(r.seed, r.report)
    return list(rows.values())


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


HEADER: Final = (
    "| grid | scenario | mode | seeds | true obs. / rec. / matched | precision | recall"
    " | right device | latency P50 / P95 (s) | ETR P50 err / baseline (min) | P10-P90 cov."
    " | false restored |"
)


def to_table(rows: Sequence[Row]) -> str:
    """One markdown table; a failed target is in bold."""
    lines = [HEADER, "|" + "---|" * 12]
    for row in rows:
        fails = " ".join(row.failures())

        def mark(text: str, key: str, fails: str = fails) -> str:
            return f"**{text}**" if key in fails else text

        lat = f"{_f(row.latency_s(50), 0)} / {_f(row.latency_s(95), 0)}"
        etr = f"{_f(row.etr_p50_err_min, 0)} / {_f(row.baseline_err_min, 0)}"
        seeds = ",".join(str(s) for s in row.seeds) or "-"
        if row.errors:
            seeds += f" ({len(row.errors)} failed)"
        lines.append(
            f"| {row.grid} | {row.scenario} | {row.mode} | {seeds}"
            f" | {row.observable} / {row.recorded} / {row.matched}"
            f" | {mark(_f(row.precision), 'precision')} | {mark(_f(row.recall), 'recall')}"
            f" | {mark(_f(row.right_device_share), 'right device')}"
            f" | {mark(lat, 'latency')} | {mark(etr, 'ETR P50')}"
            f" | {mark(_f(row.coverage), 'coverage')}"
            f" | {mark(f'{row.false_restored} of {row.nested_customers}', 'false restored')} |"
        )
    return "\n".join(lines)


def failure_list(rows: Sequence[Row]) -> str:
    """Every row missing a target: what, and per seed the missed and false outage ids."""
    out = []
    for row in rows:
        fails = row.failures()
        if not fails:
            continue
        lag = f" [service lag warnings: {row.lag_warnings}]" if row.lag_warnings else ""
        out.append(f"- {row.grid} / {row.scenario} / {row.mode}: " + "; ".join(fails) + lag)
        for seed in sorted(set(row.missed) | set(row.false)):
            missed = ", ".join(row.missed.get(seed, [])) or "none"
            false = ", ".join(row.false.get(seed, [])) or "none"
            out.append(f"  - seed {seed}: missed {missed}; false {false}")
    return "\n".join(out) if out else "(none)"


# ---------------------------------------------------------------- main


def _seeds(n: int, seed_set: str) -> list[int]:
    base = EVAL_OFFSET if seed_set == "eval" else 1
    return [base + k for k in range(n)]


def _csv(text: str) -> list[str]:
    return [x for x in (t.strip() for t in text.split(",")) if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grid_sweep", description=__doc__)
    parser.add_argument("--grids", default="", help="comma list (default: every distinct grid)")
    parser.add_argument("--scenarios", default="storm,nested", help=f"of {', '.join(SCENARIOS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per grid and scenario")
    parser.add_argument("--seed-list", default="", help="explicit seeds (comma list)")
    parser.add_argument("--seed-set", choices=["eval", "dev"], default="eval")
    parser.add_argument("--modes", default="inprocess", help="inprocess,service")
    parser.add_argument("--speeds", default="600", help="service replay speeds (comma list)")
    parser.add_argument(
        "--commit-s", type=float, default=1.0, help="in-process: event seconds per commit"
    )
    parser.add_argument("--until-s", type=float, default=None, help="truncate each scenario")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep run files (and service schemas) here"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="run nothing: print one table from the runs of earlier --json-out files",
    )
    args = parser.parse_args(argv)
    if args.merge is not None:
        return _print_merged(args.merge)

    grids = _csv(args.grids) or default_grids()
    scenarios = _csv(args.scenarios)
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}")
    if args.seed_list:
        seeds = [int(x) for x in _csv(args.seed_list)]
        seed_set = "eval" if all(s >= EVAL_OFFSET for s in seeds) else "dev (< 100000)"
        if any(s >= EVAL_OFFSET for s in seeds) and any(s < EVAL_OFFSET for s in seeds):
            parser.error("--seed-list mixes evaluation (>= 100000) and development seeds")
    else:
        seeds, seed_set = _seeds(args.seeds, args.seed_set), args.seed_set
    modes: list[tuple[str, float]] = []
    for m in _csv(args.modes):
        if m == "inprocess":
            modes.append(("inprocess", math.nan))
        elif m == "service":
            modes += [("service", float(s)) for s in _csv(args.speeds)]
        else:
            parser.error(f"unknown mode {m!r}")

    from gridwatch.core.settings import load_settings

    code = code_state()

    database_url = load_settings().database_url.get_secret_value()
    print(
        f"grid sweep {datetime.now(UTC):%Y-%m-%dT%H:%MZ} on {platform.node()}"
        f" ({os.cpu_count()} cores): {len(grids)} grid(s) x {scenarios} x"
        f" {[m if math.isnan(s) else f'{m} {s:g}x' for m, s in modes]};"
        f" {seed_set} seeds {seeds}"
        + ("" if args.until_s is None else f"; scenarios truncated at {args.until_s:g} s")
        + f"; in-process commits of {args.commit_s:g} s event time; code {code}",
        flush=True,
    )
    args.code = code
    workdir = Path(tempfile.mkdtemp(prefix="gridsweep-")) if args.keep is None else args.keep
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    skipped: list[str] = []
    try:
        for grid in grids:
            for scenario in scenarios:
                try:
                    spec = scenario_on_grid(scenario, grid, workdir, until_s=args.until_s)
                except Exception as exc:  # an import failure is a result, not a crash
                    spec = None
                    skipped.append(f"{grid} / {scenario}: {type(exc).__name__}: {exc}")
                    continue
                if spec is None:
                    skipped.append(f"{grid} / {scenario}: no breaker with a smaller device")
                    continue
                for mode, speed in modes:
                    label = mode if math.isnan(speed) else f"service {speed:g}x"
                    for seed in seeds:
                        t0 = time.perf_counter()
                        report: dict[str, Any] | None = None
                        error = ""
                        try:
                            if mode == "inprocess":
                                report = asyncio.run(
                                    _run_inprocess(spec, seed, database_url, args.commit_s)
                                )
                            else:
                                report = run_service(
                                    spec,
                                    seed,
                                    speed,
                                    database_url,
                                    workdir,
                                    keep_schema=args.keep is not None,
                                )
                        except Exception as exc:
                            error = f"{type(exc).__name__}: {str(exc)[-300:]}"
                        res = RunResult(
                            grid,
                            scenario,
                            label,
                            seed,
                            report,
                            time.perf_counter() - t0,
                            error=error,
                            note=spec.note,
                        )
                        results.append(res)
                        _progress(res)
                        if args.json_out is not None:  # after every run: a partial sweep keeps
                            _write_json(args.json_out, results, skipped, seeds, seed_set, args)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = aggregate(results)
    print()
    print(f"seeds: {seed_set} {seeds}")
    print(to_table(rows))
    print("\nskipped (no row):\n" + ("\n".join(f"- {s}" for s in skipped) or "(none)"))
    print("\nfailures against the targets:\n" + failure_list(rows))
    if args.json_out is not None:
        _write_json(args.json_out, results, skipped, seeds, seed_set, args)
    return 0


def code_state() -> str:
    """The commit the sweep runs, and whether the code it measures had uncommitted changes
    (the tree is shared: results must say what they measured)."""
    root = Path(__file__).resolve().parent.parent

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=root, capture_output=True, check=False)
        return done.stdout.decode(errors="replace").rstrip()  # porcelain lines start with a space

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "detectors", "gridwatch", "ingest", "simulators")
    changed = [line[3:] for line in dirty.splitlines()]
    return head + (f" + uncommitted {', '.join(changed)}" if changed else " (clean)")


def load_runs(path: Path) -> tuple[list[RunResult], list[str], str]:
    """The runs, skipped rows and seed set of a ``--json-out`` file."""
    doc = json.loads(path.read_bytes())
    runs = [RunResult(**r) for r in doc["runs"]]
    return runs, list(doc.get("skipped", [])), f"{doc['seed_set']} {doc['seeds']}"


def _print_merged(paths: Sequence[Path]) -> int:
    results: list[RunResult] = []
    skipped: list[str] = []
    for path in paths:
        runs, skip, seeds = load_runs(path)
        results += runs
        skipped += skip
        print(f"{path}: {len(runs)} run(s), seeds {seeds}")
    rows = aggregate(results)
    print()
    print(to_table(rows))
    print("\nskipped (no row):\n" + ("\n".join(f"- {s}" for s in skipped) or "(none)"))
    print("\nfailures against the targets:\n" + failure_list(rows))
    return 0


def _progress(r: RunResult) -> None:
    rep = r.report
    if rep is None:
        print(f"  {r.grid} {r.scenario} {r.mode} seed {r.seed}: FAILED {r.error}", flush=True)
        return
    print(
        f"  {r.grid} {r.scenario} {r.mode} seed {r.seed}: P {_f(_num(rep['outage_precision']))}"
        f" R {_f(_num(rep['outage_recall']))} ({rep['true_outages']} true,"
        f" {rep['recorded_outages']} rec, {rep['matched']} matched)"
        f" missed {rep.get('missed_ids') or '-'} false {rep.get('false_ids') or '-'}"
        f" [{r.wall_s:.0f} s wall]",
        flush=True,
    )


def _write_json(
    path: Path,
    results: list[RunResult],
    skipped: list[str],
    seeds: list[int],
    seed_set: str,
    args: argparse.Namespace,
) -> None:
    rows = aggregate(results)
    doc = {
        "seeds": seeds,
        "seed_set": seed_set,
        "until_s": args.until_s,
        "commit_s": args.commit_s,
        "code": getattr(args, "code", ""),
        "runs": [dataclasses.asdict(r) for r in results],
        "rows": [
            {
                "grid": row.grid,
                "scenario": row.scenario,
                "mode": row.mode,
                "seeds": row.seeds,
                "precision": row.precision,
                "recall": row.recall,
                "right_device": row.right_device_share,
                "latency_p50_s": row.latency_s(50),
                "latency_p95_s": row.latency_s(95),
                "etr_p50_err_min": row.etr_p50_err_min,
                "baseline_err_min": row.baseline_err_min,
                "coverage": row.coverage,
                "false_restored": row.false_restored,
                "nested_customers": row.nested_customers,
                "lag_warnings": row.lag_warnings,
                "true_observable": row.observable,
                "recorded": row.recorded,
                "matched": row.matched,
                "failures": row.failures(),
            }
            for row in rows
        ],
        "skipped": skipped,
    }
    path.write_text(json.dumps(_no_nan(doc), indent=2) + "\n", encoding="utf-8")


def _no_nan(obj: Any) -> Any:
    """JSON has no NaN: n/a figures become null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_no_nan(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
