"""Named scenarios (small JSON files in ``simulators/scenarios``) and a whole simulation run."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from simulators._ami import AmiParams, CommBlackout, TelemetryGenerator
from simulators._errors import SimulatorError, UnknownScenario
from simulators._feeder import TOY_PARAMS, SimGrid, generate_grid
from simulators._messages import SimMessage, parse_time
from simulators._truth import GroundTruth, TruthOutage, ids_of, nan_to_none
from simulators._world import (
    CrewParams,
    FaultRates,
    PlannedOutage,
    ScriptedFault,
    Storm,
    WorldParams,
    WorldResult,
    simulate_world,
)

_GRID_KEYS = {
    "network",  # a published network by name (simulators._grid_import)
    "toy",
    "zones",
    "substations",
    "feeders",
    "laterals",
    "reclosers",
    "fuses",
    "transformers_per_lateral",
    "meters_per_transformer",
    "customers_per_meter",
    "tie_switches",
    "dcu_size",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    seed: int
    start_s: float
    duration_s: float
    grid: dict[str, Any]
    world: WorldParams
    ami: AmiParams
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def list_scenarios() -> list[str]:
    folder = resources.files("simulators") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _build(cls: type[Any], obj: Any, where: str) -> Any:
    if not isinstance(obj, dict):
        raise SimulatorError(f"{where}: expected an object, got {type(obj).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise SimulatorError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}"
        )
    try:
        return cls(**obj)
    except TypeError as exc:
        raise SimulatorError(f"{where}: {exc}") from None


def scenario_from_dict(obj: dict[str, Any], *, name: str = "custom") -> Scenario:
    allowed = {"name", "description", "seed", "start", "duration_s", "grid", "world", "ami"}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise SimulatorError(
            f"scenario {name}: unknown key(s) {', '.join(unknown)};"
            f" allowed: {', '.join(sorted(allowed))}"
        )
    grid = dict(obj.get("grid", {"toy": True}))
    bad = sorted(set(grid) - _GRID_KEYS)
    if bad:
        raise SimulatorError(f"scenario {name}: grid: unknown key(s) {', '.join(bad)}")
    w = dict(obj.get("world", {}))
    try:
        world = WorldParams(
            rates=_build(FaultRates, w.pop("rates", {}), f"{name}: world.rates"),
            crew=_build(CrewParams, _tuple_repairs(w.pop("crew", {})), f"{name}: world.crew"),
            storms=tuple(_build(Storm, s, f"{name}: world.storms") for s in w.pop("storms", [])),
            faults=tuple(
                _build(ScriptedFault, f, f"{name}: world.faults") for f in w.pop("faults", [])
            ),
            planned=tuple(
                _build(PlannedOutage, p, f"{name}: world.planned") for p in w.pop("planned", [])
            ),
            random_faults=bool(w.pop("random_faults", True)),
        )
    except AttributeError as exc:
        raise SimulatorError(f"scenario {name}: world: {exc}") from None
    if w:
        raise SimulatorError(f"scenario {name}: world: unknown key(s) {', '.join(sorted(w))}")
    a = dict(obj.get("ami", {}))
    blackouts = tuple(
        _build(
            CommBlackout,
            {**b, "dcus": tuple(b.get("dcus", ()))} if isinstance(b, dict) else b,
            f"{name}: ami.blackouts",
        )
        for b in a.pop("blackouts", [])
    )
    ami = _build(AmiParams, {**a, "blackouts": blackouts}, f"{name}: ami")
    try:
        start_s = parse_time(str(obj.get("start", "2026-11-23T00:00:00Z")))
    except ValueError as exc:
        raise SimulatorError(f"scenario {name}: start: {exc}") from None
    duration = obj.get("duration_s", 6 * 3600)
    if not isinstance(duration, int | float) or not (0 < duration <= 400 * 86400):
        raise SimulatorError(
            f"scenario {name}: duration_s must be in (0, 400 days], got {duration!r}"
        )
    seed = obj.get("seed", 1)
    if not isinstance(seed, int) or seed < 0:
        raise SimulatorError(f"scenario {name}: seed must be a non-negative integer")
    return Scenario(
        name=str(obj.get("name", name)),
        description=str(obj.get("description", "")),
        seed=seed,
        start_s=start_s,
        duration_s=float(duration),
        grid=grid,
        world=world,
        ami=ami,
        raw=obj,
    )


def _tuple_repairs(crew: Any) -> Any:
    if isinstance(crew, dict) and isinstance(crew.get("repair_median_s"), dict):
        merged = dict(CrewParams().repair_median_s) | crew["repair_median_s"]
        return {**crew, "repair_median_s": tuple(sorted(merged.items()))}
    return crew


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A bundled scenario by name (``storm``), or a JSON file by path."""
    text = str(name_or_path)
    if text.endswith(".json") or "/" in text:
        path = Path(text)
        try:
            obj = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise SimulatorError(f"scenario file {path} does not exist") from None
        except orjson.JSONDecodeError as exc:
            raise SimulatorError(f"scenario file {path}: bad JSON ({exc})") from None
        name = path.stem
    else:
        valid = list_scenarios()
        if text not in valid:
            raise UnknownScenario(text, valid)
        obj = orjson.loads(
            (resources.files("simulators") / "scenarios" / f"{text}.json").read_bytes()
        )
        name = text
    if not isinstance(obj, dict):
        raise SimulatorError(f"scenario {name}: expected a JSON object")
    return scenario_from_dict(obj, name=name)


