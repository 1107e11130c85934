"""SQL for the network model: devices, ties, meters, customers.

The database holds the as-built tree (``devices.parent_id``), the ties (``device_ties``)
and the open/closed state (``devices.is_open``); the as-operated tree is derived from
them by ``gridwatch.topology.build_topology``, so a loaded topology equals the one that was
switched in memory. This module reads and writes plain columns; ``gridwatch.topology``
turns them into a ``Topology`` and back (``load_topology``, ``save_topology``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString, Protocol

import numpy.typing as npt
from psycopg import AsyncConnection

from gridwatch.core.errors import TopologyError
from gridwatch.store.database import Database, Row, fetch_row, fetch_rows

NO_ROW = -1  # an index column's "none" (no parent, no tie, no customer)
Array = npt.NDArray[Any]


# What saving reads of a topology: its column arrays (``gridwatch.topology.Topology`` has
# them), so a million meters go to COPY without a row object each.
class DeviceArrays(Protocol):
    @property
    def ids(self) -> Array: ...
    @property
    def normal_parent(self) -> Array: ...  # index into ids, NO_ROW for a root
    @property
    def alt_parent(self) -> Array: ...  # the tie, NO_ROW for none
    @property
    def kind(self) -> Array: ...  # codes: an index into the kind names
    @property
    def zone(self) -> Array: ...
    @property
    def name(self) -> Array: ...
    @property
    def normally_open(self) -> Array: ...
    @property
    def is_open(self) -> Array: ...
    @property
    def has_scada(self) -> Array: ...
    @property
    def lat(self) -> Array: ...  # NaN: no position
    @property
    def lon(self) -> Array: ...
    @property
    def area(self) -> Array: ...


class MeterArrays(Protocol):
    @property
    def ids(self) -> Array: ...
    @property
    def device(self) -> Array: ...
    @property
    def customer(self) -> Array: ...  # NO_ROW for none


class CustomerArrays(Protocol):
    @property
    def ids(self) -> Array: ...
    @property
    def account_no(self) -> Array: ...
    @property
    def name(self) -> Array: ...
    @property
    def phone_e164(self) -> Array: ...
    @property
    def language(self) -> Array: ...
    @property
    def channels(self) -> Array: ...
    @property
    def critical(self) -> Array: ...


class TopologyArrays(Protocol):
    @property
    def devices(self) -> DeviceArrays: ...
    @property
    def meters(self) -> MeterArrays: ...
    @property
    def customers(self) -> CustomerArrays: ...
    @property
    def has_customers(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class TopologyColumns:
    """The stored topology as plain columns, in the form ``build_topology`` takes."""

    devices: dict[str, list[Any]]
    meters: dict[str, list[str]]
    customers: dict[str, list[Any]] | None  # None: read without owners


_COPY_CHUNK_ROWS = 50_000

_DEVICE_COPY = (
    "COPY devices (device_id, parent_id, kind, zone, name, normally_open, is_open,"
    " has_scada, lat, lon, area) FROM STDIN"
)
# Must match 0001_core.sql. Re-adding a foreign key validates it with one join, far
# cheaper than a trigger per copied row; the tables are locked by TRUNCATE meanwhile.
_DROP_FKS = (
    "ALTER TABLE meters DROP CONSTRAINT meters_device_fk, DROP CONSTRAINT meters_customer_fk;"
    " ALTER TABLE devices DROP CONSTRAINT devices_parent_fk"
)
_ADD_FKS = (
    "ALTER TABLE devices ADD CONSTRAINT devices_parent_fk FOREIGN KEY (parent_id)"
    " REFERENCES devices (device_id) DEFERRABLE INITIALLY DEFERRED;"
    " ALTER TABLE meters ADD CONSTRAINT meters_device_fk FOREIGN KEY (device_id)"
    " REFERENCES devices (device_id) DEFERRABLE INITIALLY DEFERRED,"
    " ADD CONSTRAINT meters_customer_fk FOREIGN KEY (customer_id)"
    " REFERENCES customers (customer_id) ON DELETE SET NULL"
)
_CUSTOMER_COLUMNS = "customer_id, account_no, name, phone_e164, language, channels, critical"
_OWNER_COLUMNS = "customer_id, account_no, critical"


async def save_topology(db: Database, topology: TopologyArrays, kind_names: Sequence[str]) -> None:
    """Replace the stored topology in one transaction (COPY; fast for a million meters).

    Customers are upserted rather than truncated, so rows that refer to a customer who is
    still there (notification preferences, history) survive a re-import; customers no
    longer in the topology are deleted. ``kind_names``: device kind code -> its name.
    """
    if not topology.has_customers:
        raise TopologyError(
            ["this topology was loaded without customers; saving it would drop them"]
        )
    async with db.connection() as conn:
        await conn.execute(
            "CREATE TEMP TABLE incoming_customers (LIKE customers INCLUDING DEFAULTS)"
            " ON COMMIT DROP"
        )
        await _copy_customers(conn, topology)
        await conn.execute("TRUNCATE meters, device_ties, devices")
        await conn.execute(_DROP_FKS)
        await conn.execute(
            "DELETE FROM customers c WHERE NOT EXISTS"
            " (SELECT 1 FROM incoming_customers n WHERE n.customer_id = c.customer_id)"
        )
        # Account numbers may move between customers: check uniqueness at commit.
        await conn.execute("SET CONSTRAINTS customers_account_no_key DEFERRED")
        await conn.execute(
            f"INSERT INTO customers ({_CUSTOMER_COLUMNS})"
            f" SELECT {_CUSTOMER_COLUMNS} FROM incoming_customers"
            " ON CONFLICT (customer_id) DO UPDATE SET"
            " account_no = EXCLUDED.account_no, name = EXCLUDED.name,"
            " phone_e164 = EXCLUDED.phone_e164, language = EXCLUDED.language,"
            " channels = EXCLUDED.channels, critical = EXCLUDED.critical"
            " WHERE (customers.account_no, customers.name, customers.phone_e164,"
            "  customers.language, customers.channels, customers.critical)"
            " IS DISTINCT FROM (EXCLUDED.account_no, EXCLUDED.name, EXCLUDED.phone_e164,"
            "  EXCLUDED.language, EXCLUDED.channels, EXCLUDED.critical)"
        )
        await _copy_devices(conn, topology, kind_names)
        await copy_meters(conn, topology)
        await conn.execute(_ADD_FKS)


async def _copy_customers(conn: AsyncConnection[Any], topology: TopologyArrays) -> None:
    cu = topology.customers
    cur = conn.cursor()
    async with cur.copy(f"COPY incoming_customers ({_CUSTOMER_COLUMNS}) FROM STDIN") as copy:
        copy.set_types(["text", "text", "text", "text", "text", "text[]", "bool"])
        for row in zip(
            cu.ids.tolist(),
            cu.account_no.tolist(),
            cu.name.tolist(),
            cu.phone_e164.tolist(),
            cu.language.tolist(),
            [list(c) for c in cu.channels.tolist()],
            cu.critical.tolist(),
            strict=True,
        ):
            await copy.write_row(row)


async def _copy_devices(
    conn: AsyncConnection[Any], topology: TopologyArrays, kind_names: Sequence[str]
) -> None:
    # Ids, zones and kinds are validated to safe characters and names to have no control
    # characters, so COPY text only needs backslashes doubled: join rows at C speed.
    dev = topology.devices
    ids: list[str] = dev.ids.tolist()
    parents = [ids[p] if p != NO_ROW else "\\N" for p in dev.normal_parent.tolist()]
    bools = {True: "t", False: "f"}

    def coord(values: list[float]) -> list[str]:
        return ["\\N" if math.isnan(v) else repr(v) for v in values]

    lines = map(
        "\t".join,
        zip(
            ids,
            parents,
            [kind_names[k] for k in dev.kind.tolist()],
            dev.zone.tolist(),
            [name.replace("\\", "\\\\") for name in dev.name.tolist()],
            map(bools.__getitem__, dev.normally_open.tolist()),
            map(bools.__getitem__, dev.is_open.tolist()),
            map(bools.__getitem__, dev.has_scada.tolist()),
            coord(dev.lat.tolist()),
            coord(dev.lon.tolist()),
            [area.replace("\\", "\\\\") for area in dev.area.tolist()],
            strict=True,
        ),
    )
    cur = conn.cursor()
    async with cur.copy(_DEVICE_COPY) as copy:
        await copy.write(("\n".join(lines) + "\n").encode())
    ties = [(ids[i], ids[a]) for i, a in enumerate(dev.alt_parent.tolist()) if a != NO_ROW]
    if ties:
        async with cur.copy("COPY device_ties (device_id, alt_parent_id) FROM STDIN") as copy:
            for tie in ties:
                await copy.write_row(tie)


async def copy_meters(conn: AsyncConnection[Any], topology: TopologyArrays) -> None:
    # Ids, zones are validated to [A-Za-z0-9_.:-], so COPY text needs no escaping and the
    # rows can be joined at C speed instead of adapted one by one.
    dev_ids: list[str] = topology.devices.ids.tolist()
    dev_zone: list[str] = topology.devices.zone.tolist()
    cust_ids: list[str] = [*topology.customers.ids.tolist(), "\\N"]  # index -1 -> NULL
    meter_ids: list[str] = topology.meters.ids.tolist()
    device: list[int] = topology.meters.device.tolist()
    customer: list[int] = topology.meters.customer.tolist()
    cur = conn.cursor()
    async with cur.copy("COPY meters (meter_id, device_id, customer_id, zone) FROM STDIN") as copy:
        for start in range(0, len(meter_ids), _COPY_CHUNK_ROWS):
            stop = start + _COPY_CHUNK_ROWS
            d = device[start:stop]
            lines = map(
                "\t".join,
                zip(
                    meter_ids[start:stop],
                    map(dev_ids.__getitem__, d),
                    map(cust_ids.__getitem__, customer[start:stop]),
                    map(dev_zone.__getitem__, d),
                    strict=True,
                ),
            )
            await copy.write(("\n".join(lines) + "\n").encode())


async def load_topology_columns(
    db: Database, *, customers: bool = False, owners: bool = False
) -> TopologyColumns:
    """Read the stored topology (``gridwatch.topology.load_topology`` validates it).
    ``customers=False`` skips names and phones and leaves ``meters.customer`` empty;
    ``owners=True`` (what detection wants) reads the meters' owners with account numbers
    and critical flags only, no names or phones."""
    with_owners = customers or owners
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT d.device_id, d.parent_id, d.kind, d.zone, d.name, d.normally_open,"
            " d.is_open, d.has_scada, d.lat, d.lon, t.alt_parent_id, d.area"
            " FROM devices d LEFT JOIN device_ties t USING (device_id) ORDER BY d.device_id"
        )
        device_rows = await cur.fetchall()
        meter_text = bytearray()
        columns = (
            "meter_id, device_id, coalesce(customer_id, '')"
            if with_owners
            else "meter_id, device_id"
        )
        async with conn.cursor().copy(
            f"COPY (SELECT {columns} FROM meters ORDER BY meter_id) TO STDOUT"
        ) as copy:
            async for block in copy:
                meter_text += block
        customer_rows: list[tuple[Any, ...]] = []
        if with_owners:
            cur = await conn.execute(
                f"SELECT {_CUSTOMER_COLUMNS if customers else _OWNER_COLUMNS}"
                " FROM customers ORDER BY customer_id"
            )
            customer_rows = await cur.fetchall()
    device_columns = _columns(
        device_rows,
        ("id", "parent", "kind", "zone", "name", "normally_open", "is_open", "has_scada",
         "lat", "lon", "alt_parent", "area"),
    )  # fmt: skip
    width = 3 if with_owners else 2
    tokens = meter_text.decode().replace("\t", "\n").split("\n")[:-1] if meter_text else []
    del meter_text
    meter_columns: dict[str, list[str]] = {
        "id": tokens[0::width],
        "device": tokens[1::width],
    }
    if with_owners:
        meter_columns["customer"] = tokens[2::width]
    del tokens
    customer_columns = (
        _columns(
            customer_rows,
            ("id", "account_no", "name", "phone", "language", "channels", "critical")
            if customers
            else ("id", "account_no", "critical"),
        )
        if with_owners
        else None
    )

    return TopologyColumns(device_columns, meter_columns, customer_columns)


def _columns(rows: list[tuple[Any, ...]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    if not rows:
        return {name: [] for name in names}
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}


async def set_device_open(db: Database, device_id: str, is_open: bool) -> None:
    await set_devices_open(db, {device_id: is_open})


async def set_devices_open(db: Database, states: Mapping[str, bool]) -> None:
    """Record operated devices (one transaction). Unknown ids are an error, nothing changes."""
    if not states:
        return
    ids = list(states)
    async with db.connection() as conn:
        cur = await conn.execute(
            "UPDATE devices d SET is_open = v.is_open"
            " FROM unnest(%s::text[], %s::boolean[]) AS v(device_id, is_open)"
            " WHERE d.device_id = v.device_id RETURNING d.device_id",
            [ids, [bool(states[i]) for i in ids]],
        )
        found = {row[0] for row in await cur.fetchall()}
        missing = [i for i in ids if i not in found]
        if missing:  # raising rolls the whole update back
            raise TopologyError([f"switching: unknown device {i!r}" for i in missing])


# --- devices, as the control API browses them ---------------------------------------------


async def device_zone(db: Database, device_id: str) -> str | None:
    async with db.connection() as conn:
        row = await fetch_row(conn, "SELECT zone FROM devices WHERE device_id = %s", [device_id])
    return None if row is None else str(row["zone"])


_DEVICE_COLUMNS: LiteralString = (
    "d.device_id, d.parent_id, d.kind, d.zone, d.name, d.normally_open, d.is_open,"
    " d.has_scada, d.lat, d.lon"
)


async def get_device(db: Database, device_id: str) -> Row | None:
    async with db.connection() as conn:
        return await fetch_row(
            conn,
            "SELECT " + _DEVICE_COLUMNS + ","
            " (SELECT count(*) FROM devices c WHERE c.parent_id = d.device_id) AS children,"
            " (SELECT count(*) FROM meters m WHERE m.device_id = d.device_id) AS meters,"
            " (SELECT count(*) FROM outages o WHERE o.device_id = d.device_id"
            "   AND o.state NOT IN ('scheduled', 'restored', 'cancelled')) AS open_outages"
            " FROM devices d WHERE d.device_id = %s",
            [device_id],
        )


async def device_children(
    db: Database, parent_id: str | None, *, limit: int, after: str | None
) -> list[Row]:
    """Children of ``parent_id`` (roots when None), by id, with their open outage count."""
    async with db.connection() as conn:
        return await fetch_rows(
            conn,
            "SELECT " + _DEVICE_COLUMNS + ","
            " (SELECT count(*) FROM outages o WHERE o.device_id = d.device_id"
            "   AND o.state NOT IN ('scheduled', 'restored', 'cancelled')) AS open_outages"
            " FROM devices d WHERE d.parent_id IS NOT DISTINCT FROM %(parent)s"
            " AND (%(after)s::text IS NULL OR d.device_id > %(after)s)"
            " ORDER BY d.device_id LIMIT %(limit)s",
            {"parent": parent_id, "after": after, "limit": limit},
        )


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """WGS84 degrees, min < max (checked by the API); no wrap across the antimeridian."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float


