"""Published distribution networks (pandapower, SimBench) turned into gridwatch device trees.

A bus-branch model knows buses, lines, transformers and switches; gridwatch knows the
protective and switching devices between a substation and a meter. The mapping, in short
(``docs/simulators.md``, "Importing published networks", has the full list of what is
approximated):

- each in-service ``ext_grid`` is a substation; its bus plus everything joined to it by
  closed bus-bus switches and by HV/MV transformers (low side above 1 kV) is the
  substation bus (those transformers are the substation's own);
- the spanning tree is a breadth-first search from all substations at once over closed,
  in-service branches; every branch left over (an open switch, an out-of-service line, a
  second path closing a loop) becomes a normally-open tie with an alternate parent;
- every tree branch leaving a substation bus starts a feeder: a breaker (the branch's own
  circuit breaker when it has one) and a zone of its own;
- other tree branches: a transformer becomes a transformer device; a line leaving a
  transformer's LV bus becomes a fuse (the LV fuse-way); a line or bus-bus switch with
  closed switches becomes one switch device (a circuit breaker on MV: a recloser); a line
  without switches is collapsed into the device above it;
- each in-service load (and asymmetric load) becomes one meter with one customer; a load
  on an MV bus stands for an MV/LV station, so it hangs off a transformer device made for
  that bus.
"""

from __future__ import annotations

import json
import math
import re
import warnings
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridwatch.core.errors import TopologyError
from gridwatch.topology import NO_PARENT, Topology, build_topology
from simulators._errors import SimulatorError, check_count
from simulators._feeder import SimGrid
from simulators._names import make_customers

LV_MAX_KV: Final = 1.0  # at or below: low voltage (service level)
MAX_BUSES: Final = 2_000_000
MAX_PROBLEMS_SHOWN: Final = 20
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
# Which of several switches on one branch names the device: the strongest interrupter.
_SWITCH_RANK: Final = {"CB": 0, "LBS": 1, "LS": 2, "DS": 3}

_KERBER_EXTREME: Final = (
    "kb_extrem_dorfnetz",
    "kb_extrem_dorfnetz_trafo",
    "kb_extrem_landnetz_freileitung",
    "kb_extrem_landnetz_freileitung_trafo",
    "kb_extrem_landnetz_kabel",
    "kb_extrem_landnetz_kabel_trafo",
    "kb_extrem_vorstadtnetz_1",
    "kb_extrem_vorstadtnetz_2",
    "kb_extrem_vorstadtnetz_trafo_1",
    "kb_extrem_vorstadtnetz_trafo_2",
)
# (feeder length, line type, customers) of the Dickert networks pandapower 3.x builds;
# names stay short because they prefix every id and zone (at most 32 characters).
_DICKERT_FEEDERS: Final = (
    ("short", "cable", "single"),
    ("short", "cable", "multi"),
    ("middle", "cable", "multi"),
    ("middle", "cohl", "multi"),
    ("long", "cable", "multi"),
    ("long", "cohl", "multi"),
)
# Left out of pandapower.networks on purpose: transmission cases (case4gs ... the PEGASE and
# RTE cases, case11_iwamoto, GB, Iceland, CIGRE HV), example_simple / example_multivoltage
# (HV demonstration nets, one load / three-winding transformers), and the scenario variants
# of grids already listed (mv_oberrhein's "generation", ieee_european_lv's off-peak cases,
# lv_schutterwald split by substation): the same tree, other load values.
# name -> (pandapower.networks function, keyword arguments, coordinates are WGS84 lon/lat,
# every line is switchable: the reconfiguration benchmarks (Baran & Wu's 33-bus feeder)
# assume a sectionalizing switch on every branch)
PANDAPOWER_NETWORKS: Final[dict[str, tuple[str, dict[str, Any], bool, bool]]] = {
    "ieee_european_lv": ("ieee_european_lv_asymmetric", {}, False, False),
    "mv_oberrhein": ("mv_oberrhein", {}, True, False),
    "case33bw": ("case33bw", {}, False, True),
    "cigre_mv": ("create_cigre_network_mv", {"with_der": False}, False, False),
    "cigre_lv": ("create_cigre_network_lv", {}, False, False),
    "lv_schutterwald": ("lv_schutterwald", {}, True, False),
    "kerber_dorfnetz": ("create_kerber_dorfnetz", {}, False, False),
    "simple_mv_open_ring": ("simple_mv_open_ring_net", {}, False, False),
    # Kerber's German reference LV grids (rural overhead / cable, suburban cable), one
    # transformer each, radial as published.
    "kerber_landnetz_freileitung_1": ("create_kerber_landnetz_freileitung_1", {}, False, False),
    "kerber_landnetz_freileitung_2": ("create_kerber_landnetz_freileitung_2", {}, False, False),
    "kerber_landnetz_kabel_1": ("create_kerber_landnetz_kabel_1", {}, False, False),
    "kerber_landnetz_kabel_2": ("create_kerber_landnetz_kabel_2", {}, False, False),
    "kerber_vorstadtnetz_kabel_1": ("create_kerber_vorstadtnetz_kabel_1", {}, False, False),
    "kerber_vorstadtnetz_kabel_2": ("create_kerber_vorstadtnetz_kabel_2", {}, False, False),
    # Kerber's "extreme" variants (longest feeders / largest transformer load).
    **{
        # one name shortened to fit the 32-character id prefix
        name.replace("freileitung_trafo", "freil_trafo"): (name, {}, False, False)
        for name in _KERBER_EXTREME
    },
    # Synthetic LV grids for voltage-control studies (Lindner et al.), one per class.
    **{
        f"synthetic_lv_{cls}": (
            "create_synthetic_voltage_control_lv_network",
            {"network_class": cls},
            False,
            False,
        )
        for cls in ("rural_1", "rural_2", "village_1", "village_2", "suburb_1")
    },
    # Dickert, Domagk & Schegner's benchmark LV feeders: every (length, line type, customers,
    # supply case) combination pandapower publishes (the others raise ValueError there).
    **{
        f"dickert_{length}_{line}_{cust}_{case[:3] if case == 'average' else case}": (
            "create_dickert_lv_network",
            {
                "feeders_range": length,
                "linetype": "C&OHL" if line == "cohl" else line,
                "customer": "multiple" if cust == "multi" else cust,
                "case": case,
            },
            False,
            False,
        )
        for length, line, cust in _DICKERT_FEEDERS
        for case in ("good", "average", "bad")
    },
    # pandapower's small radial MV/LV test feeders.
    "panda_four_load_branch": ("panda_four_load_branch", {}, False, False),
    "four_loads_with_branches_out": ("four_loads_with_branches_out", {}, False, False),
    "simple_four_bus_system": ("simple_four_bus_system", {}, False, False),
}
SIMBENCH_GRIDS: Final = (
    "1-LV-rural1",
    "1-LV-rural2",
    "1-LV-rural3",
    "1-LV-semiurb4",
    "1-LV-semiurb5",
    "1-LV-urban6",
    "1-MV-rural",
    "1-MV-semiurb",
    "1-MV-urban",
    "1-MV-comm",
)
# SimBench codes: grid, then "--" scenario (0 today, 1 and 2 future load), "-sw" or "-no_sw".
_SIMBENCH_RE: Final = re.compile(
    "(" + "|".join(re.escape(g) for g in SIMBENCH_GRIDS) + r")--[012]-(sw|no_sw)"
)


