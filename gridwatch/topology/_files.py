"""Topology files: JSON (one document) and CSV (a directory of three files, as utilities
export them). The format is documented in docs/topology-format.md.

Readers turn files into columns and hand them to ``build_topology``, so both formats are
validated by the same code and give the same model. Every problem names its place:
``devices[12]`` in JSON, ``devices.csv:14`` in CSV.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from gridwatch.core.errors import TopologyError
from gridwatch.topology._build import (
    CUSTOMER_COLUMNS,
    DEVICE_COLUMNS,
    METER_COLUMNS,
    REQUIRED,
    build_topology,
)
from gridwatch.topology._model import DEVICE_KINDS, NO_PARENT, Topology

MAX_FILE_BYTES: Final = 512 * 1024 * 1024
FORMAT_VERSION: Final = 1
CSV_FILES: Final = ("devices.csv", "meters.csv", "customers.csv")
TABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "devices": DEVICE_COLUMNS,
    "meters": METER_COLUMNS,
    "customers": CUSTOMER_COLUMNS,
}
_CSV_FIELD_LIMIT: Final = 64 * 1024  # no legitimate cell is near this; a runaway quote is
_UTF16_32_BOMS: Final = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_UTF8_BOM: Final = b"\xef\xbb\xbf"


def read_topology_file(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES
) -> Topology:
    """Read a JSON file, or a CSV directory holding devices.csv / meters.csv / customers.csv."""
    p = Path(path)
    if p.is_dir():
        return read_topology_csv(p, max_bytes=max_bytes)
    if not p.is_file():
        raise TopologyError([f"{p}: no such file or directory"])
    if p.suffix.lower() == ".csv":
        raise TopologyError(
            [f"{p}: a CSV topology is a directory holding {', '.join(CSV_FILES)}: give that"]
        )
    return read_topology_json(p, max_bytes=max_bytes)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TopologyError([f"{path}: {size} bytes is larger than the {max_bytes}-byte limit"])
        data = path.read_bytes()
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > max_bytes:  # grew while we looked
        raise TopologyError([f"{path}: larger than the {max_bytes}-byte limit"])
    if data.startswith(_UTF16_32_BOMS):
        raise TopologyError([f"{path}: UTF-16/32 text (byte-order mark); save it as UTF-8"])
    if data.startswith(_UTF8_BOM):  # what Excel writes; harmless
        data = data[len(_UTF8_BOM) :]
    if not data.strip():
        raise TopologyError([f"{path}: empty file"])
    return data


# ---------------------------------------------------------------- JSON


def read_topology_json(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES
) -> Topology:
    p = Path(path)
    return parse_topology_json(_read_bytes(p, max_bytes), source=str(p))


def parse_topology_json(data: bytes | str, *, source: str = "topology.json") -> Topology:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TopologyError([f"{source}: not valid JSON: {exc}"]) from None
    if not isinstance(doc, dict):
        raise TopologyError([f"{source}: expected a JSON object at the top, got {_kind(doc)}"])
    version = doc.get("version")
    if "version" not in doc:
        raise TopologyError([f"{source}: version must be {FORMAT_VERSION} (the key is missing)"])
    if type(version) is not int or version != FORMAT_VERSION:
        raise TopologyError(
            [f"{source}: version must be {FORMAT_VERSION}, got {_json_value(version)}"]
        )
    problems: list[str] = []
    tables: dict[str, dict[str, list[Any]]] = {}
    positions: dict[str, list[int] | None] = {}
    for table in ("devices", "meters", "customers"):
        rows = doc.get(table, [] if table == "customers" else None)
        if not isinstance(rows, list):
            problems.append(f"{source}: {table} must be a list, got {_kind(rows)}")
            rows = []
        kept: list[dict[str, Any]] = rows
        where: list[int] | None = None
        if not all(type(r) is dict for r in rows):
            where, kept = [], []
            for i, r in enumerate(rows):
                if type(r) is dict:
                    where.append(i)
                    kept.append(r)
                else:
                    problems.append(f"{table}[{i}]: expected an object, got {_kind(r)}")
        positions[table] = where
        tables[table] = {c: [r.get(c) for r in kept] for c in TABLE_COLUMNS[table]}

    def locate(table: str, row: int) -> str:
        where = positions.get(table)
        return f"{table}[{where[row] if where is not None else row}]"

    return build_topology(
        tables["devices"], tables["meters"], tables["customers"], locate=locate, problems=problems
    )


def _json_value(value: object) -> str:
    """A scalar as JSON spells it (``null``, ``true``, ``2``, ``the string "1"``), else its
    kind: each said once, never a kind and a value side by side."""
    if value is None or type(value) is bool:
        return orjson.dumps(value).decode()
    if type(value) in (int, float):
        return f"{value!r:.40}"
    if type(value) is str:
        quoted = orjson.dumps(value).decode()
        if len(quoted) > 40:
            quoted = quoted[:36] + '..."'
        return f"the string {quoted}"
    return _kind(value)


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    names |= {type(None): "null", int: "a number", float: "a number"}
    return names.get(type(value), "junk")


# ---------------------------------------------------------------- CSV


def read_topology_csv(
    directory: str | os.PathLike[str] | None = None,
    *,
    devices: str | os.PathLike[str] | None = None,
    meters: str | os.PathLike[str] | None = None,
    customers: str | os.PathLike[str] | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> Topology:
    """A directory holding devices.csv, meters.csv and (optional) customers.csv, or the
    three files named one by one. ``max_bytes`` caps the three together."""
    base = Path(directory) if directory is not None else None
    paths: dict[str, Path | None] = {}
    for table, given in (("devices", devices), ("meters", meters), ("customers", customers)):
        if given is not None:
            paths[table] = Path(given)
        elif base is not None:
            candidate = base / f"{table}.csv"
            paths[table] = candidate if candidate.exists() or table != "customers" else None
        else:
            paths[table] = None
    for table in ("devices", "meters"):
        path = paths[table]
        if path is None or not path.is_file():
            raise TopologyError([f"{path or table + '.csv'}: missing (a CSV topology needs it)"])
    problems: list[str] = []
    columns: dict[str, dict[str, list[str]]] = {}
    lines: dict[str, tuple[str, list[int]]] = {}
    try:
        total = sum(p.stat().st_size for p in paths.values() if p is not None)
    except OSError as exc:
        raise TopologyError([f"{exc.filename}: cannot read: {exc.strerror}"]) from None
    if total > max_bytes:
        raise TopologyError(
            [f"{base or paths['devices']}: the CSV files are {total} bytes together,"
             f" larger than the {max_bytes}-byte limit"]
        )  # fmt: skip
    for table, path in paths.items():
        if path is None:
            columns[table], lines[table] = {c: [] for c in REQUIRED[table]}, (f"{table}.csv", [])
            continue
        data = _read_bytes(path, max_bytes)
        columns[table], row_lines = _parse_csv(path.name, data, table, problems)
        lines[table] = (path.name, row_lines)

    def locate(table: str, row: int) -> str:
        name, row_lines = lines[table]
        return f"{name}:{row_lines[row]}" if row < len(row_lines) else f"{name} row {row + 1}"

    return build_topology(
        columns["devices"],
        columns["meters"],
        columns["customers"],
        locate=locate,
        problems=problems,
    )


def _parse_csv(
    name: str, data: bytes, table: str, problems: list[str]
) -> tuple[dict[str, list[str]], list[int]]:
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise TopologyError([f"{name}:{line}: binary data (NUL byte); not a CSV file"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TopologyError(
            [f"{name}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
        ) from None
    del data
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    old_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)  # leading blank lines
        if header is None:
            raise TopologyError([f"{name}: empty file (no header row)"])
        names = [h.strip().lower() for h in header]
        dupes = sorted({n for n in names if n and names.count(n) > 1})
        if dupes:
            raise TopologyError(
                [f"{name}:{reader.line_num}: repeated column(s) {', '.join(dupes)}"]
            )
        missing = [c for c in REQUIRED[table] if c not in names]
        if missing:
            raise TopologyError(
                [f"{name}:{reader.line_num}: missing column(s) {', '.join(missing)}"
                 f" (header has: {', '.join(n for n in names if n)[:200]})"]
            )  # fmt: skip
        width = len(names)
        rows: list[list[str]] = []
        row_lines: list[int] = []
        try:
            while True:
                start = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    break
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != width:
                    problems.append(f"{name}:{start}: expected {width} fields, got {len(row)}")
                    continue
                rows.append(row)
                row_lines.append(start)
        except csv.Error as exc:
            problems.append(
                f"{name}:{reader.line_num}: malformed CSV ({exc}); rest of file skipped"
            )
    finally:
        csv.field_size_limit(old_limit)
    wanted = [(c, names.index(c)) for c in TABLE_COLUMNS[table] if c in names]
    columns = {c: [r[i].strip() for r in rows] for c, i in wanted}
    return columns, row_lines


# ---------------------------------------------------------------- writing


def topology_columns(
    topology: Topology,
) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, list[Any]]]:
    """The inverse of ``build_topology``: the as-built tree and state as id columns."""
    dev = topology.devices
    ids: list[str] = dev.ids.tolist()

    def ref(indices: np.ndarray[Any, Any]) -> list[str | None]:
        return [ids[i] if i != NO_PARENT else None for i in indices.tolist()]

    def coord(values: np.ndarray[Any, Any]) -> list[float | None]:
        return [None if math.isnan(v) else v for v in values.tolist()]

    devices = {
        "id": ids,
        "parent": ref(dev.normal_parent),
        "kind": [DEVICE_KINDS[k] for k in dev.kind.tolist()],
        "zone": dev.zone.tolist(),
        "name": dev.name.tolist(),
        "normally_open": dev.normally_open.tolist(),
        "is_open": dev.is_open.tolist(),
        "has_scada": dev.has_scada.tolist(),
        "lat": coord(dev.lat),
        "lon": coord(dev.lon),
        "alt_parent": ref(dev.alt_parent),
        "area": dev.area.tolist(),
    }
    cust_ids: list[str] = topology.customers.ids.tolist()
    meters = {
        "id": topology.meters.ids.tolist(),
        "device": [ids[i] for i in topology.meters.device.tolist()],
        "customer": [cust_ids[c] if c >= 0 else None for c in topology.meters.customer.tolist()],
    }
    cu = topology.customers
    customers = {
        "id": cust_ids,
        "account_no": cu.account_no.tolist(),
        "name": cu.name.tolist(),
        "phone": cu.phone_e164.tolist(),
        "language": cu.language.tolist(),
        "channels": [list(c) for c in cu.channels.tolist()],
        "critical": cu.critical.tolist(),
    }
    return devices, meters, customers


def _records(columns: Mapping[str, list[Any]], skip_empty: bool) -> list[dict[str, Any]]:
    keys = list(columns)
    out = []
    for values in zip(*(columns[k] for k in keys), strict=True):
        record = dict(zip(keys, values, strict=True))
        if skip_empty:
            record = {k: v for k, v in record.items() if v is not None and v != ""}
        out.append(record)
    return out


def write_topology_json(topology: Topology, path: str | os.PathLike[str]) -> None:
    """One record per line, so the file diffs well and streams into editors."""
    devices, meters, customers = topology_columns(topology)
    parts = [b'{"version": 1']
    for table, columns in (("devices", devices), ("meters", meters), ("customers", customers)):
        records = _records(columns, skip_empty=True)
        body = b",\n  ".join(orjson.dumps(r) for r in records)
        parts.append(f',\n "{table}": [\n  '.encode() + body + b"\n ]")
    parts.append(b"\n}\n")
    Path(path).write_bytes(b"".join(parts))


def write_topology_csv(topology: Topology, directory: str | os.PathLike[str]) -> None:
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    devices, meters, customers = topology_columns(topology)
    customers["channels"] = ["|".join(c) or "none" for c in customers["channels"]]
    for table, columns in (("devices", devices), ("meters", meters), ("customers", customers)):
        with (out_dir / f"{table}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(list(columns))
            for values in zip(*columns.values(), strict=True):
                writer.writerow(["" if v is None else _cell(v) for v in values])


def _cell(value: object) -> object:
    if value is True or value is False:
        return "true" if value else "false"
    return value