async def device_map_page(
    db: Database, *, bbox: BoundingBox | None, limit: int, after: str | None
) -> tuple[list[Row], int, int]:
    """What a map draws: devices by id (``limit + 1`` rows, so the caller sees whether there
    are more), each with the worst open outage state on it; plus how many devices match and
    how many of those have a position. Without ``bbox`` every device comes, positioned or
    not, so the client can follow the tree through devices that have no position."""
    box = {
        "has_box": bbox is not None,
        "min_lat": bbox.min_lat if bbox else None,
        "max_lat": bbox.max_lat if bbox else None,
        "min_lon": bbox.min_lon if bbox else None,
        "max_lon": bbox.max_lon if bbox else None,
    }
    where: LiteralString = (
        " (NOT %(has_box)s OR (d.lat BETWEEN %(min_lat)s AND %(max_lat)s"
        "  AND d.lon BETWEEN %(min_lon)s AND %(max_lon)s))"
    )
    async with db.connection() as conn:
        rows = await fetch_rows(
            conn,
            # Same ranking as the dashboard's tree: confirmed > partly restored > predicted.
            "WITH worst AS ("
            " SELECT device_id, max(CASE state WHEN 'confirmed' THEN 3"
            "   WHEN 'partially_restored' THEN 2 ELSE 1 END) AS rank"
            " FROM outages WHERE state IN ('predicted', 'confirmed', 'partially_restored')"
            " GROUP BY device_id)"
            " SELECT d.device_id, d.parent_id, d.kind, d.name, d.lat, d.lon,"
            " CASE w.rank WHEN 3 THEN 'confirmed' WHEN 2 THEN 'partially_restored'"
            "   WHEN 1 THEN 'predicted' END AS open_state"
            " FROM devices d LEFT JOIN worst w ON w.device_id = d.device_id"
            " WHERE" + where + " AND (%(after)s::text IS NULL OR d.device_id > %(after)s)"
            " ORDER BY d.device_id LIMIT %(limit)s",
            {**box, "after": after, "limit": limit + 1},
        )
        counts = await fetch_row(
            conn,
            "SELECT count(*) AS total,"
            " count(*) FILTER (WHERE d.lat IS NOT NULL AND d.lon IS NOT NULL) AS positioned"
            " FROM devices d WHERE" + where,
            box,
        )
    assert counts is not None
    return rows, int(counts["total"]), int(counts["positioned"])


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_devices(db: Database, query: str, *, kind: str | None, limit: int) -> list[Row]:
    """Devices whose id starts with ``query`` or whose name starts with it (any case)."""
    prefix = _like_prefix(query)
    async with db.connection() as conn:
        return await fetch_rows(
            conn,
            "SELECT * FROM ("
            " SELECT " + _DEVICE_COLUMNS + ", 0 AS open_outages FROM devices d"
            "  WHERE d.device_id LIKE %(p)s"
            " UNION"
            " SELECT " + _DEVICE_COLUMNS + ", 0 AS open_outages FROM devices d"
            "  WHERE lower(d.name) LIKE lower(%(p)s)) s"
            " WHERE (%(kind)s::text IS NULL OR s.kind = %(kind)s)"
            " ORDER BY s.device_id LIMIT %(limit)s",
            {"p": prefix, "kind": kind, "limit": limit},
        )


