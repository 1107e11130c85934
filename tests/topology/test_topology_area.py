"""A device's ``area``: the place its customers know (a ward, a street), carried from the
topology file (JSON and CSV) into the store, and the words a notice uses for an outage's
place: never a device id (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridwatch.core.errors import TopologyError
from gridwatch.store import Database
from gridwatch.topology import (
    device_places,
    load_topology,
    read_topology_file,
    save_topology,
    topology_columns,
    write_topology_csv,
)
from gridwatch.topology._place import looks_like_device_id, place_words
from tests.topology_support import EXAMPLE_CSV, EXAMPLE_JSON, assert_same


def _devices(topology_file: Path) -> dict[str, dict[str, object]]:
    devices, _, _ = topology_columns(read_topology_file(topology_file))
    return {d: {k: v[i] for k, v in devices.items()} for i, d in enumerate(devices["id"])}


def test_area_is_read_from_json_and_csv_alike() -> None:
    from_json, from_csv = _devices(EXAMPLE_JSON), _devices(EXAMPLE_CSV)
    assert from_json["TD-F1-BRK"]["area"] == "Phường Linh Trung, TP Thủ Đức"
    assert from_json["TD-F1-R1"]["area"] == ""  # optional: empty where not given
    assert from_json == from_csv


def test_area_round_trips_through_the_csv_writer(tmp_path: Path) -> None:
    original = read_topology_file(EXAMPLE_JSON)
    write_topology_csv(original, tmp_path / "csv")
    assert "area" in (tmp_path / "csv" / "devices.csv").read_text(encoding="utf-8").split("\n")[0]
    assert_same(read_topology_file(tmp_path / "csv"), original)


def test_area_is_free_text_checked_like_a_name(tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE_JSON.read_text(encoding="utf-8"))
    doc["devices"][1]["area"] = "x" * 300
    doc["devices"][2]["area"] = "Quận 1\x1b[2J"
    doc["devices"][3]["area"] = 7
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(TopologyError) as info:
        read_topology_file(path)
    text = "\n".join(info.value.problems)
    assert "devices[1]: area is 300 characters" in text
    assert "devices[2]: area contains control characters" in text
    assert "devices[3]: area: expected a string" in text


async def test_area_is_stored_and_loaded(db: Database) -> None:
    original = read_topology_file(EXAMPLE_JSON)
    await save_topology(db, original)
    assert_same(await load_topology(db, customers=True), original)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT area FROM devices WHERE device_id = 'TD-F1-BRK'")
        assert await cur.fetchone() == ("Phường Linh Trung, TP Thủ Đức",)


@pytest.mark.parametrize(
    ("text", "is_id"),
    [
        ("Z01-S01-F01-BRK", True),
        ("TD-F1-L1-T1", True),
        ("BRK7", True),
        ("Feeder 471", False),
        ("Phường Bến Nghé", False),
        ("Hẻm 12", False),
        ("Tie 471/472", False),
        ("Downtown", False),
        ("", False),
    ],
)
def test_a_device_id_is_told_from_a_name(text: str, is_id: bool) -> None:
    assert looks_like_device_id(text) is is_id


def test_place_words_prefer_the_nearest_area_then_a_name_never_an_id() -> None:
    # Paths run from the outage's device up to the substation.
    assert place_words(["", "Phường 1", "Quận 1"], ["T1", "", ""]) == "Phường 1"
    assert place_words(["Hẻm 12", "Phường 1"], ["", ""]) == "Hẻm 12"
    # No area anywhere: the nearest name that reads as words (the feeder's, here).
    assert place_words(["", "", ""], ["TD-F1-L1-FU", "Feeder 471", "Thu Duc"]) == "Feeder 471"
    # Only ids (the simulator's grids): nothing, so the template says "your area".
    assert place_words(["", ""], ["Z01-S01-F01-BRK", "Z01-S01"]) == ""
    assert place_words([], []) == ""
    assert place_words(["  "], ["  "]) == ""


async def test_device_places_walk_up_the_stored_tree(db: Database) -> None:
    await save_topology(db, read_topology_file(EXAMPLE_JSON))
    async with db.connection() as conn:
        places = await device_places(
            conn, ["TD-F1-L1-T1", "TD-F1-L2-T1", "TD-F2-L1-T1", "SUB-TD", "nope"]
        )
    assert places == {
        "TD-F1-L1-T1": "Hẻm 12 Võ Văn Ngân",  # its own area
        "TD-F1-L2-T1": "Phường Linh Trung, TP Thủ Đức",  # its feeder's area
        "TD-F2-L1-T1": "Feeder 472",  # no area up the tree: the feeder's name
        "SUB-TD": "Thu Duc 110/22 kV",
        "nope": "",  # not a device: nothing rather than the id
    }