def build_grid(spec: dict[str, Any], seed: int) -> SimGrid:
    spec = dict(spec)
    if "network" in spec:
        from simulators._grid_import import load_published_network

        name = spec.pop("network")
        if spec:
            raise SimulatorError(f"grid: 'network' takes no other keys, got {', '.join(spec)}")
        return load_published_network(name, seed=seed)
    if spec.pop("toy", False):
        spec = {**TOY_PARAMS, "dcu_size": 36, **spec}
    try:
        return generate_grid(seed, **spec)
    except TypeError as exc:
        raise SimulatorError(f"grid: {exc}") from None


def simulation_on_network(
    scenario: Scenario, network: str, *, seed: int | None = None
) -> Simulation:
    """``scenario`` on the published ``network``: its random faults and AMI behaviour apply,
    its storms strike every zone of the imported grid, and its scripted faults and planned
    work (which name the bundled grids' device ids) are left out. The grid spec becomes
    ``{"network": network}``, so the ground truth rebuilds the same grid."""
    sc = dataclasses.replace(scenario, grid={"network": network})
    grid = build_grid(sc.grid, sc.seed if seed is None else seed)
    zones = sorted({str(z) for z in grid.topology.devices.zone})
    storms = tuple(
        dataclasses.replace(storm, zone=zone) for storm in sc.world.storms for zone in zones
    )
    world = dataclasses.replace(sc.world, faults=(), planned=(), storms=storms)
    return Simulation(dataclasses.replace(sc, world=world), seed=seed, grid=grid)


class Simulation:
    """One scenario run: the grid, the world (ground truth) and its telemetry."""

    def __init__(
        self, scenario: Scenario, *, seed: int | None = None, grid: SimGrid | None = None
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.grid = grid if grid is not None else build_grid(scenario.grid, self.seed)
        self.world: WorldResult = simulate_world(
            self.grid,
            scenario.world,
            start_s=scenario.start_s,
            duration_s=scenario.duration_s,
            seed=self.seed,
        )
        self.telemetry = TelemetryGenerator(self.grid, self.world, scenario.ami, self.seed)

    @property
    def start_s(self) -> float:
        return self.scenario.start_s

    @property
    def end_s(self) -> float:
        return self.scenario.start_s + self.scenario.duration_s

    def messages(self) -> Iterator[SimMessage]:
        """Telemetry in publish order (a fresh, identical stream each call)."""
        gen = TelemetryGenerator(self.grid, self.world, self.scenario.ami, self.seed)
        self.telemetry = gen
        return gen.messages()

    def truth(self) -> GroundTruth:
        topo = self.grid.topology
        cust_ids = topo.customers.ids
        outages = []
        for o in self.world.outages:
            cidx = topo.meters.customer[o.meters]
            customers: list[str | None] = [
                str(cust_ids[c]) if c >= 0 else None for c in cidx.tolist()
            ]
            outages.append(
                TruthOutage(
                    outage_id=o.outage_id,
                    device_id=o.device_id,
                    device_kind=o.device_kind,
                    zone=o.zone,
                    cause=o.cause,
                    start_s=o.start_s,
                    end_s=o.end_s,
                    momentary=o.momentary,
                    planned=o.planned,
                    storm_level=o.storm_level,
                    nested_in=o.nested_in,
                    meter_ids=ids_of(topo.meters.ids, o.meters),
                    customer_ids=customers,
                    restore_s=[float(x) for x in o.restore_s.tolist()],
                    switched_s=nan_to_none(o.switched_s),
                    announced_end_s=nan_to_none(o.announced_end_s),
                )
            )
        tel = self.telemetry
        silent = np.flatnonzero(np.isfinite(tel.silent_from_s))
        counts = dataclasses.asdict(tel.counts)
        return GroundTruth(
            scenario=self.scenario.name,
            seed=self.seed,
            start_s=self.start_s,
            end_s=self.end_s,
            outages=outages,
            comm_silent_from_s={
                str(topo.meters.ids[i]): float(tel.silent_from_s[i]) for i in silent
            },
            blackouts=[
                {
                    **dataclasses.asdict(b),
                    "start_s": self.start_s + b.at_s,
                    "end_s": self.start_s + b.at_s + b.duration_s,
                }
                for b in self.scenario.ami.blackouts
            ],
            grid_spec=dict(self.scenario.grid),
            counts=counts,
        )
