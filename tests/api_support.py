"""Shared set-up for the control API tests: a small seeded network on the real PostgreSQL,
tokens of each role, and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gridwatch import ManualClock, load_settings
from gridwatch.api import ApiSettings, FlagReadiness, create_app, create_token
from gridwatch.outages import OperatorDesk
from gridwatch.store import Database
from gridwatch.store.outages import OutageMeterRow, OutageRow, save_outages

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
NOW_S = NOW.timestamp()
SECRET = "test-api-secret-0123456789"

DEVICES = [
    # id, parent, kind, zone, name
    ("S1", None, "substation", "Z1", "Tân Định"),
    ("B1", "S1", "breaker", "Z1", "Feeder 471"),
    ("R1", "B1", "recloser", "Z1", "Recloser Hai Bà Trưng"),
    ("T1", "R1", "transformer", "Z1", "TBA 1"),
    ("T2", "R1", "transformer", "Z1", "TBA 2"),
    ("B2", "S1", "breaker", "Z1", "Feeder 472"),
    ("T3", "B2", "transformer", "Z1", "TBA 3"),
    ("S2", None, "substation", "Z2", "Thủ Đức"),
    ("B3", "S2", "breaker", "Z2", "Feeder 481"),
    ("T4", "B3", "transformer", "Z2", "TBA 4"),
]
# meter, device, customer, zone; customer Cn has phone +8490000000n and account ACC-n
METERS = [
    ("M1", "T1", "C1", "Z1"),
    ("M2", "T1", "C2", "Z1"),
    ("M3", "T2", "C3", "Z1"),
    ("M4", "T2", "C4", "Z1"),
    ("M5", "T3", "C5", "Z1"),
    ("M6", "T4", "C6", "Z2"),
]


@dataclass
class Tokens:
    viewer: str
    operator: str
    admin: str

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {getattr(self, role)}"}


async def seed_network(db: Database) -> None:
    async with db.connection() as conn:
        for device_id, parent, kind, zone, name in DEVICES:
            await conn.execute(
                "INSERT INTO devices (device_id, parent_id, kind, zone, name)"
                " VALUES (%s, %s, %s, %s, %s)",
                [device_id, parent, kind, zone, name],
            )
        for meter_id, device_id, customer_id, zone in METERS:
            n = customer_id[1:]
            await conn.execute(
                "INSERT INTO customers (customer_id, account_no, name, phone_e164)"
                " VALUES (%s, %s, %s, %s)",
                [customer_id, f"ACC-{n}", f"Nguyễn Văn {n}", f"+8490000{int(n):04d}"],
            )
            await conn.execute(
                "INSERT INTO meters (meter_id, device_id, customer_id, zone)"
                " VALUES (%s, %s, %s, %s)",
                [meter_id, device_id, customer_id, zone],
            )


async def seed_outages(db: Database) -> dict[str, int]:
    """O-R1: confirmed on R1 (M1-M4); O-T3: predicted on T3 (M5); O-T4: restored in Z2."""
    rows = [
        OutageRow(
            "O-R1",
            "R1",
            "Z1",
            "confirmed",
            "lockout",
            NOW_S - 3600,
            NOW_S - 3500,
            None,
            0.95,
            4,
            4,
            0,
            0,
            None,
        ),
        OutageRow(
            "O-T3",
            "T3",
            "Z1",
            "predicted",
            "meters",
            NOW_S - 600,
            None,
            None,
            0.6,
            1,
            1,
            0,
            0,
            None,
        ),
        OutageRow(
            "O-T4",
            "T4",
            "Z2",
            "restored",
            "fuse",
            NOW_S - 86400,
            NOW_S - 86000,
            NOW_S - 80000,
            1.0,
            1,
            1,
            1,
            1,
            None,
        ),
    ]
    meters = [
        *(OutageMeterRow("O-R1", m, "C" + m[1:], "out", None) for m in ("M1", "M2", "M3", "M4")),
        OutageMeterRow("O-T3", "M5", "C5", "out", None),
        OutageMeterRow("O-T4", "M6", "C6", "restored", NOW_S - 80000),
    ]
    return await save_outages(db, rows, meters)


async def make_tokens(db: Database) -> Tokens:
    return Tokens(
        viewer=await create_token(db, "viewer", "viewer one"),
        operator=await create_token(db, "operator", "operator one"),
        admin=await create_token(db, "admin", "admin one"),
    )


def make_app(
    db: Database,
    clock: ManualClock | None = None,
    *,
    desk: OperatorDesk | None = None,
    **api: object,
) -> FastAPI:
    """``desk``: the operator desk (one that hands actions to a runner); default one
    that only commits."""
    return create_app(
        db=db,
        readiness=FlagReadiness(broker_connected=True),
        settings=load_settings(profile="test", api_secret=SECRET, notify_link_secret=SECRET),
        clock=clock or ManualClock(NOW_S),
        api_settings=ApiSettings(**api),  # type: ignore[arg-type]
        desk=desk,
    )


@asynccontextmanager
async def client_for(app: FastAPI, ip: str = "10.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield http


# What most API tests start from: a client, a token of each role, the seeded outages' ids.
Api = tuple[httpx.AsyncClient, Tokens, dict[str, int]]


async def seed_all(db: Database) -> tuple[dict[str, int], Tokens]:
    """The network and its outages (their ids by key), and a token of each role."""
    await seed_network(db)
    ids = await seed_outages(db)
    return ids, await make_tokens(db)


@asynccontextmanager
async def seeded_client(db: Database) -> AsyncIterator[Api]:
    """``seed_all``, then an in-process client of the app over it."""
    ids, tokens = await seed_all(db)
    async with client_for(make_app(db)) as http:
        yield http, tokens, ids


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    """``seeded_client`` as a fixture (import it into the test module)."""
    async with seeded_client(db) as client:
        yield client


def invalid_request(response: httpx.Response) -> dict[str, Any]:
    """The body of a 422 in the API's error shape (``invalid_request`` with the fields)."""
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "invalid_request"
    return body


# Around Tân Định, Hồ Chí Minh City; S2's feeder (S2, B3, T4) has no position.
POSITIONS = {
    "S1": (10.7890, 106.6900),
    "B1": (10.7920, 106.6950),
    "R1": (10.7950, 106.7000),
    "T1": (10.7990, 106.6980),
    "T2": (10.7980, 106.7060),
    "B2": (10.7850, 106.6960),
    "T3": (10.7820, 106.7010),
}


async def place_devices(db: Database, positions: dict[str, tuple[float, float]]) -> None:
    async with db.connection() as conn:
        for device_id, (lat, lon) in positions.items():
            await conn.execute(
                "UPDATE devices SET lat = %s, lon = %s WHERE device_id = %s",
                [lat, lon, device_id],
            )