# --- where a device is, and what hangs below it --------------------------------------------

# A validated topology is a tree; the cap only guards a hand-edited table with a loop.
_MAX_DEPTH = 1000


async def device_place_paths(
    conn: AsyncConnection, device_ids: Sequence[str]
) -> dict[str, tuple[list[str | None], list[str | None]]]:
    """device -> (areas, names) of the device and its ancestors, nearest first, walking the
    as-built tree (as planned work and the status page do); an unknown device is absent.
    ``gridwatch.topology.device_places`` turns them into the place customers know."""
    wanted = sorted(set(device_ids))
    if not wanted:
        return {}
    cur = await conn.execute(
        """
        WITH RECURSIVE up(start_id, parent_id, area, name, depth) AS (
            SELECT device_id, parent_id, area, name, 0 FROM devices
            WHERE device_id = ANY(%(ids)s)
            UNION ALL
            SELECT up.start_id, d.parent_id, d.area, d.name, up.depth + 1
            FROM up JOIN devices d ON d.device_id = up.parent_id
            WHERE up.depth < %(max)s
        )
        SELECT start_id, array_agg(area ORDER BY depth), array_agg(name ORDER BY depth)
        FROM up GROUP BY start_id
        """,
        {"ids": wanted, "max": _MAX_DEPTH},
    )
    return {str(r[0]): (list(r[1]), list(r[2])) for r in await cur.fetchall()}


async def subtree_customers(conn: AsyncConnection, device_id: str) -> tuple[int, list[str]]:
    """(meters, customer ids) of the device's as-built subtree: who work on it cuts off."""
    cur = await conn.execute(
        """
        WITH RECURSIVE sub(device_id) AS (
            SELECT device_id FROM devices WHERE device_id = %(d)s
            UNION ALL SELECT d.device_id FROM devices d JOIN sub ON d.parent_id = sub.device_id
        )
        SELECT count(*), coalesce(array_agg(DISTINCT m.customer_id)
                                  FILTER (WHERE m.customer_id IS NOT NULL), '{}')
        FROM meters m WHERE m.device_id IN (SELECT device_id FROM sub)
        """,
        {"d": device_id},
    )
    r = await cur.fetchone()
    return (int(r[0]), sorted(r[1])) if r else (0, [])
