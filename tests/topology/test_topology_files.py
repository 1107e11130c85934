"""Topology files: JSON and CSV give the same model; hostile files get clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridwatch.core.errors import TopologyError
from gridwatch.topology import (
    parse_topology_json,
    read_topology_csv,
    read_topology_file,
    write_topology_csv,
    write_topology_json,
)
from tests.topology_support import EXAMPLE_CSV, EXAMPLE_JSON, assert_same


def problems(path: Path | str) -> list[str]:
    with pytest.raises(TopologyError) as info:
        read_topology_file(path)
    return info.value.problems


def test_examples_csv_and_json_are_the_same_topology(tmp_path: Path) -> None:
    from_json = read_topology_file(EXAMPLE_JSON)
    from_csv = read_topology_file(EXAMPLE_CSV)
    assert_same(from_json, from_csv)
    assert np.array_equal(from_json.devices.parent, from_csv.devices.parent)
    # And both writers round-trip.
    write_topology_json(from_csv, tmp_path / "t.json")
    write_topology_csv(from_json, tmp_path / "csv")
    assert_same(read_topology_file(tmp_path / "t.json"), from_json)
    assert_same(read_topology_file(tmp_path / "csv"), from_json)


def test_csv_three_files_named_one_by_one_and_customers_optional(tmp_path: Path) -> None:
    t = read_topology_csv(
        devices=EXAMPLE_CSV / "devices.csv",
        meters=EXAMPLE_CSV / "meters.csv",
        customers=EXAMPLE_CSV / "customers.csv",
    )
    assert len(t.customers) == 9
    (tmp_path / "devices.csv").write_bytes((EXAMPLE_CSV / "devices.csv").read_bytes())
    (tmp_path / "meters.csv").write_text("id,device\nM1,TD-F1-L1-T1\n")
    t = read_topology_file(tmp_path)
    assert len(t.meters) == 1
    assert len(t.customers) == 0


def test_unknown_fields_ignored_and_bom_accepted(tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE_JSON.read_text())
    doc["generator"] = "acme-gis 4.2"
    doc["devices"][0]["owner"] = "EVNHCMC"
    path = tmp_path / "t.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    assert len(read_topology_file(path).devices) == 16
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for name in ("devices.csv", "meters.csv", "customers.csv"):
        text = (EXAMPLE_CSV / name).read_text()
        # Excel: BOM, CRLF, upper-case headers, an extra column.
        text = text.replace("\n", ",x\r\n").replace("id,", "ID,", 1)
        (csv_dir / name).write_bytes(
            b"\xef\xbb\xbf" + text.replace(",x\r\n", ",extra\r\n", 1).encode()
        )
    assert_same(read_topology_file(csv_dir), read_topology_file(EXAMPLE_JSON))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (b"\x00\x01\x02binary\xff", "not valid JSON"),
        (b"\xff\xfe{\x00}\x00", "UTF-16"),
        (b"[1, 2, 3]", "expected a JSON object at the top, got a list"),
        (b'{"devices": []}', "version must be 1"),
        (b'{"version": true, "devices": [], "meters": []}', "version must be 1"),
        (b'{"version": 1, "devices": {}, "meters": []}', "devices must be a list, got an object"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (
            b'{"version": 1, "devices": [' + b'"x", ' * 3 + b'7], "meters": []}',
            "devices[3]: expected an object, got a number",
        ),
    ],
)
def test_hostile_json(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(content)
    found = problems(path)
    assert any(expected in p for p in found), found


def test_json_bad_rows_are_named_by_their_original_position() -> None:
    doc = json.loads(EXAMPLE_JSON.read_text())
    doc["meters"].insert(1, "junk")
    doc["meters"][3]["device"] = 42
    doc["customers"][4]["phone"] = "12345"
    with pytest.raises(TopologyError) as info:
        parse_topology_json(json.dumps(doc))
    found = info.value.problems
    assert "meters[1]: expected an object, got a string" in found
    assert "meters[3]: device: expected a string, got int" in found
    assert any(
        p.startswith("customers[4]: customer C-000005 phone '12345' is not E.164") for p in found
    )


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as fh:
        fh.truncate(2048)
    with pytest.raises(TopologyError, match="larger than the 1024-byte limit"):
        read_topology_file(path, max_bytes=1024)
    with pytest.raises(TopologyError, match="larger than the 1024-byte limit"):
        read_topology_file(EXAMPLE_CSV, max_bytes=1024)


def csv_dir(tmp_path: Path, devices: bytes, meters: bytes = b"id,device\n") -> Path:
    (tmp_path / "devices.csv").write_bytes(devices)
    (tmp_path / "meters.csv").write_bytes(meters)
    return tmp_path


DEV_HEADER = b"id,parent,kind,zone\n"


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        (b"", "devices.csv: empty file"),
        (b"\n\n", "devices.csv: empty file"),
        (
            b"id,parent,kind\nS,,substation\n",
            "devices.csv:1: missing column(s) zone (header has: id, parent, kind)",
        ),
        (b"id,id,parent,kind,zone\n", "devices.csv:1: repeated column(s) id"),
        (DEV_HEADER + b"S,,substation,Z\n\x00\x00\x00", "devices.csv:3: binary data (NUL byte)"),
        (DEV_HEADER + b"S,,substation,Z\nB,S,breaker,\xe9\n", "devices.csv:3: not UTF-8 text"),
        (b"\xff\xfei\x00d\x00", "UTF-16"),
        (DEV_HEADER + b"S,,substation,Z\nB,S,breaker\n", "devices.csv:3: expected 4 fields, got 3"),
        (DEV_HEADER + b'S,,substation,"' + b"x" * 200_000 + b'"\n', "devices.csv:2: malformed CSV"),
        (DEV_HEADER + b'S,,substation,Z\nB,S,"breaker,Z\n', "devices.csv:3: malformed CSV"),
        (
            DEV_HEADER + b"S,,substation,Z\nB,NOPE,breaker,Z\nC,S,toaster,Z\n",
            "devices.csv:4: device C has unknown kind 'toaster'",
        ),
    ],
)
def test_hostile_csv(tmp_path: Path, devices: bytes, expected: str) -> None:
    found = problems(csv_dir(tmp_path, devices))
    assert any(expected in p for p in found), found


def test_csv_errors_name_file_and_line_even_with_quoted_newlines(tmp_path: Path) -> None:
    devices = DEV_HEADER + b"S,,substation,Z\n\nT,S,transformer,Z\n"
    meters = b'id,device,note\nM1,T,"two\nlines"\nM2,GHOST,\n'
    found = problems(csv_dir(tmp_path, devices, meters))
    assert found == ["meters.csv:4: meter M2 is on unknown device 'GHOST'"]


def test_a_csv_file_instead_of_the_directory_is_explained(tmp_path: Path) -> None:
    found = problems(EXAMPLE_CSV / "devices.csv")
    assert "is a directory holding devices.csv" in found[0]
    assert "no such file" in problems(tmp_path / "missing.json")[0]
    (tmp_path / "devices.csv").write_bytes(DEV_HEADER)
    assert "meters.csv: missing" in problems(tmp_path)[0]


def test_a_huge_single_line_json_is_parsed_or_refused_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "long.json"
    path.write_bytes(
        b'{"version": 1, "devices": [{"id": "' + b"A" * 5_000_000 + b'"}], "meters": []}'
    )
    found = problems(path)
    assert any("is not a valid id" in p and "..." in p for p in found), found
    assert all(len(p) < 300 for p in found)
