"""Shared by the outage-notice tests: one feeder with six customers, its outage rows, and
a detection step persisted with the notice bridge in its transaction."""

from __future__ import annotations

from typing import Any

from gridwatch.core.errors import StoreError
from gridwatch.detection import PersistedOutages
from gridwatch.notices.outage_notices import NotifyBridge
from gridwatch.store import Database
from gridwatch.store.outages import OutageMeterRow, OutageRow, TimelineRow, save_outages_in
from tests.notify_support import DAY_S

CUSTOMERS = [f"K{i}" for i in range(6)]


async def seed_feeder(db: Database) -> None:
    """One feeder: BRK over TX (K4, K5 behind TX); K0 has two meters."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone, name) VALUES"
            " ('BRK', 'breaker', 'z1', 'Phường Bến Nghé'), ('TX', 'transformer', 'z1', '')"
        )
        for i, c in enumerate(CUSTOMERS):
            await conn.execute(
                "INSERT INTO customers (customer_id, account_no, name, phone_e164, language,"
                " channels) VALUES (%s, %s, 'x', %s, %s, '{sms}')",
                [c, f"A{c}", f"+8490{i:07d}", "en" if i % 2 else "vi"],
            )
        for c in CUSTOMERS:
            dev = "TX" if c in ("K4", "K5") else "BRK"
            await conn.execute(
                "INSERT INTO meters (meter_id, device_id, customer_id, zone) VALUES (%s, %s, %s,"
                " 'z1')",
                [f"M-{c}", dev, c],
            )
        await conn.execute(
            "INSERT INTO meters (meter_id, device_id, customer_id, zone)"
            " VALUES ('M-K0-b', 'BRK', 'K0', 'z1')"
        )


def outage_row(
    key: str, device: str, state: str, *, confirmed: bool = True, **kw: Any
) -> OutageRow:
    fields: dict[str, Any] = {
        "engine_key": key,
        "device_id": device,
        "zone": "z1",
        "state": state,
        "cause": "inferred",
        "started_s": DAY_S - 120,
        "confirmed_s": DAY_S - 60 if confirmed else None,
        "restored_s": None,
        "confidence": 0.9,
        "meters_affected": 7,
        "customers_affected": 6,
        "meters_restored": 0,
        "customers_restored": 0,
        "parent_key": None,
    }
    fields.update(kw)
    return OutageRow(**fields)


def meter_rows(key: str, status: dict[str, str]) -> list[OutageMeterRow]:
    rows = []
    for meter, st in status.items():
        customer = meter.split("-")[1]
        rows.append(OutageMeterRow(key, meter, customer, st, DAY_S if st == "restored" else None))
    return rows


ALL_OUT = {"M-K0": "out", "M-K0-b": "out", **{f"M-{c}": "out" for c in CUSTOMERS[1:]}}


async def persist_step(
    db: Database,
    bridge: NotifyBridge,
    rows: list[OutageRow],
    meters: list[OutageMeterRow],
    at_s: float = DAY_S,
    timeline: tuple[TimelineRow, ...] = (),
    fail_after: bool = False,
) -> PersistedOutages:
    """What the detection runner does: outage rows + the hook in one transaction."""
    p = PersistedOutages(at_s, (), tuple(rows), tuple(meters), timeline, ())
    async with db.connection() as conn:
        ids = await save_outages_in(conn, p.outages, p.meters, p.timeline)
        p = PersistedOutages(at_s, (), p.outages, p.meters, p.timeline, (), ids)
        await bridge.on_persisted(p, conn)
        if fail_after:
            raise StoreError("a later write failed")
    return p
