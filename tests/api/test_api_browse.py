"""Topology browse and search, meters, customers and the notification log (personal data by
role), the public summary and the customer status endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gridwatch.api import link_token
from gridwatch.store import Database, ensure_partitions, write_telemetry
from notifier import customer_link_token
from tests.api_support import (
    NOW,
    NOW_S,
    SECRET,
    Api,
    Tokens,
    client_for,
    make_app,
    seed_all,
    seed_network,
)

V1 = "/api/v1"


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    ids, tokens = await seed_all(db)
    async with db.connection() as conn:
        for i, (customer, outage, status) in enumerate(
            [
                ("C1", ids["O-R1"], "sent"),
                ("C2", ids["O-R1"], "pending"),
                ("C6", ids["O-T4"], "sent"),
            ]
        ):
            await conn.execute(
                "INSERT INTO notifications (idempotency_key, customer_id, outage_id, kind, channel,"
                " language, body, status, address) VALUES (%s, %s, %s, 'outage_detected', 'sms',"
                " 'vi', 'Mất điện', %s, %s)",
                [f"k{i}", customer, outage, status, f"+8490000000{customer[1:]}"],
            )
    async with client_for(make_app(db)) as http:
        yield http, tokens, ids


async def test_topology_browse_and_search(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, tokens, _ = api
    h = tokens.headers("viewer")
    roots = (await http.get(f"{V1}/topology/roots", headers=h)).json()
    assert [d["device_id"] for d in roots["items"]] == ["S1", "S2"]
    kids = (await http.get(f"{V1}/topology/devices/S1/children", headers=h)).json()
    assert [d["device_id"] for d in kids["items"]] == ["B1", "B2"]
    r1 = (await http.get(f"{V1}/topology/devices/R1", headers=h)).json()
    assert (r1["children"], r1["meters"], r1["open_outages"]) == (2, 0, 1)
    assert (await http.get(f"{V1}/topology/devices/NOPE", headers=h)).status_code == 404
    assert (await http.get(f"{V1}/topology/devices/NOPE/children", headers=h)).status_code == 404
    found = (await http.get(f"{V1}/topology/search", params={"q": "tba"}, headers=h)).json()
    assert [d["device_id"] for d in found] == ["T1", "T2", "T3", "T4"]
    by_id = (
        await http.get(f"{V1}/topology/search", params={"q": "B", "kind": "breaker"}, headers=h)
    ).json()
    assert [d["device_id"] for d in by_id] == ["B1", "B2", "B3"]
    for hostile in ("%", "_", "' OR 1=1 --", "\\"):
        response = await http.get(f"{V1}/topology/search", params={"q": hostile}, headers=h)
        assert response.status_code == 200
        assert response.json() == []
    too_long = await http.get(f"{V1}/topology/search", params={"q": "x" * 65}, headers=h)
    assert too_long.status_code == 422
    assert too_long.json()["fields"][0]["field"] == "q"


async def test_meter_state_and_recent_telemetry(
    db: Database, api: tuple[httpx.AsyncClient, Tokens, dict[str, int]]
) -> None:
    http, tokens, ids = api
    await ensure_partitions(db, NOW_S - 86400, NOW_S + 86400)
    await write_telemetry(
        db,
        [("M5", NOW_S - 900, 230.5, 1.0, None), ("M5", NOW_S - 60, 231.0, 1.1, None)],
        received_s=NOW_S,
    )
    h = tokens.headers("viewer")
    m1 = (await http.get(f"{V1}/meters/M1", headers=h)).json()
    assert m1["state"] == "out"
    assert m1["open_outage_id"] == ids["O-R1"]
    m6 = (await http.get(f"{V1}/meters/M6", headers=h)).json()
    assert m6["state"] == "unknown"
    assert m6["readings"] == []
    m5 = (await http.get(f"{V1}/meters/M5", headers=h)).json()
    assert [r["v_rms_v"] for r in m5["readings"]] == [231.0, 230.5]
    assert (await http.get(f"{V1}/meters/NOPE", headers=h)).status_code == 404
    window = await http.get(f"{V1}/meters/M5", params={"start": "2026-01-01T00:00:00Z"}, headers=h)
    assert window.status_code == 422
    assert window.json()["fields"][0]["field"] == "start"


async def test_customers_and_notification_log_by_role(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, tokens, ids = api
    views = {
        r: (await http.get(f"{V1}/customers/C1", headers=tokens.headers(r))).json()
        for r in ("viewer", "operator", "admin")
    }
    assert (views["viewer"]["name"], views["viewer"]["phone"]) == ("N*** V*** 1***", "+84******001")
    assert (views["operator"]["name"], views["operator"]["phone"]) == (
        "Nguyễn Văn 1",
        "+84******001",
    )
    assert (views["admin"]["name"], views["admin"]["phone"]) == ("Nguyễn Văn 1", "+84900000001")
    assert views["admin"]["meter_ids"] == ["M1"]
    by_account = await http.get(
        f"{V1}/customers", params={"account_no": "ACC-2"}, headers=tokens.headers("viewer")
    )
    assert by_account.json()["customer_id"] == "C2"
    assert (
        await http.get(
            f"{V1}/customers", params={"account_no": "' OR 1=1"}, headers=tokens.headers("viewer")
        )
    ).status_code == 422
    log = (
        await http.get(
            f"{V1}/notifications",
            params={"outage_id": ids["O-R1"]},
            headers=tokens.headers("viewer"),
        )
    ).json()
    assert [n["customer_id"] for n in log["items"]] == ["C2", "C1"]
    assert all(n["address"].startswith("+84***") for n in log["items"])
    admin_log = (
        await http.get(
            f"{V1}/notifications", params={"customer_id": "C6"}, headers=tokens.headers("admin")
        )
    ).json()
    assert admin_log["items"][0]["address"] == "+84900000006"
    detail = (
        await http.get(f"{V1}/outages/{ids['O-R1']}", headers=tokens.headers("viewer"))
    ).json()
    assert detail["notifications_by_status"] == {"sent": 1, "pending": 1}


async def test_public_summary_has_no_personal_data(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, _, _ = api
    response = await http.get(f"{V1}/public/summary")
    assert response.status_code == 200
    body = response.json()
    assert body["zones"] == [
        {"zone": "Z1", "active_outages": 2, "customers_out": 5, "customers_served": 5}
    ]
    assert body["customers_out"] == 5
    text = response.text
    for private in ("C1", "M1", "ACC-", "+849", "Nguyễn", "R1"):
        assert private not in text


async def test_customer_status_by_account_and_by_link(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, _, ids = api
    ok = await http.post(
        f"{V1}/customer/status", json={"account_no": "ACC-1", "phone_last4": "0001"}
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert [o["outage_id"] for o in body["current"]] == [ids["O-R1"]]
    assert body["account_no"] == "ACC-1"
    for private in ("C2", "M2", "ACC-2", "Nguyễn", "+849"):
        assert private not in ok.text  # nothing of anyone else, not even their own phone
    c6 = await http.post(
        f"{V1}/customer/status", json={"account_no": "ACC-6", "phone_last4": "0006"}
    )
    assert c6.json()["current"] == []
    assert [o["outage_id"] for o in c6.json()["history"]] == [ids["O-T4"]]
    # The link the notifier sends in SMS opens the same page.
    token = customer_link_token("C1", SECRET.encode())
    assert token == link_token("C1", SECRET.encode())
    by_link = await http.get(f"{V1}/customer/status", params={"t": token})
    assert by_link.status_code == 200
    assert by_link.json()["account_no"] == "ACC-1"
    forged = await http.get(f"{V1}/customer/status", params={"t": "C2." + token.split(".")[1]})
    assert forged.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"account_no": "ACC-1", "phone_last4": "9999"},
        {"account_no": "ACC-404", "phone_last4": "0001"},
        {"account_no": "ACC-1' OR '1'='1", "phone_last4": "0001"},
        {"account_no": "ACC-1", "phone_last4": "1"},
        {"account_no": "ACC-1", "phone_last4": "0001", "customer_id": "C2"},
    ],
)
async def test_customer_lookup_refusals(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]], body: dict[str, str]
) -> None:
    http, _, _ = api
    response = await http.post(f"{V1}/customer/status", json=body)
    assert response.status_code in (401, 422)
    assert "current" not in response.text


async def test_guessing_phone_digits_is_rate_limited(db: Database) -> None:
    await seed_network(db)
    app = make_app(db, auth_failures_max=5, auth_failure_window_s=600)
    async with client_for(app, ip="192.0.2.7") as http:
        codes = [
            (
                await http.post(
                    f"{V1}/customer/status", json={"account_no": "ACC-1", "phone_last4": f"{i:04d}"}
                )
            ).status_code
            for i in range(2, 9)
        ]
        assert codes == [401] * 5 + [429] * 2
        # The right digits do not help once blocked.
        right = await http.post(
            f"{V1}/customer/status", json={"account_no": "ACC-1", "phone_last4": "0001"}
        )
        assert right.status_code == 429
    _ = NOW
