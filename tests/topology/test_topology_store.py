"""The topology in the real PostgreSQL: save / load round trips, switching state, import."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridwatch.core.errors import TopologyError
from gridwatch.store import Database, set_device_open, set_devices_open
from gridwatch.topology import (
    apply_switching,
    build_topology,
    import_topology_file,
    load_topology,
    read_topology_file,
    save_topology,
    topology_columns,
)
from tests.topology_support import EXAMPLE_CSV, EXAMPLE_JSON, assert_same


async def test_json_to_db_and_back_is_unchanged(db: Database) -> None:
    original = read_topology_file(EXAMPLE_JSON)
    await save_topology(db, original)
    loaded = await load_topology(db, customers=True)
    assert_same(loaded, original)
    # Without customers: same network, no names in memory.
    lean = await load_topology(db)
    assert not lean.has_customers
    assert len(lean.customers) == 0
    assert (lean.meters.customer == -1).all()
    assert sorted(lean.meter_index) == sorted(original.meter_index)
    # Owners only (detection's view): who owns each meter and who is critical, no PII.
    owned = await load_topology(db, owners=True)
    assert np.array_equal(owned.meters.customer, original.meters.customer)
    assert list(owned.customers.ids) == list(original.customers.ids)
    assert np.array_equal(owned.customers.critical, original.customers.critical)
    assert not any(owned.customers.name)
    assert all(p is None for p in owned.customers.phone_e164)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT zone, count(*) FROM meters GROUP BY zone")
        assert await cur.fetchall() == [("TD", 10)]
        cur = await conn.execute("SELECT device_id, alt_parent_id FROM device_ties")
        assert await cur.fetchall() == [("TD-F1-TIE", "TD-F2-R1")]


async def test_saving_again_replaces_and_keeps_surviving_customers(db: Database) -> None:
    await save_topology(db, read_topology_file(EXAMPLE_JSON))
    async with db.connection() as conn:
        # Something else referring to a customer (the notifier's tables do).
        await conn.execute(
            "CREATE TABLE prefs (customer_id text REFERENCES customers ON DELETE CASCADE)"
        )
        await conn.execute("INSERT INTO prefs VALUES ('C-000001'), ('C-000009')")
    devices, meters, customers = topology_columns(read_topology_file(EXAMPLE_JSON))
    # C-000009 leaves (with its meter); C-000001 and C-000002 swap account numbers.
    keep = [i for i, c in enumerate(customers["id"]) if c != "C-000009"]
    customers = {k: [v[i] for i in keep] for k, v in customers.items()}
    customers["account_no"][0], customers["account_no"][1] = (
        customers["account_no"][1],
        customers["account_no"][0],
    )
    meters = {k: v[:-1] for k, v in meters.items()}
    smaller = build_topology(devices, meters, customers)
    await save_topology(db, smaller)
    assert_same(await load_topology(db, customers=True), smaller)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT customer_id FROM prefs")
        assert await cur.fetchall() == [("C-000001",)]


async def test_switching_state_is_stored_and_reloads_as_the_same_tree(db: Database) -> None:
    t = read_topology_file(EXAMPLE_JSON)
    await save_topology(db, t)
    switched = await apply_switching(db, t, close=["TD-F1-TIE"], open=["TD-F1-S1"])
    loaded = await load_topology(db)
    by_id = {str(i): p for i, p in zip(loaded.devices.ids, loaded.devices.parent, strict=True)}
    ids = loaded.devices.ids
    for i, p in zip(switched.devices.ids, switched.devices.parent, strict=True):
        assert (str(ids[by_id[str(i)]]) if by_id[str(i)] >= 0 else None) == (
            str(switched.devices.ids[p]) if p >= 0 else None
        )
    assert loaded.energised().all()
    # An invalid switching is refused before anything is stored.
    with pytest.raises(TopologyError, match="loop"):
        await apply_switching(db, switched, close=["TD-F1-S1"])
    assert bool((await load_topology(db)).devices.is_open[loaded.device_index["TD-F1-S1"]])
    # Single device, and unknown ids change nothing.
    await set_device_open(db, "TD-F2-SW1", True)
    with pytest.raises(TopologyError, match="unknown device 'NOPE'"):
        await set_devices_open(db, {"TD-F2-SW1": False, "NOPE": True})
    again = await load_topology(db)
    assert bool(again.devices.is_open[again.device_index["TD-F2-SW1"]])
    assert not again.energised()[again.device_index["TD-F2-L2-T1"]]


async def test_import_file_gives_counts_and_refuses_bad_files(db: Database, tmp_path: Path) -> None:
    summary = await import_topology_file(db, EXAMPLE_CSV)
    assert (summary.devices, summary.ties, summary.meters, summary.customers) == (16, 1, 10, 9)
    assert len(summary.warnings) == 1
    assert "not on a transformer" in str(summary)
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"version": 1, "devices": [{"id": "A", "kind": "breaker", "zone": "Z",'
        ' "parent": "B"}, {"id": "B", "kind": "breaker", "zone": "Z", "parent": "A"}],'
        ' "meters": []}'
    )
    with pytest.raises(TopologyError, match="cycle"):
        await import_topology_file(db, bad)
    # The stored topology is untouched by the refused import.
    assert len((await load_topology(db)).devices) == 16


async def test_a_lean_topology_cannot_overwrite_customers(db: Database) -> None:
    await save_topology(db, read_topology_file(EXAMPLE_JSON))
    with pytest.raises(TopologyError, match="without customers"):
        await save_topology(db, await load_topology(db))


async def test_an_empty_database_loads_as_a_clear_error(db: Database) -> None:
    with pytest.raises(TopologyError, match="no devices"):
        await load_topology(db)
