"""The stored topology as a ``Topology``: the store reads and writes plain columns
(``gridwatch.store.topology``); building and validating the model, and the words a notice
uses for a device's place, are this package's."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection

from gridwatch.store import topology as stored
from gridwatch.store.database import Database
from gridwatch.store.planned import PlannedScope
from gridwatch.topology._build import build_topology
from gridwatch.topology._model import DEVICE_KINDS, NO_PARENT, Topology
from gridwatch.topology._place import place_words

# The store writes index columns with its own "none"; the model's must be the same.
assert NO_PARENT == stored.NO_ROW


async def save_topology(db: Database, topology: Topology) -> None:
    """Replace the stored topology in one transaction (see ``store.topology.save_topology``)."""
    await stored.save_topology(db, topology, DEVICE_KINDS)


async def load_topology(db: Database, *, customers: bool = False, owners: bool = False) -> Topology:
    """Read the stored topology and validate it. ``customers=False`` skips names and phones
    and leaves ``meters.customer`` at -1; ``owners=True`` (what detection wants: it counts the
    customers an outage affects, and critical ones rank first in the crew queue) reads the
    meters' owners with account numbers and critical flags only, no names or phones."""
    columns = await stored.load_topology_columns(db, customers=customers, owners=owners)

    def locate(table: str, row: int) -> str:
        return f"stored {table} row {row + 1}"

    return build_topology(columns.devices, columns.meters, columns.customers, locate=locate)


async def device_places(conn: AsyncConnection, device_ids: Sequence[str]) -> dict[str, str]:
    """device -> the place its customers know ("" for none, and for an unknown device:
    never the id itself). Walks the as-built tree, as planned work and the status page do."""
    paths = await stored.device_place_paths(conn, device_ids)
    places = {d: place_words(areas, names) for d, (areas, names) in paths.items()}
    return {d: places.get(d, "") for d in sorted(set(device_ids))}


async def device_scope(conn: AsyncConnection, device_id: str) -> PlannedScope:
    """Who a job on ``device_id`` cuts off (its as-built subtree) and the place they know."""
    meters, customers = await stored.subtree_customers(conn, device_id)
    place = (await device_places(conn, [device_id]))[device_id]
    return PlannedScope(place, meters, customers)
