"""SQL for the network model: devices, ties, meters, customers.

The database holds the as-built tree (``devices.parent_id``), the ties (``device_ties``)
and the open/closed state (``devices.is_open``); the as-operated tree is derived from
them by ``build_topology``, so a loaded topology equals the one that was switched in memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection

from gridwatch._errors import TopologyError
from gridwatch.store._database import Database
from gridwatch.topology._build import build_topology
from gridwatch.topology._model import DEVICE_KINDS, NO_PARENT, Topology

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


async def save_topology(db: Database, topology: Topology) -> None:
    """Replace the stored topology in one transaction (COPY; fast for a million meters).

    Customers are upserted rather than truncated, so rows that refer to a customer who is
    still there (notification preferences, history) survive a re-import; customers no
    longer in the topology are deleted.
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
        await _copy_devices(conn, topology)
        await _copy_meters(conn, topology)
        await conn.execute(_ADD_FKS)


async def _copy_customers(conn: AsyncConnection[Any], topology: Topology) -> None:
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


async def _copy_devices(conn: AsyncConnection[Any], topology: Topology) -> None:
    # Ids, zones and kinds are validated to safe characters and names to have no control
    # characters, so COPY text only needs backslashes doubled: join rows at C speed.
    dev = topology.devices
    ids: list[str] = dev.ids.tolist()
    parents = [ids[p] if p != NO_PARENT else "\\N" for p in dev.normal_parent.tolist()]
    bools = {True: "t", False: "f"}

    def coord(values: list[float]) -> list[str]:
        return ["\\N" if math.isnan(v) else repr(v) for v in values]

    lines = map(
        "\t".join,
        zip(
            ids,
            parents,
            [DEVICE_KINDS[k] for k in dev.kind.tolist()],
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
    ties = [(ids[i], ids[a]) for i, a in enumerate(dev.alt_parent.tolist()) if a != NO_PARENT]
    if ties:
        async with cur.copy("COPY device_ties (device_id, alt_parent_id) FROM STDIN") as copy:
            for tie in ties:
                await copy.write_row(tie)


async def _copy_meters(conn: AsyncConnection[Any], topology: Topology) -> None:
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


async def load_topology(db: Database, *, customers: bool = False, owners: bool = False) -> Topology:
    """Read the stored topology and validate it. ``customers=False`` skips names and phones
    and leaves ``meters.customer`` at -1; ``owners=True`` (what detection wants: it counts the
    customers an outage affects, and critical ones rank first in the crew queue) reads the
    meters' owners with account numbers and critical flags only, no names or phones."""
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

    def locate(table: str, row: int) -> str:
        return f"stored {table} row {row + 1}"

    return build_topology(device_columns, meter_columns, customer_columns, locate=locate)


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