class NetworkImportError(SimulatorError):
    """A network cannot become a gridwatch tree; ``problems`` lists every reason found."""

    def __init__(self, what: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        suffix = f"; ... and {more} more" if more > 0 else ""
        super().__init__(f"{what}: {shown}{suffix}")
        self.problems = problems


@dataclass(frozen=True, eq=False)
class ImportedNetwork:
    """An imported network and how the source's elements map onto it."""

    name: str
    grid: SimGrid
    bus_device: dict[int, str]  # bus -> id of the device feeding it (normal configuration)
    switch_device: dict[int, str]  # switch -> id of the device standing for it
    load_meter: dict[tuple[str, int], str]  # ("load" | "asymmetric_load", index) -> meter id
    ties: list[str]  # normally-open tie devices
    opened_loops: list[str]  # ties made from closed branches that closed a loop
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def topology(self) -> Topology:
        return self.grid.topology


def published_network_names() -> list[str]:
    """Every name ``load_published_network`` accepts."""
    sb = [f"{g}--{s}-{sw}" for g in SIMBENCH_GRIDS for s in (0, 1, 2) for sw in ("sw", "no_sw")]
    return sorted(PANDAPOWER_NETWORKS) + sb


def load_published_network(
    name: str, *, seed: int = 0, dcu_size: int = 500, zone_prefix: str | None = None
) -> SimGrid:
    """A published network by name (``published_network_names()``) as a ``SimGrid``."""
    return load_published_network_detailed(
        name, seed=seed, dcu_size=dcu_size, zone_prefix=zone_prefix
    ).grid


def load_published_network_detailed(
    name: str, *, seed: int = 0, dcu_size: int = 500, zone_prefix: str | None = None
) -> ImportedNetwork:
    """Like ``load_published_network``, with the element-to-device mapping."""
    net, wgs84, switchable = _load_source(name)
    return import_pandapower(
        net,
        name=zone_prefix or _short_name(name),
        seed=seed,
        dcu_size=dcu_size,
        wgs84=wgs84,
        switchable_lines=switchable,
    )


def _short_name(name: str) -> str:
    # SimBench codes are long; ids keep "1-MV-urban--0-sw" -> "SB1-MV-urban-0-sw".
    text = name.replace("--", "-").replace("_", "-")
    return text if text[0].isalpha() else "SB" + text


def _load_source(name: str) -> tuple[Any, bool, bool]:
    if not isinstance(name, str):
        raise SimulatorError(f"network name must be a string, got {type(name).__name__}")
    if name in PANDAPOWER_NETWORKS:
        func, kwargs, wgs84, switchable = PANDAPOWER_NETWORKS[name]
        networks = _optional("pandapower.networks")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandapower's FutureWarnings on load
            return getattr(networks, func)(**kwargs), wgs84, switchable
    if _SIMBENCH_RE.fullmatch(name):
        simbench = _optional("simbench")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return simbench.get_simbench_net(name), True, False
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise SimulatorError(
        f"unknown network {shown!r}; valid names: {', '.join(sorted(PANDAPOWER_NETWORKS))},"
        f" and SimBench codes {{{', '.join(SIMBENCH_GRIDS)}}}--{{0,1,2}}-{{sw,no_sw}}"
        " (e.g. 1-LV-rural1--0-sw)"
    )


def _optional(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SimulatorError(
            f"published networks need {module.split('.')[0]}:"
            " pip install 'gridwatch[grids]' (pandapower, simbench)"
        ) from None


def import_pandapower_net(
    net: Any,
    *,
    name: str,
    seed: int = 0,
    dcu_size: int = 500,
    wgs84: bool = False,
    switchable_lines: bool = False,
) -> SimGrid:
    """A pandapower network as a ``SimGrid`` (see the module docstring for the mapping).

    ``name`` prefixes every id and zone (``[A-Za-z0-9][A-Za-z0-9_-]{0,31}``); ``seed`` draws
    the customers; ``wgs84`` says the buses' ``geo`` points are lon/lat (else no positions);
    ``switchable_lines`` gives every line a sectionalizing switch device (else lines without
    switches are collapsed).
    Raises ``NetworkImportError`` listing every problem (no ext_grid, an unsupplied bus, a
    reference to a bus that does not exist, ...).
    """
    return import_pandapower(
        net,
        name=name,
        seed=seed,
        dcu_size=dcu_size,
        wgs84=wgs84,
        switchable_lines=switchable_lines,
    ).grid


# ---------------------------------------------------------------- reading the source


@dataclass
class _Branch:
    tag: str  # "L12" line, "T3" transformer, "S7" bus-bus switch, "Z2" impedance
    a: int  # bus position (from / hv side / switch bus)
    b: int
    in_service: bool
    switches: list[int] = field(default_factory=list)  # switch rows on this branch
    is_trafo: bool = False
    name: str = ""


class _Source:
    """The columns of a pandapower net, checked, with buses as positions 0..n-1."""

    def __init__(self, net: Any, what: str) -> None:
        self.what = what
        self.problems: list[str] = []
        bus = self._table(net, "bus", ("vn_kv",), required=True)
        if self.problems:
            raise NetworkImportError(what, self.problems)
        self.bus_ids = self._index(bus, "bus")
        n = len(self.bus_ids)
        if n > MAX_BUSES:
            raise NetworkImportError(what, [f"{n} buses is more than the {MAX_BUSES} allowed"])
        self.pos = {b: i for i, b in enumerate(self.bus_ids)}
        self.vn_kv = self._floats(bus, "vn_kv", "bus")
        self.bus_in_service = self._flags(bus, "in_service", "bus")
        self.bus_name = self._names(bus, "bus")
        self.bus_place = self._places(bus)
        self.geo = bus["geo"].tolist() if "geo" in bus.columns else [None] * n

        ext = self._table(net, "ext_grid", ("bus",), required=True)
        self.ext_ids = self._index(ext, "ext_grid")
        self.ext_bus = self._buses(ext, "bus", "ext_grid")
        self.ext_in_service = self._flags(ext, "in_service", "ext_grid")

        self.branches: list[_Branch] = []
        line = self._table(net, "line", ("from_bus", "to_bus"))
        self.line_at: dict[int, int] = {}
        impedance = self._table(net, "impedance", ("from_bus", "to_bus"))
        for table, tag, table_name in ((line, "L", "line"), (impedance, "Z", "impedance")):
            ids = self._index(table, table_name)
            a = self._buses(table, "from_bus", table_name)
            b = self._buses(table, "to_bus", table_name)
            on = self._flags(table, "in_service", table_name)
            names = self._names(table, table_name)
            for k, idx in enumerate(ids):
                if tag == "L":
                    self.line_at[idx] = len(self.branches)
                self.branches.append(_Branch(f"{tag}{idx}", a[k], b[k], bool(on[k]), name=names[k]))
        trafo = self._table(net, "trafo", ("hv_bus", "lv_bus"))
        self.trafo_at: dict[int, int] = {}
        t_ids = self._index(trafo, "trafo")
        t_hv, t_lv = self._buses(trafo, "hv_bus", "trafo"), self._buses(trafo, "lv_bus", "trafo")
        t_on, t_names = self._flags(trafo, "in_service", "trafo"), self._names(trafo, "trafo")
        for k, idx in enumerate(t_ids):
            self.trafo_at[idx] = len(self.branches)
            self.branches.append(
                _Branch(f"T{idx}", t_hv[k], t_lv[k], bool(t_on[k]), is_trafo=True, name=t_names[k])
            )
        t3 = self._table(net, "trafo3w", ())
        if len(t3) and self._flags(t3, "in_service", "trafo3w").any():
            self.problems.append(
                "three-winding transformers (trafo3w) are not supported; this importer is for"
                " distribution networks"
            )

        sw = self._table(net, "switch", ("bus", "element", "et", "closed"))
        self.switch_ids = self._index(sw, "switch")
        self.switch_bus = self._buses(sw, "bus", "switch")
        self.switch_closed = self._flags(sw, "closed", "switch", required=True)
        et = [str(x) for x in sw["et"].tolist()] if "et" in sw.columns else []
        kinds = sw["type"].tolist() if "type" in sw.columns else [None] * len(sw)
        self.switch_type = [k if isinstance(k, str) else "" for k in kinds]
        self.switch_name = self._names(sw, "switch")
        element = self._ints(sw, "element", "switch")
        for k, idx in enumerate(self.switch_ids):
            where = f"switch {idx}"
            e, kind = element[k], et[k] if k < len(et) else ""
            if self.switch_bus[k] < 0 or e < 0:
                continue  # already reported
            if kind == "b":
                other = self.pos.get(e, -1)
                if other < 0:
                    self.problems.append(f"{where}: element bus {e} does not exist")
                    continue
                self.branches.append(
                    _Branch(
                        f"S{idx}", self.switch_bus[k], other, True, [k], name=self.switch_name[k]
                    )
                )
            elif kind in ("l", "t"):
                at = (self.line_at if kind == "l" else self.trafo_at).get(e)
                if at is None:
                    what_el = "line" if kind == "l" else "trafo"
                    self.problems.append(f"{where}: {what_el} {e} does not exist")
                    continue
                br = self.branches[at]
                if self.switch_bus[k] not in (br.a, br.b):
                    self.problems.append(
                        f"{where}: bus {self.bus_ids[self.switch_bus[k]]} is not an end of {br.tag}"
                    )
                    continue
                br.switches.append(k)
            elif kind:
                self.problems.append(f"{where}: unknown element type et={_short(kind)}")

        self.loads: list[tuple[str, int, int]] = []  # (table, index, bus position)
        self.skipped_loads = 0
        for table_name in ("load", "asymmetric_load"):
            table = self._table(net, table_name, ("bus",))
            ids = self._index(table, table_name)
            load_bus = self._buses(table, "bus", table_name)
            on = self._flags(table, "in_service", table_name)
            for k, idx in enumerate(ids):
                at_bus = load_bus[k] if k < len(load_bus) else -1
                if on[k] and at_bus >= 0 and self.bus_in_service[at_bus]:
                    self.loads.append((table_name, idx, at_bus))
                else:
                    self.skipped_loads += 1
        if self.problems:
            raise NetworkImportError(what, self.problems)

    # ---- typed column access that records problems instead of raising ----

    def _table(
        self, net: Any, key: str, columns: tuple[str, ...], *, required: bool = False
    ) -> Any:
        # pandapowerNet is a dict subclass; anything else is not a network.
        table = net.get(key) if isinstance(net, dict) else None
        if table is None or not hasattr(table, "columns") or not hasattr(table, "index"):
            if required:
                self.problems.append(f"the net has no {key} table (is it a pandapower network?)")
            return _EmptyTable(columns)
        missing = [c for c in columns if c not in table.columns]
        if missing and len(table):
            self.problems.append(f"{key}: missing column(s) {', '.join(missing)}")
            return _EmptyTable(columns)
        return table

    def _index(self, table: Any, what: str) -> list[int]:
        out: list[int] = []
        for v in table.index.tolist():
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                self.problems.append(f"{what}: index {_short(v)} is not an integer")
                out.append(-1)
            else:
                out.append(int(v))
        return out

    def _ints(self, table: Any, column: str, what: str) -> list[int]:
        if column not in table.columns:
            return []
        out: list[int] = []
        for idx, v in zip(table.index.tolist(), table[column].tolist(), strict=True):
            ok = isinstance(v, int | np.integer | float | np.floating) and not isinstance(v, bool)
            if ok and math.isfinite(float(v)) and float(v) == int(v):
                out.append(int(v))
            else:
                self.problems.append(f"{what} {idx}: {column} {_short(v)} is not an integer")
                out.append(-1)
        return out

    def _buses(self, table: Any, column: str, what: str) -> list[int]:
        out: list[int] = []
        for idx, b in zip(table.index.tolist(), self._ints(table, column, what), strict=False):
            at = self.pos.get(b, -1) if b >= 0 else -1
            if at < 0 and b >= 0:
                self.problems.append(f"{what} {idx}: {column} {b} does not exist")
            out.append(at)
        return out

    def _floats(self, table: Any, column: str, what: str) -> npt.NDArray[np.float64]:
        out = np.full(len(table), np.nan)
        for k, (idx, v) in enumerate(
            zip(table.index.tolist(), table[column].tolist(), strict=True)
        ):
            ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            if not ok or not math.isfinite(float(v)) or float(v) <= 0:
                self.problems.append(f"{what} {idx}: {column} {_short(v)} is not a positive number")
            else:
                out[k] = float(v)
        return out

    def _flags(
        self, table: Any, column: str, what: str, *, required: bool = False
    ) -> npt.NDArray[np.bool_]:
        out = np.ones(len(table), dtype=np.bool_)
        if column not in table.columns:
            if required and len(table):
                self.problems.append(f"{what}: missing column {column}")
            return out
        for k, (idx, v) in enumerate(
            zip(table.index.tolist(), table[column].tolist(), strict=True)
        ):
            if isinstance(v, bool | np.bool_):
                out[k] = bool(v)
            else:
                self.problems.append(f"{what} {idx}: {column} {_short(v)} is not true/false")
        return out

    def _names(self, table: Any, what: str) -> list[str]:
        if "name" not in table.columns:
            return [""] * len(table)
        return [_clean(v) for v in table["name"].tolist()]

    def _places(self, bus: Any) -> list[str]:
        """Per bus, its ``zone`` (else ``subnet``) where that reads as a place, else ""."""
        out = [""] * len(bus)
        for column in ("subnet", "zone"):  # zone last: it wins
            if column in bus.columns:
                for k, v in enumerate(bus[column].tolist()):
                    text = _clean(v)
                    if reads_as_place(text):
                        out[k] = text
        return out


class _EmptyTable:
    """Stands in for a missing table so the rest can still be checked."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.index = _EmptyList()

    def __len__(self) -> int:
        return 0

    def __getitem__(self, key: str) -> _EmptyList:
        return _EmptyList()


class _EmptyList:
    def tolist(self) -> list[Any]:
        return []


def _clean(value: object) -> str:
    """A display name: text without control characters, at most 256 characters."""
    if not isinstance(value, str):
        return ""
    return _CONTROL_RE.sub(" ", value).strip()[:256]


# Words of letters (any script) with spaces and , . ' - between them, one lowercase at
# least: "Linh Trung", "Downtown", "Phường Đa Kao". Not an id or a label a tool made:
# "Feeder1", "Feeder B0", "T_idx_117", "LV_Grid", "CIGRE_MV", "MV1.101_Feeder1".
_PLACE_RE: Final = re.compile(r"[^\W\d_]+(?:[ ,.'’-]+[^\W\d_]+)*")
_NOT_A_PLACE: Final = frozenset({"none", "nan", "null", "n/a"})


def reads_as_place(text: str) -> bool:
    """A source's zone or subnet name that a customer could know as a place (so it may become
    the devices' ``area``); the published grids' zones are ids and labels, never this."""
    return (
        bool(_PLACE_RE.fullmatch(text))
        and text.lower() not in _NOT_A_PLACE
        and any(c.islower() for c in text)
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lon_lat(geo: object) -> tuple[float, float]:
    if not isinstance(geo, str) or len(geo) > 10_000:
        return math.nan, math.nan
    try:
        point = json.loads(geo)
        lon, lat = (float(x) for x in point["coordinates"][:2])
    except (ValueError, TypeError, KeyError, IndexError):
        return math.nan, math.nan
    if math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180:
        return round(lat, 6), round(lon, 6)
    return math.nan, math.nan


# ---------------------------------------------------------------- building the tree


class _Devices:
    """Device columns in creation order (a parent is always created before its children)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.parent: list[int] = []
        self.kind: list[str] = []
        self.zone: list[str] = []
        self.name: list[str] = []
        self.scada: list[bool] = []
        self.open: list[bool] = []
        self.alt: list[int] = []
        self.lat: list[float] = []
        self.lon: list[float] = []

    def add(
        self,
        dev_id: str,
        kind: str,
        parent: int,
        zone: str,
        name: str,
        at: tuple[float, float],
        *,
        scada: bool = False,
        alt: int = NO_PARENT,
    ) -> int:
        self.ids.append(dev_id)
        self.parent.append(parent)
        self.kind.append(kind)
        self.zone.append(zone)
        self.name.append(name)
        self.scada.append(scada)
        self.open.append(alt != NO_PARENT)
        self.alt.append(alt)
        self.lat.append(at[0])
        self.lon.append(at[1])
        return len(self.ids) - 1


def import_pandapower(
    net: Any,
    *,
    name: str,
    seed: int = 0,
    dcu_size: int = 500,
    wgs84: bool = False,
    switchable_lines: bool = False,
) -> ImportedNetwork:
    """``import_pandapower_net`` with the element-to-device mapping (``ImportedNetwork``)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SimulatorError(
            f"network name {_short(name)} must match {_NAME_RE.pattern} (it prefixes ids and zones)"
        )
    check_count("seed", seed, 0)
    check_count("dcu_size", dcu_size, 1)
    src = _Source(net, f"network {name}")
    n_bus = len(src.bus_ids)
    where = (
        [_lon_lat(g) for g in src.geo] if wgs84 else [(math.nan, math.nan)] * n_bus
    )  # projected or made-up coordinates are not positions
    dev = _Devices()
    notes: list[str] = []
    switch_device: dict[int, str] = {}
    feed = np.full(n_bus, NO_PARENT, dtype=np.int64)  # bus -> device feeding it
    sub_of = np.full(n_bus, -1, dtype=np.int64)  # bus -> substation number, on a substation bus
    used = np.zeros(len(src.branches), dtype=np.bool_)

    adjacency: list[list[int]] = [[] for _ in range(n_bus)]
    for k, br in enumerate(src.branches):
        ok = br.in_service and src.bus_in_service[br.a] and src.bus_in_service[br.b]
        br.in_service = bool(ok)
        adjacency[br.a].append(k)
        adjacency[br.b].append(k)

    def closed(br: _Branch) -> bool:
        return br.in_service and all(src.switch_closed[s] for s in br.switches)

    # ---- substations: ext_grid bus + closed bus-bus switches + HV/MV transformers ----
    live_ext = [k for k in range(len(src.ext_ids)) if src.ext_in_service[k] and src.ext_bus[k] >= 0]
    if not live_ext:
        raise NetworkImportError(
            f"network {name}",
            ["the net has no in-service ext_grid: nothing to root the tree at (a substation)"],
        )
    sub_codes: list[str] = []
    sub_zone: list[str] = []
    feeders_of: list[int] = []
    queue: deque[int] = deque()
    for k in live_ext:
        root = src.ext_bus[k]
        if not src.bus_in_service[root]:
            raise NetworkImportError(
                f"network {name}",
                [f"ext_grid {src.ext_ids[k]} is on out-of-service bus {src.bus_ids[root]}"],
            )
        if sub_of[root] >= 0:
            notes.append(
                f"ext_grid {src.ext_ids[k]} shares a substation bus with another;"
                " one substation stands for both"
            )
            continue
        s = len(sub_codes)
        code = f"{name}-S{s + 1}"
        sub_codes.append(code)
        sub_zone.append(code)
        feeders_of.append(0)
        d = dev.add(
            code, "substation", NO_PARENT, code, src.bus_name[root], where[root], scada=True
        )
        group = deque([root])
        sub_of[root] = s
        while group:
            u = group.popleft()
            feed[u] = d
            queue.append(u)
            for e in adjacency[u]:
                br = src.branches[e]
                v = br.b if br.a == u else br.a
                if used[e] or not closed(br) or sub_of[v] >= 0:
                    continue
                joins = br.tag.startswith("S") or (
                    br.is_trafo and br.a == u and src.vn_kv[br.b] > LV_MAX_KV
                )
                if joins:
                    used[e] = True
                    sub_of[v] = s
                    group.append(v)
                    for sw in br.switches:
                        switch_device[sw] = code

    # ---- breadth-first spanning tree over closed branches ----
    lv_board = np.zeros(n_bus, dtype=np.bool_)  # the LV side of a transformer device

    def feeder_head(
        u: int,
        parent: int,
        at: tuple[float, float],
        tag: str,
        switches: list[int],
        label: str,
        to_transformer: bool,
    ) -> int:
        """A breaker at a feeder's head; an MV feeder is a zone of its own, while a
        transformer at the substation (a secondary substation) keeps the substation's."""
        s = int(sub_of[u])
        feeders_of[s] += 1
        own_zone = src.vn_kv[u] > LV_MAX_KV and not to_transformer
        zone = f"{sub_codes[s]}-F{feeders_of[s]:02d}" if own_zone else sub_zone[s]
        own = sorted(switches, key=lambda w: (src.switch_bus[w] != u, _rank(src, w), w))
        dev_id = f"{name}-SW{src.switch_ids[own[0]]}" if own else f"{name}-BRK-{tag}"
        shown = src.switch_name[own[0]] if own else f"feeder breaker ({label})"
        d = dev.add(dev_id, "breaker", parent, zone, shown, at, scada=True)
        for w in switches:
            switch_device[w] = dev_id
        return d

    while queue:
        u = queue.popleft()
        for e in adjacency[u]:
            br = src.branches[e]
            v = br.b if br.a == u else br.a
            if used[e] or not closed(br) or feed[v] != NO_PARENT:
                continue
            used[e] = True
            parent = int(feed[u])
            at = where[v]
            rest = list(br.switches)
            if sub_of[u] >= 0:
                parent = feeder_head(u, parent, at, br.tag, rest, br.name or br.tag, br.is_trafo)
                rest = []
            zone = dev.zone[parent]
            if br.is_trafo:
                dev_id = f"{name}-TR{br.tag[1:]}"
                parent = dev.add(dev_id, "transformer", parent, zone, br.name, at)
                lv_board[v] = src.vn_kv[v] <= LV_MAX_KV
            elif lv_board[u] and not br.tag.startswith("S"):
                dev_id = f"{name}-FU-{br.tag}"
                parent = dev.add(
                    dev_id, "fuse", parent, zone, br.name or f"LV fuse-way {br.tag}", at
                )
            elif rest:
                best = min(rest, key=lambda w: (_rank(src, w), w))
                kind = "switch"
                if src.switch_type[best] == "CB":
                    kind = "recloser" if src.vn_kv[u] > LV_MAX_KV else "switch"
                dev_id = f"{name}-SW{src.switch_ids[best]}"
                parent = dev.add(
                    dev_id, kind, parent, zone, src.switch_name[best], at, scada=kind == "recloser"
                )
            elif switchable_lines and not br.tag.startswith("S") and sub_of[u] < 0:
                dev_id = f"{name}-SW-{br.tag}"
                label = f"sectionalizing switch ({br.name or br.tag})"
                parent = dev.add(dev_id, "switch", parent, zone, label, at)
            else:
                dev_id = ""  # a plain line: collapsed into the device above
            for w in rest:
                switch_device[w] = dev_id
            feed[v] = parent
            queue.append(v)

    # ---- buses no closed path reaches: refused, each named ----
    unfed = np.flatnonzero((feed == NO_PARENT) & src.bus_in_service)
    if unfed.size:
        problems = []
        for b in unfed.tolist():
            via = [
                src.branches[e].tag
                for e in adjacency[b]
                if src.branches[e].in_service
                and feed[src.branches[e].a if src.branches[e].b == b else src.branches[e].b] >= 0
            ]
            hint = f" (reachable only through open {', '.join(via)})" if via else ""
            label = f" ({src.bus_name[b]!r})" if src.bus_name[b] else ""
            problems.append(
                f"bus {src.bus_ids[b]}{label} is isolated: no closed path to an ext_grid{hint}"
            )
        raise NetworkImportError(f"network {name}", problems)

    # ---- every branch left over is a normally-open tie (or, inside one section, dropped) ----
    ties: list[str] = []
    opened: list[str] = []
    for e, br in enumerate(src.branches):
        if used[e]:
            continue
        if not (src.bus_in_service[br.a] and src.bus_in_service[br.b]):
            notes.append(f"{br.tag}: touches an out-of-service bus; left out")
            continue
        open_sw = [w for w in br.switches if not src.switch_closed[w]]
        side = src.switch_bus[open_sw[0]] if open_sw else br.a
        other = br.b if side == br.a else br.a
        parent, alt = int(feed[side]), int(feed[other])
        if parent == alt:
            notes.append(f"{br.tag}: both ends are fed by {dev.ids[parent]}; no tie needed")
            for w in br.switches:
                switch_device[w] = dev.ids[parent]
            continue
        named = open_sw or sorted(br.switches, key=lambda w: (_rank(src, w), w))
        dev_id = f"{name}-SW{src.switch_ids[named[0]]}" if named else f"{name}-TIE-{br.tag}"
        label = src.switch_name[named[0]] if named else f"tie ({br.name or br.tag})"
        dev.add(dev_id, "switch", parent, dev.zone[parent], label, where[side], scada=True, alt=alt)
        ties.append(dev_id)
        if closed(br):
            opened.append(dev_id)
        for w in br.switches:
            switch_device[w] = dev_id

    # ---- loads -> meters (an MV load stands for an MV/LV station: a transformer for its bus) ----
    station: dict[int, int] = {}
    head_at: dict[int, int] = {}
    meter_dev: list[int] = []
    load_meter: dict[tuple[str, int], str] = {}
    meter_ids: list[str] = []
    for table, idx, b in src.loads:
        d = int(feed[b])
        needs_tx = src.vn_kv[b] > LV_MAX_KV and dev.kind[d] != "transformer"
        if needs_tx or dev.kind[d] == "substation":
            if sub_of[b] >= 0 and b not in head_at:
                head_at[b] = feeder_head(
                    b, d, where[b], f"B{src.bus_ids[b]}", [], f"bus {src.bus_ids[b]}", needs_tx
                )
            d = head_at.get(b, d)
        if needs_tx:
            if b not in station:
                station[b] = dev.add(
                    f"{name}-TX-B{src.bus_ids[b]}",
                    "transformer",
                    d,
                    dev.zone[d],
                    f"MV/LV station at {src.bus_name[b] or 'bus ' + str(src.bus_ids[b])}",
                    where[b],
                )
            d = station[b]
        meter_id = f"{name}-{'AL' if table == 'asymmetric_load' else 'LD'}{idx}"
        load_meter[(table, idx)] = meter_id
        meter_ids.append(meter_id)
        meter_dev.append(d)
    if src.skipped_loads:
        notes.append(f"{src.skipped_loads} out-of-service load(s) left out")

    # ---- places: a device takes the one place-like zone of the buses it feeds (if any) ----
    places: dict[int, set[str]] = {}
    for b in range(n_bus):
        if feed[b] != NO_PARENT and src.bus_place[b]:
            places.setdefault(int(feed[b]), set()).add(src.bus_place[b])
    area = ["" for _ in dev.ids]
    for d, found in places.items():
        if len(found) == 1:
            area[d] = found.pop()

    topology = _build(dev, area, meter_ids, meter_dev, seed, name)
    index = topology.device_index
    alt_parent = np.full(len(dev.ids), NO_PARENT, dtype=np.int32)
    for i, a in enumerate(dev.alt):
        if a != NO_PARENT:
            alt_parent[index[dev.ids[i]]] = index[dev.ids[a]]
    grid = SimGrid(
        topology=topology,
        tie_alt_parent=alt_parent,
        meter_dcu=(meter_dcu := _dcus(topology, dcu_size)),
        dcu_ids=np.array(
            [
                f"DCU-{name}-{i:05d}"
                for i in range(int(meter_dcu.max()) + 1 if meter_dcu.size else 0)
            ],
            dtype=object,
        ),
    )
    return ImportedNetwork(
        name=name,
        grid=grid,
        bus_device={
            int(src.bus_ids[b]): dev.ids[int(feed[b])] for b in range(n_bus) if feed[b] >= 0
        },
        switch_device={int(src.switch_ids[w]): d for w, d in switch_device.items() if d},
        load_meter=load_meter,
        ties=ties,
        opened_loops=opened,
        notes=notes,
    )


def _rank(src: _Source, switch: int) -> int:
    return _SWITCH_RANK.get(src.switch_type[switch], len(_SWITCH_RANK))


def _build(
    dev: _Devices,
    area: list[str],
    meter_ids: list[str],
    meter_dev: list[int],
    seed: int,
    name: str,
) -> Topology:
    n_m = len(meter_ids)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    c_ids, c_acc, c_name, c_phone, c_lang, c_chan, c_crit = make_customers(rng, n_m)
    no = ""
    devices: dict[str, Any] = {
        "id": dev.ids,
        "parent": [dev.ids[p] if p != NO_PARENT else no for p in dev.parent],
        "kind": dev.kind,
        "zone": dev.zone,
        "name": dev.name,
        "normally_open": np.array(dev.open, dtype=np.bool_),
        "has_scada": np.array(dev.scada, dtype=np.bool_),
        "lat": np.array(dev.lat, dtype=np.float64),
        "lon": np.array(dev.lon, dtype=np.float64),
        "alt_parent": [dev.ids[a] if a != NO_PARENT else no for a in dev.alt],
        "area": area,
    }
    meters: dict[str, Any] = {
        "id": meter_ids,
        "device": [dev.ids[d] for d in meter_dev],
        "customer": c_ids,
    }
    customers = {
        "id": c_ids,
        "account_no": c_acc,
        "name": c_name,
        "phone": c_phone,
        "language": c_lang,
        "channels": c_chan,
        "critical": c_crit,
    }
    try:
        return build_topology(devices, meters, customers, locate=_locate(dev.ids, meter_ids))
    except TopologyError as exc:  # a bug here, or ids the source made that gridwatch refuses
        raise NetworkImportError(f"network {name}", exc.problems) from None


def _locate(dev_ids: list[str], meter_ids: list[str]) -> Callable[[str, int], str]:
    def locate(table: str, row: int) -> str:
        ids = dev_ids if table == "devices" else meter_ids if table == "meters" else None
        return f"{table}[{row}]" if ids is None or row >= len(ids) else f"{table} {ids[row]}"

    return locate


def _dcus(topology: Topology, dcu_size: int) -> npt.NDArray[np.int32]:
    """Concentrators: consecutive meters (by device) within one zone, ``dcu_size`` at most."""
    n = len(topology.meters)
    zone = topology.devices.zone[topology.meters.device].astype(str)
    order = np.lexsort((np.arange(n), topology.meters.device, zone))
    out = np.empty(n, dtype=np.int32)
    next_id, prev_zone, count = -1, None, 0
    for m in order.tolist():
        if zone[m] != prev_zone or count == dcu_size:
            next_id, prev_zone, count = next_id + 1, zone[m], 0
        out[m] = next_id
        count += 1
    return out


__all__ = [
    "PANDAPOWER_NETWORKS",
    "SIMBENCH_GRIDS",
    "ImportedNetwork",
    "NetworkImportError",
    "import_pandapower",
    "import_pandapower_net",
    "load_published_network",
    "load_published_network_detailed",
    "published_network_names",
]
